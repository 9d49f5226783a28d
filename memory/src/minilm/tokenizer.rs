//! BERT's WordPiece tokenizer, driven by a Hugging Face `tokenizer.json`.
//!
//! The pipeline the file describes for all-MiniLM-L6-v2 (and every
//! uncased BERT), done in this order:
//!
//! 1. **Special tokens**: exact occurrences of the file's special
//!    `added_tokens` (`[CLS]`, `[MASK]`, …) in the raw text become those
//!    tokens, untouched by the steps below.
//! 2. **BertNormalizer**: `clean_text` drops NUL, U+FFFD and "other"
//!    characters (Unicode categories Cc, Cf, Cn, Co, Cs, except tab, CR and
//!    LF) and turns every whitespace character into a space;
//!    `handle_chinese_chars` puts spaces around CJK ideographs;
//!    `strip_accents` (on when `lowercase` is and it is `null`) decomposes
//!    to NFD and drops non-spacing marks (Mn); `lowercase` lower-cases each
//!    character.
//! 3. **BertPreTokenizer**: splits at whitespace (dropped) and around each
//!    punctuation character (ASCII punctuation or Unicode P*), kept as a
//!    word of its own.
//! 4. **WordPiece**: each word becomes the longest vocabulary prefix, then
//!    the longest `##`-prefixed continuation, and so on; a word with a
//!    part that matches nothing, or longer than `max_input_chars_per_word`
//!    characters, becomes the unknown token.
//! 5. Truncated to `max_len - 2` tokens, then wrapped in `[CLS] … [SEP]`.

use std::collections::HashMap;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

use super::ModelError;

/// A WordPiece tokenizer.
#[derive(Debug)]
pub(crate) struct Tokenizer {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    prefix: String,
    max_word_chars: usize,
    lowercase: bool,
    strip_accents: bool,
    clean_text: bool,
    chinese_chars: bool,
    /// Special added tokens matched in the raw text, longest first.
    specials: Vec<(String, u32)>,
}

impl Tokenizer {
    /// Builds the tokenizer from the text of a `tokenizer.json` (named
    /// `path` in errors); refuses anything but a BERT WordPiece one.
    pub(crate) fn from_json(path: &str, text: &str) -> Result<Tokenizer, ModelError> {
        let bad = |message: String| ModelError::BadTokenizer {
            path: path.to_string(),
            message,
        };
        let j: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let model = &j["model"];
        if model["type"] != "WordPiece" {
            return Err(bad(format!(
                "model.type is {}, only WordPiece is supported",
                model["type"]
            )));
        }
        let vocab: HashMap<String, u32> = model["vocab"]
            .as_object()
            .ok_or_else(|| bad("model.vocab is not an object".into()))?
            .iter()
            .map(|(k, v)| {
                v.as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .map(|v| (k.clone(), v))
                    .ok_or_else(|| bad(format!("vocab entry {k:?} is not a token id")))
            })
            .collect::<Result<_, _>>()?;
        let id = |token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| bad(format!("{token} is not in the vocabulary")))
        };
        let unk_token = model["unk_token"].as_str().unwrap_or("[UNK]");
        let unk = id(unk_token)?;
        let cls = id("[CLS]")?;
        let sep = id("[SEP]")?;
        let prefix = model["continuing_subword_prefix"]
            .as_str()
            .unwrap_or("##")
            .to_string();
        let max_word_chars = model["max_input_chars_per_word"].as_u64().unwrap_or(100) as usize;

        let norm = &j["normalizer"];
        if !norm.is_null() && norm["type"] != "BertNormalizer" {
            return Err(bad(format!(
                "normalizer.type is {}, only BertNormalizer is supported",
                norm["type"]
            )));
        }
        let flag = |k: &str, default: bool| norm[k].as_bool().unwrap_or(default);
        let lowercase = !norm.is_null() && flag("lowercase", true);
        let strip_accents = !norm.is_null() && norm["strip_accents"].as_bool().unwrap_or(lowercase);
        let clean_text = !norm.is_null() && flag("clean_text", true);
        let chinese_chars = !norm.is_null() && flag("handle_chinese_chars", true);
        let pre = &j["pre_tokenizer"];
        if !pre.is_null() && pre["type"] != "BertPreTokenizer" {
            return Err(bad(format!(
                "pre_tokenizer.type is {}, only BertPreTokenizer is supported",
                pre["type"]
            )));
        }
        let mut specials: Vec<(String, u32)> = j["added_tokens"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|t| t["special"].as_bool() == Some(true))
                    .filter_map(|t| {
                        Some((t["content"].as_str()?.to_string(), t["id"].as_u64()? as u32))
                    })
                    .filter(|(c, _)| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        specials.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        Ok(Tokenizer {
            vocab,
            unk,
            cls,
            sep,
            prefix,
            max_word_chars,
            lowercase,
            strip_accents,
            clean_text,
            chinese_chars,
            specials,
        })
    }

    /// The ids of `text`: `[CLS]`, at most `max_len - 2` word pieces, `[SEP]`.
    pub(crate) fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let budget = max_len.saturating_sub(2);
        let mut ids = vec![self.cls];
        let mut rest = text;
        'outer: while !rest.is_empty() && ids.len() <= budget {
            // The first special token in `rest` (leftmost, then longest).
            let next = self
                .specials
                .iter()
                .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                .min_by_key(|(at, len, _)| (*at, usize::MAX - len));
            let (plain, special) = match next {
                Some((at, len, id)) => (&rest[..at], Some((len, id, at))),
                None => (rest, None),
            };
            for word in self.words(plain) {
                for id in self.word_pieces(&word) {
                    if ids.len() > budget {
                        break 'outer;
                    }
                    ids.push(id);
                }
            }
            match special {
                Some((len, id, at)) => {
                    if ids.len() > budget {
                        break;
                    }
                    ids.push(id);
                    rest = &rest[at + len..];
                }
                None => break,
            }
        }
        ids.push(self.sep);
        ids
    }

    /// Normalizes and pre-tokenizes `text` into words.
    fn words(&self, text: &str) -> Vec<String> {
        let mut s: String = text
            .chars()
            .filter(|c| !self.clean_text || !(*c == '\0' || *c == '\u{fffd}' || is_other(*c)))
            .map(|c| {
                if self.clean_text && is_space(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        if self.chinese_chars && s.chars().any(is_cjk) {
            let mut t = String::with_capacity(s.len() + 8);
            for c in s.chars() {
                if is_cjk(c) {
                    t.push(' ');
                    t.push(c);
                    t.push(' ');
                } else {
                    t.push(c);
                }
            }
            s = t;
        }
        if self.strip_accents {
            s = s
                .nfd()
                .filter(|c| get_general_category(*c) != GeneralCategory::NonspacingMark)
                .collect();
        }
        if self.lowercase {
            s = s.chars().flat_map(char::to_lowercase).collect();
        }
        let mut words = Vec::new();
        for chunk in s.split(char::is_whitespace).filter(|w| !w.is_empty()) {
            let mut cur = String::new();
            for c in chunk.chars() {
                if is_punctuation(c) {
                    if !cur.is_empty() {
                        words.push(std::mem::take(&mut cur));
                    }
                    words.push(c.to_string());
                } else {
                    cur.push(c);
                }
            }
            if !cur.is_empty() {
                words.push(cur);
            }
        }
        words
    }

    /// WordPiece of one word: greedy longest-match-first.
    fn word_pieces(&self, word: &str) -> Vec<u32> {
        if word.chars().count() > self.max_word_chars {
            return vec![self.unk];
        }
        let mut out = Vec::new();
        let mut start = 0;
        let mut piece = String::new();
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                piece.clear();
                if start > 0 {
                    piece.push_str(&self.prefix);
                }
                piece.push_str(&word[start..end]);
                if let Some(id) = self.vocab.get(&piece) {
                    found = Some(*id);
                    break;
                }
                // Back off by one character.
                end -= word[..end].chars().next_back().map_or(1, char::len_utf8);
            }
            match found {
                Some(id) => out.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        out
    }
}

/// Tab, LF, CR and Unicode whitespace.
fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Unicode "other" (C*) characters but tab, LF and CR.
fn is_other(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    use GeneralCategory::*;
    matches!(
        get_general_category(c),
        Control | Format | Unassigned | PrivateUse | Surrogate
    )
}

/// ASCII punctuation (which includes symbols such as `$`, `+`, `^`) or a
/// Unicode punctuation character (P*).
fn is_punctuation(c: char) -> bool {
    use GeneralCategory::*;
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            ConnectorPunctuation
                | DashPunctuation
                | OpenPunctuation
                | ClosePunctuation
                | InitialPunctuation
                | FinalPunctuation
                | OtherPunctuation
        )
}

/// The CJK Unified Ideographs blocks (and extensions, and compatibility
/// ideographs) BERT spaces out.
fn is_cjk(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Tokenizer {
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "cafe", "!",
            "hello", "世", "界", ",", "a",
        ];
        let vocab: serde_json::Map<String, serde_json::Value> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), serde_json::json!(i)))
            .collect();
        let j = serde_json::json!({
            "added_tokens": [{"id": 4, "content": "[MASK]", "special": true}],
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": "WordPiece", "unk_token": "[UNK]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 10,
                "vocab": vocab},
        });
        Tokenizer::from_json("t", &j.to_string()).unwrap()
    }

    #[test]
    fn normalizes_splits_and_word_pieces() {
        let t = tiny();
        // lower-case, accents stripped, punctuation isolated, ## pieces,
        // CJK spaced, control characters dropped, unknown word.
        assert_eq!(
            t.encode("Unaffable CAFÉ!\u{7}hello,世界 xyz", 256),
            vec![2, 5, 6, 7, 8, 9, 10, 13, 11, 12, 1, 3]
        );
        // A word longer than max_input_chars_per_word is [UNK].
        assert_eq!(t.encode("unaffableaffable", 256), vec![2, 1, 3]);
        // A special token in the raw text stays one token.
        assert_eq!(t.encode("a[MASK]a", 256), vec![2, 14, 4, 14, 3]);
        assert_eq!(t.encode("", 256), vec![2, 3]);
    }

    #[test]
    fn truncates_to_max_len_with_cls_and_sep() {
        let t = tiny();
        let ids = t.encode(&"a ".repeat(600), 256);
        assert_eq!(ids.len(), 256);
        assert_eq!((ids[0], ids[255]), (2, 3));
        assert_eq!(t.encode("unaffable cafe", 4), vec![2, 5, 6, 3]);
    }

    #[test]
    fn refuses_other_tokenizer_kinds() {
        let e = Tokenizer::from_json("x.json", r#"{"model":{"type":"BPE"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.json") && e.contains("BPE"), "{e}");
    }
}
