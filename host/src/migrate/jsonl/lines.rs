//! Reading an export: line by line with a bound on the line length, and
//! what it holds (its headers) without loading it.

use std::io::BufRead;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::migrate::error::MigrateError;

use super::codec::io_err;

/// The tables and collections an export holds, in order, read from the
/// header lines only (rows are skipped unparsed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// Table names.
    pub tables: Vec<String>,
    /// Collection names.
    pub collections: Vec<String>,
    /// The file ends with a trailer and every byte before it, the list of
    /// tables and collections and their row counts match it. `false` only
    /// for files of format 1 (written before trailers existed, accepted by
    /// restores of old backups, which their manifest's SHA-256 covers);
    /// a format 2 file without a matching trailer is an error.
    pub verified: bool,
}

/// The longest line an export may hold (a row or a record with its
/// vector, metadata and text). A longer one is a corrupt or foreign file,
/// reported as such instead of being read into memory whole.
pub const MAX_LINE: usize = 256 << 20;

/// The format written: 2 ends every file with a trailer.
pub(super) const FORMAT: i64 = 2;

/// The first bytes of the trailer line.
pub(super) const TRAILER_PREFIX: &[u8] = b"{\"trailer\":";

/// Reads one line (with its `\n`) into `buf`, at most `max` bytes;
/// `Ok(false)` at the end of the input.
pub(super) fn read_line_bounded(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    buf.clear();
    let n = std::io::Read::take(&mut *input, max as u64 + 1).read_until(b'\n', buf)?;
    if n > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {max} bytes (the limit of an export line)"),
        ));
    }
    Ok(n > 0)
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// One table or collection as the trailer lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Listed {
    pub(super) kind: &'static str,
    pub(super) name: String,
    pub(super) rows: u64,
}

/// The trailer, once read and checked against the bytes before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Trailer {
    pub(super) items: Vec<Listed>,
}

impl Trailer {
    /// The trailer line for `items`, after `lines` lines hashing to `sha256`.
    pub(super) fn line(items: &[Listed], lines: u64, sha256: &str) -> Json {
        let of = |kind: &str| {
            items
                .iter()
                .filter(|i| i.kind == kind)
                .map(|i| serde_json::json!({ "name": i.name, "rows": i.rows }))
                .collect::<Vec<_>>()
        };
        serde_json::json!({ "trailer": {
            "tables": of("table"), "collections": of("collection"),
            "lines": lines, "sha256": sha256,
        }})
    }

    pub(super) fn parse(doc: &Json) -> Option<(Trailer, u64, String)> {
        let t = doc.get("trailer")?;
        let mut items = Vec::new();
        for kind in ["table", "collection"] {
            for i in t.get(format!("{kind}s"))?.as_array()? {
                items.push(Listed {
                    kind,
                    name: i.get("name")?.as_str()?.to_string(),
                    rows: i.get("rows")?.as_u64()?,
                });
            }
        }
        Some((
            Trailer { items },
            t.get("lines")?.as_u64()?,
            t.get("sha256")?.as_str()?.to_string(),
        ))
    }

    /// Compares what was read (`kind`, name, rows, in file order) with
    /// the list; the error says what differs.
    pub(super) fn check(&self, read: &[Listed]) -> Result<(), String> {
        if self.items == read {
            return Ok(());
        }
        let show = |l: &[Listed]| {
            l.iter()
                .map(|i| format!("{} `{}` ({} rows)", i.kind, i.name, i.rows))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(format!(
            "the trailer lists {}, the file holds {}",
            show(&self.items),
            show(read)
        ))
    }
}

/// Lines of an export, bounded in length, hashed as they are read: the
/// trailer line is checked against the bytes before it (line count and
/// SHA-256) when it is read, and a line after it is an error.
pub(super) struct LineReader<'a> {
    input: &'a mut dyn BufRead,
    pub(super) buf: Vec<u8>,
    max: usize,
    hash: Sha256,
    lines: u64,
    /// The trailer, once read and found to match the bytes before it.
    pub(super) trailer: Option<Trailer>,
}

impl<'a> LineReader<'a> {
    pub(super) fn new(input: &'a mut dyn BufRead) -> Self {
        LineReader {
            input,
            buf: Vec::new(),
            max: MAX_LINE,
            hash: Sha256::new(),
            lines: 0,
            trailer: None,
        }
    }

    /// The next line into `self.buf` (with its end of line); `Ok(false)`
    /// at the end of the input.
    pub(super) fn advance(&mut self) -> std::io::Result<bool> {
        if !read_line_bounded(self.input, &mut self.buf, self.max)? {
            return Ok(false);
        }
        if self.trailer.is_some() {
            return Err(invalid(format!(
                "line {}: a line after the trailer (the trailer ends an export)",
                self.lines + 2
            )));
        }
        if self.buf.starts_with(TRAILER_PREFIX) {
            let doc: Json = serde_json::from_slice(&self.buf)
                .map_err(|e| invalid(format!("line {}: the trailer: {e}", self.lines + 1)))?;
            let (trailer, lines, sha256) = Trailer::parse(&doc)
                .ok_or_else(|| invalid(format!("line {}: a malformed trailer", self.lines + 1)))?;
            let got = hex::encode(self.hash.clone().finalize());
            if lines != self.lines || sha256 != got {
                return Err(invalid(format!(
                    "the trailer says {lines} lines with sha256 {sha256}, the file has {} lines with sha256 {got}: it is damaged",
                    self.lines
                )));
            }
            self.trailer = Some(trailer);
        } else {
            self.hash.update(&self.buf);
            self.lines += 1;
        }
        Ok(true)
    }
}

/// `BufRead::lines` over a [`LineReader`] (same end-of-line handling).
pub(super) struct BoundedLines<'a> {
    pub(super) reader: LineReader<'a>,
}

impl Iterator for BoundedLines<'_> {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.reader.advance() {
            Ok(false) => None,
            Err(e) => Some(Err(e)),
            Ok(true) => {
                let mut line = std::mem::take(&mut self.reader.buf);
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                Some(String::from_utf8(line).map_err(|e| invalid(e.to_string())))
            }
        }
    }
}

/// The format of an export from its first line (1 or 2), or an error.
pub(super) fn format_of(first: &[u8]) -> Result<i64, String> {
    let doc: Json = serde_json::from_slice(first).map_err(|e| e.to_string())?;
    match doc.get("strata_export").and_then(Json::as_i64) {
        Some(v @ 1..=FORMAT) => Ok(v),
        Some(v) => Err(format!(
            "a strata export of format {v}, newer than this strata reads (1 to {FORMAT})"
        )),
        None => Err("not a strata export (expected a {\"strata_export\":2,…} header)".into()),
    }
}

/// The error of a file that ends without its trailer, naming the last
/// table or collection it began.
pub(super) fn missing_trailer(last: Option<&Listed>) -> String {
    format!(
        "the file ends without its trailer{}: it is cut short (an interrupted export or copy)",
        last.map(|l| format!(" (the last item in it is {} `{}`)", l.kind, l.name))
            .unwrap_or_default()
    )
}

/// Lists what an export holds without loading it, and checks it whole:
/// a format 2 file must end with a trailer matching every byte before it
/// and the tables and collections it holds with their row counts.
pub fn contents(input: &mut dyn BufRead, file: &str) -> Result<Contents, MigrateError> {
    let bad = |n: u64, message: String| MigrateError::File {
        file: format!("{file}:{n}"),
        message,
    };
    let mut out = Contents::default();
    let mut reader = LineReader::new(input);
    let mut read: Vec<Listed> = Vec::new();
    let mut format = 0;
    let mut n = 0u64;
    loop {
        if !reader.advance().map_err(io_err(file))? {
            break;
        }
        n += 1;
        if n == 1 {
            format = format_of(&reader.buf).map_err(|m| bad(1, m))?;
            continue;
        }
        if reader.trailer.is_some() {
            continue;
        }
        let buf = &reader.buf;
        let (is_table, is_coll, is_end) = (
            buf.starts_with(b"{\"table\":"),
            buf.starts_with(b"{\"collection\":"),
            buf.starts_with(b"{\"end\":"),
        );
        if is_end {
            let doc: Json = serde_json::from_slice(buf).map_err(|e| bad(n, e.to_string()))?;
            let rows = doc
                .get("end")
                .and_then(|e| e.get("rows"))
                .and_then(Json::as_u64)
                .ok_or_else(|| bad(n, "an end line without a row count".into()))?;
            if let Some(last) = read.last_mut() {
                last.rows = rows;
            }
            continue;
        }
        if !(is_table || is_coll) {
            continue;
        }
        let doc: Json = serde_json::from_slice(buf).map_err(|e| bad(n, e.to_string()))?;
        let name = doc
            .get(if is_table { "table" } else { "collection" })
            .and_then(|h| h.get("name"))
            .and_then(Json::as_str)
            .ok_or_else(|| bad(n, "a header without a name".into()))?;
        read.push(Listed {
            kind: if is_table { "table" } else { "collection" },
            name: name.to_string(),
            rows: 0,
        });
        if is_table {
            out.tables.push(name.to_string());
        } else {
            out.collections.push(name.to_string());
        }
    }
    if n == 0 {
        return Err(bad(1, "empty file".into()));
    }
    match (&reader.trailer, format) {
        (Some(t), _) => {
            t.check(&read).map_err(|m| bad(n, m))?;
            out.verified = true;
        }
        (None, 1) => {}
        (None, _) => return Err(bad(n, missing_trailer(read.last()))),
    }
    Ok(out)
}

/// Numbered lines of an export, as the importer reads them.
pub(super) type Lines<'a> = dyn Iterator<Item = (usize, std::io::Result<String>)> + 'a;

#[cfg(test)]
mod bounded_lines {
    use super::*;

    fn lines(text: &[u8], max: usize) -> Vec<Result<String, String>> {
        let mut input = std::io::BufReader::with_capacity(4, text);
        let mut reader = LineReader::new(&mut input);
        reader.max = max;
        BoundedLines { reader }
            .map(|l| l.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn ends_of_lines_as_bufread_lines() {
        assert_eq!(
            lines(b"a\r\nbb\n\nlast", 10),
            vec![
                Ok("a".to_string()),
                Ok("bb".to_string()),
                Ok(String::new()),
                Ok("last".to_string())
            ]
        );
        assert!(lines(b"", 10).is_empty());
    }

    #[test]
    fn a_line_past_the_limit_is_an_error_not_a_read() {
        let got = lines(b"0123456789\n0123456789X\nnext\n", 11);
        assert_eq!(got[0], Ok("0123456789".to_string()));
        let e = got[1].as_ref().unwrap_err();
        assert!(e.contains("longer than 11 bytes"), "{e}");
        // Exactly the limit (newline included) is fine; invalid UTF-8 is an error.
        assert_eq!(lines(b"0123456789\n", 11).len(), 1);
        assert!(lines(b"\xff\xfe\n", 11)[0].is_err());
    }
}

/// Property tests of the export reader: it never panics, reads back what
/// was written, and refuses every cut and every changed byte.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(256),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Tables, then collections (the order exports have): whether a
    /// table, the name, and rows (arbitrary JSON lines).
    fn items() -> impl Strategy<Value = Vec<(bool, String, Vec<String>)>> {
        prop::collection::vec(
            (
                any::<bool>(),
                "\\PC{1,8}",
                prop::collection::vec(
                    prop_oneof![
                        "\\PC{0,12}".prop_map(|s| json!([s, 1, null]).to_string()),
                        any::<i64>().prop_map(|n| json!({"id": n, "vector": [0.5]}).to_string()),
                    ],
                    0..4,
                ),
            ),
            0..4,
        )
        .prop_map(|mut items| {
            items.sort_by_key(|i| !i.0);
            items
        })
    }

    /// A complete export of format 2 holding `items`, as the writer lays it out.
    fn export_bytes(items: &[(bool, String, Vec<String>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let push = |out: &mut Vec<u8>, doc: String| {
            out.extend_from_slice(doc.as_bytes());
            out.push(b'\n');
        };
        push(
            &mut out,
            json!({"strata_export": FORMAT, "source": "src", "dialect": "sqlite"}).to_string(),
        );
        let mut listed = Vec::new();
        for (is_table, name, rows) in items {
            let kind = if *is_table { "table" } else { "collection" };
            push(
                &mut out,
                json!({ kind: { "name": name, "columns": [] } }).to_string(),
            );
            for r in rows {
                push(&mut out, r.clone());
            }
            push(
                &mut out,
                json!({ "end": { kind: name, "rows": rows.len() } }).to_string(),
            );
            listed.push(Listed {
                kind,
                name: name.clone(),
                rows: rows.len() as u64,
            });
        }
        let lines = out.iter().filter(|b| **b == b'\n').count() as u64;
        let sha = hex::encode(Sha256::digest(&out));
        push(&mut out, Trailer::line(&listed, lines, &sha).to_string());
        out
    }

    fn read(bytes: &[u8]) -> Result<Contents, MigrateError> {
        let mut input = std::io::BufReader::with_capacity(7, bytes);
        contents(&mut input, "export.jsonl")
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_bytes_are_read_or_refused_without_panicking(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                "(\\{\"(strata_export|table|collection|end|trailer)\":[^\n]{0,20}\n){0,6}"
                    .prop_map(String::into_bytes),
            ]
        ) {
            let _ = read(&bytes);
        }

        #[test]
        fn a_whole_export_reads_back(items in items()) {
            let got = read(&export_bytes(&items))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(got.verified);
            let names = |t: bool| -> Vec<String> {
                items.iter().filter(|i| i.0 == t).map(|i| i.1.clone()).collect()
            };
            prop_assert_eq!(got.tables, names(true));
            prop_assert_eq!(got.collections, names(false));
        }

        #[test]
        fn a_cut_export_is_refused(items in items(), at in any::<prop::sample::Index>()) {
            let bytes = export_bytes(&items);
            // Every cut but the trailer's own end of line loses something.
            let cut = at.index(bytes.len() - 1);
            prop_assert!(read(&bytes[..cut]).is_err(), "cut at {} of {}", cut, bytes.len());
        }

        #[test]
        fn a_changed_byte_is_refused(
            items in items(),
            at in any::<prop::sample::Index>(),
            to in any::<u8>(),
        ) {
            let mut bytes = export_bytes(&items);
            let i = at.index(bytes.len());
            prop_assume!(bytes[i] != to);
            let was = bytes[i];
            bytes[i] = to;
            let got = read(&bytes);
            // The trailer's own end of line, and blanks inside the
            // trailer's JSON, carry nothing.
            let harmless = i == bytes.len() - 1
                || (i > bytes[..bytes.len() - 1].iter().rposition(|b| *b == b'\n').unwrap_or(0)
                    && was.is_ascii_whitespace() && to.is_ascii_whitespace());
            prop_assert!(got.is_err() || harmless, "byte {} {:?} -> {:?} accepted", i, was as char, to as char);
        }
    }
}
