//! A local sentence-transformer: all-MiniLM-L6-v2 (or any BERT
//! `sentence-transformers` model with mean pooling), in pure Rust.
//!
//! [`MiniLmEmbedder::load`] reads a model directory as
//! `sentence-transformers` saves it (`scripts/models/minilm.sh` fetches
//! all-MiniLM-L6-v2 into `~/.cache/strata/models/all-MiniLM-L6-v2`):
//!
//! - `config.json`: the BERT shape (hidden size, layers, heads, …,
//!   `layer_norm_eps`; `hidden_act` must be `gelu`);
//! - `model.safetensors`: the F32 weights ([safetensors format](https://huggingface.co/docs/safetensors));
//! - `tokenizer.json`: the WordPiece vocabulary and normaliser settings;
//! - `modules.json` (optional): the sentence-transformers pipeline, read
//!   instead of assumed: a `Transformer`, then a `Pooling` module (its
//!   directory's `config.json` says the mode: `pooling_mode_mean_tokens`
//!   or `pooling_mode_cls_token`, exactly one; other modes — max,
//!   mean_sqrt_len, weightedmean, lasttoken — are refused by name), then
//!   optionally `Normalize` (L2). Any other module (e.g. `Dense`) is
//!   refused by name. Without `modules.json`: `1_Pooling/config.json`'s
//!   mode if that file is there (mean otherwise), then L2 normalisation,
//!   as all-MiniLM-L6-v2 is saved;
//! - `sentence_bert_config.json` (optional): `max_seq_length` (256 for
//!   all-MiniLM-L6-v2; longer texts are truncated, as
//!   `sentence-transformers` does).
//!
//! For all-MiniLM-L6-v2 a text's vector is the mean of the encoder's last
//! hidden states over its tokens (`[CLS]` and `[SEP]` included),
//! L2-normalised ([`MiniLmEmbedder::pooling`] says what a directory asked
//! for). The compute
//! runs on a blocking thread (tokio's blocking pool inside a runtime, a
//! thread of its own otherwise), never on the async caller's thread, and
//! uses up to [`MiniLmEmbedder::with_threads`] threads for the dense layers.
//! `memory/tests/minilm_reference.rs` checks the vectors against the
//! reference `sentence-transformers` implementation.

mod bert;
mod safetensors;
mod tokenizer;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::embed::{EmbedError, EmbedFuture, Embedder};

/// Why a model directory could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file the model needs is not there.
    #[error(
        "model file {path} is missing (fetch all-MiniLM-L6-v2 with scripts/models/minilm.sh, which prints the directory to load)"
    )]
    MissingFile {
        /// The file looked for.
        path: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `config.json` or `1_Pooling/config.json` is not usable.
    #[error("{path}: {message}")]
    BadConfig {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The weights file is not valid safetensors.
    #[error("{path} is not a valid safetensors file: {message}")]
    BadSafetensors {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor the model needs is not in the weights file.
    #[error("{path} has no tensor {name}")]
    MissingTensor {
        /// The file.
        path: String,
        /// The tensor's name.
        name: String,
    },
    /// A tensor is stored in another type than F32.
    #[error("tensor {name} is {dtype}; only F32 weights are supported")]
    WrongDtype {
        /// The tensor's name.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// A tensor has another shape than `config.json` implies.
    #[error("tensor {name} has shape {found:?}; config.json implies {expected:?}")]
    WrongShape {
        /// The tensor's name.
        name: String,
        /// The shape config.json implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// `tokenizer.json` is not a BERT WordPiece tokenizer this reader knows.
    #[error("{path}: {message}")]
    BadTokenizer {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Where `scripts/models/minilm.sh` puts all-MiniLM-L6-v2:
/// `$STRATA_MINILM_DIR` if set, else `$STRATA_MODELS_DIR/all-MiniLM-L6-v2`,
/// else `$XDG_CACHE_HOME/strata/models/all-MiniLM-L6-v2`, else
/// `~/.cache/strata/models/all-MiniLM-L6-v2` (`None` without `HOME` either).
pub fn default_model_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("STRATA_MINILM_DIR") {
        return Some(d);
    }
    let models = var("STRATA_MODELS_DIR").or_else(|| {
        var("XDG_CACHE_HOME")
            .or_else(|| var("HOME").map(|h| h.join(".cache")))
            .map(|c| c.join("strata/models"))
    })?;
    Some(models.join("all-MiniLM-L6-v2"))
}

struct Model {
    tokenizer: tokenizer::Tokenizer,
    bert: bert::Bert,
    max_len: usize,
    pooling: Pooling,
    normalize: bool,
}

/// How token states become one vector (the directory's `Pooling` module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pooling {
    /// The mean over every token (`pooling_mode_mean_tokens`).
    Mean,
    /// The `[CLS]` token's state (`pooling_mode_cls_token`).
    Cls,
}

/// The pooling and normalisation a model directory asks for (see the
/// [module docs](self)).
fn read_pipeline(dir: &Path) -> Result<(Pooling, bool), ModelError> {
    let read_json = |p: &Path| -> Result<serde_json::Value, ModelError> {
        let text = std::fs::read_to_string(p).map_err(|e| ModelError::Io {
            path: p.display().to_string(),
            source: e,
        })?;
        serde_json::from_str(&text).map_err(|e| ModelError::BadConfig {
            path: p.display().to_string(),
            message: format!("not JSON: {e}"),
        })
    };
    let modules_path = dir.join("modules.json");
    let (pooling_dir, normalize) = if modules_path.is_file() {
        let bad = |message: String| ModelError::BadConfig {
            path: modules_path.display().to_string(),
            message,
        };
        let modules = read_json(&modules_path)?;
        let list = modules
            .as_array()
            .ok_or_else(|| bad("not a JSON array of modules".into()))?;
        let mut pooling_dir = None;
        let mut normalize = false;
        for (i, m) in list.iter().enumerate() {
            let ty = m["type"].as_str().unwrap_or_default();
            let short = ty.rsplit('.').next().unwrap_or_default();
            match (i, short) {
                (0, "Transformer") => {}
                (0, _) => {
                    return Err(bad(format!(
                        "the first module is {ty:?}; a Transformer is expected"
                    )));
                }
                (_, "Pooling") if pooling_dir.is_none() => {
                    pooling_dir = Some(m["path"].as_str().unwrap_or("1_Pooling").to_string());
                }
                (_, "Normalize") if pooling_dir.is_some() => normalize = true,
                _ => {
                    return Err(bad(format!(
                        "module {i} is {ty:?}, which this embedder does not run (supported: Transformer, Pooling, Normalize)"
                    )));
                }
            }
        }
        let dir = pooling_dir.ok_or_else(|| bad("there is no Pooling module".into()))?;
        (Some(dir), normalize)
    } else {
        (None, true)
    };
    let pooling_path = dir
        .join(pooling_dir.as_deref().unwrap_or("1_Pooling"))
        .join("config.json");
    if !pooling_path.is_file() {
        if pooling_dir.is_some() {
            return Err(ModelError::MissingFile {
                path: pooling_path.display().to_string(),
            });
        }
        return Ok((Pooling::Mean, normalize));
    }
    let pooling = read_json(&pooling_path)?;
    let bad = |message: String| ModelError::BadConfig {
        path: pooling_path.display().to_string(),
        message,
    };
    let on: Vec<&str> = pooling
        .as_object()
        .ok_or_else(|| bad("not a JSON object".into()))?
        .iter()
        .filter(|(k, v)| k.starts_with("pooling_mode_") && v.as_bool() == Some(true))
        .map(|(k, _)| k.as_str())
        .collect();
    let mode = match on.as_slice() {
        ["pooling_mode_mean_tokens"] => Pooling::Mean,
        ["pooling_mode_cls_token"] => Pooling::Cls,
        [] => return Err(bad("no pooling_mode_* is true".into())),
        [one] => {
            return Err(bad(format!(
                "pooling mode {} is not supported (supported: pooling_mode_mean_tokens, pooling_mode_cls_token)",
                one.trim_start_matches("pooling_mode_")
            )));
        }
        several => {
            return Err(bad(format!(
                "several pooling modes are on ({}), which sentence-transformers concatenates; only one, mean or cls, is supported",
                several.join(", ")
            )));
        }
    };
    Ok((mode, normalize))
}

/// The local all-MiniLM-L6-v2 embedder (see the [module docs](self)):
/// 384 dimensions, semantic ("car" is near "automobile").
#[derive(Clone)]
pub struct MiniLmEmbedder {
    model: Arc<Model>,
    name: String,
    dimension: u32,
    batch: usize,
    threads: usize,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("name", &self.name)
            .field("dimension", &self.dimension)
            .field("max_len", &self.model.max_len)
            .field("batch", &self.batch)
            .field("threads", &self.threads)
            .finish()
    }
}

impl MiniLmEmbedder {
    /// Loads the model in `dir` (see the [module docs](self) for the files).
    /// Its [`name`](Embedder::name) is the directory's name (so
    /// `all-MiniLM-L6-v2` for the directory `scripts/models/minilm.sh` makes).
    pub fn load(dir: impl AsRef<Path>) -> Result<MiniLmEmbedder, ModelError> {
        let dir = dir.as_ref();
        let file = |name: &str| -> Result<PathBuf, ModelError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(ModelError::MissingFile {
                    path: p.display().to_string(),
                })
            }
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| ModelError::Io {
                path: p.display().to_string(),
                source: e,
            })
        };
        let json = |p: &Path| -> Result<serde_json::Value, ModelError> {
            serde_json::from_str(&read(p)?).map_err(|e| ModelError::BadConfig {
                path: p.display().to_string(),
                message: format!("not JSON: {e}"),
            })
        };

        let config_path = file("config.json")?;
        let config = json(&config_path)?;
        let bad_config = |message: String| ModelError::BadConfig {
            path: config_path.display().to_string(),
            message,
        };
        let num = |k: &str| {
            config[k]
                .as_u64()
                .map(|v| v as usize)
                .filter(|v| *v > 0)
                .ok_or_else(|| bad_config(format!("{k} is missing or not a positive integer")))
        };
        if config["model_type"].as_str().is_some_and(|t| t != "bert") {
            return Err(bad_config(format!(
                "model_type is {}, only bert is supported",
                config["model_type"]
            )));
        }
        if config["hidden_act"].as_str().unwrap_or("gelu") != "gelu" {
            return Err(bad_config(format!(
                "hidden_act is {}, only gelu is supported",
                config["hidden_act"]
            )));
        }
        let cfg = bert::BertConfig {
            vocab: num("vocab_size")?,
            hidden: num("hidden_size")?,
            layers: num("num_hidden_layers")?,
            heads: num("num_attention_heads")?,
            intermediate: num("intermediate_size")?,
            max_positions: num("max_position_embeddings")?,
            type_vocab: num("type_vocab_size")?,
            eps: config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32,
        };
        if !cfg.hidden.is_multiple_of(cfg.heads) {
            return Err(bad_config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden, cfg.heads
            )));
        }

        let (pooling_mode, normalize) = read_pipeline(dir)?;
        let pooling_path = dir.join("1_Pooling/config.json");
        let pooling = if pooling_path.is_file() {
            json(&pooling_path)?
        } else {
            serde_json::Value::Null
        };
        if pooling["word_embedding_dimension"]
            .as_u64()
            .is_some_and(|d| d as usize != cfg.hidden)
        {
            return Err(ModelError::BadConfig {
                path: pooling_path.display().to_string(),
                message: format!(
                    "word_embedding_dimension {} differs from hidden_size {}",
                    pooling["word_embedding_dimension"], cfg.hidden
                ),
            });
        }

        let sbert = dir.join("sentence_bert_config.json");
        let max_len = if sbert.is_file() {
            json(&sbert)?["max_seq_length"].as_u64().unwrap_or(256) as usize
        } else {
            256
        }
        .min(cfg.max_positions);

        let tok_path = file("tokenizer.json")?;
        let tokenizer =
            tokenizer::Tokenizer::from_json(&tok_path.display().to_string(), &read(&tok_path)?)?;
        let st = safetensors::SafeTensors::read(&file("model.safetensors")?)?;
        let dimension = cfg.hidden as u32;
        let bert = bert::Bert::load(&st, cfg)?;
        drop(st);
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "all-MiniLM-L6-v2".to_string());
        Ok(MiniLmEmbedder {
            model: Arc::new(Model {
                tokenizer,
                bert,
                max_len,
                pooling: pooling_mode,
                normalize,
            }),
            name,
            dimension,
            batch: 32,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// Uses up to `threads` threads per batch (default: the machine's
    /// available parallelism; at least 1).
    pub fn with_threads(mut self, threads: usize) -> MiniLmEmbedder {
        self.threads = threads.max(1);
        self
    }

    /// Encodes at most `batch` texts per forward pass (default 32; at least 1).
    pub fn with_batch(mut self, batch: usize) -> MiniLmEmbedder {
        self.batch = batch.max(1);
        self
    }

    /// The pooling the model directory asked for, and whether vectors are
    /// L2-normalised (see the [module docs](self)).
    pub fn pooling(&self) -> (Pooling, bool) {
        (self.model.pooling, self.model.normalize)
    }

    /// The longest token sequence (with `[CLS]` and `[SEP]`) a text is
    /// truncated to.
    pub fn max_tokens(&self) -> usize {
        self.model.max_len
    }

    /// The token ids of `text`, as the model sees them (`[CLS] … [SEP]`, truncated).
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        self.model.tokenizer.encode(text, self.model.max_len)
    }

    /// Embeds `texts` on the calling thread (blocking; [`Embedder::embed`]
    /// is the async way).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let m = &self.model;
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch) {
            let seqs: Vec<Vec<u32>> = chunk
                .iter()
                .map(|t| m.tokenizer.encode(t, m.max_len))
                .collect();
            if let Some(id) = seqs
                .iter()
                .flatten()
                .find(|id| **id as usize >= m.bert.vocab())
            {
                return Err(EmbedError::Failed {
                    embedder: self.name.clone(),
                    message: format!(
                        "token id {id} is outside the model's vocabulary of {} (tokenizer.json and config.json disagree)",
                        m.bert.vocab()
                    ),
                });
            }
            debug_assert!(seqs.iter().all(|s| s.len() <= m.bert.max_positions()));
            out.extend(m.bert.embed(&seqs, m.pooling, m.normalize, self.threads));
        }
        Ok(out)
    }
}

impl Embedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> u32 {
        self.dimension
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> EmbedFuture<'a> {
        let this = self.clone();
        let texts = texts.to_vec();
        Box::pin(async move {
            let name = this.name.clone();
            let failed = |what: String| EmbedError::Failed {
                embedder: name.clone(),
                message: what,
            };
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn_blocking(move || this.embed_blocking(&texts))
                    .await
                    .map_err(|e| failed(format!("the embedding thread failed: {e}")))?
            } else {
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::Builder::new()
                    .name("strata-minilm".into())
                    .spawn(move || {
                        let _ = tx.send(this.embed_blocking(&texts));
                    })
                    .map_err(|e| failed(format!("cannot start the embedding thread: {e}")))?;
                rx.await
                    .map_err(|_| failed("the embedding thread panicked".into()))?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(modules: Option<&str>, pooling: Option<&str>) -> Result<(Pooling, bool), String> {
        let d = tempfile::tempdir().unwrap();
        if let Some(m) = modules {
            std::fs::write(d.path().join("modules.json"), m).unwrap();
        }
        if let Some(p) = pooling {
            std::fs::create_dir(d.path().join("1_Pooling")).unwrap();
            std::fs::write(d.path().join("1_Pooling/config.json"), p).unwrap();
        }
        read_pipeline(d.path()).map_err(|e| e.to_string())
    }

    const MODULES: &str = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
        {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
        {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#;
    const MEAN: &str = r#"{"word_embedding_dimension":384,"pooling_mode_cls_token":false,"pooling_mode_mean_tokens":true}"#;
    const CLS: &str = r#"{"word_embedding_dimension":384,"pooling_mode_cls_token":true,"pooling_mode_mean_tokens":false}"#;

    #[test]
    fn the_pipeline_is_read_not_assumed() {
        assert_eq!(
            pipeline(Some(MODULES), Some(MEAN)),
            Ok((Pooling::Mean, true))
        );
        assert_eq!(pipeline(Some(MODULES), Some(CLS)), Ok((Pooling::Cls, true)));
        // Without a Normalize module: not normalised.
        let two = r#"[{"path":"","type":"sentence_transformers.models.Transformer"},
            {"path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#;
        assert_eq!(pipeline(Some(two), Some(CLS)), Ok((Pooling::Cls, false)));
        // Without modules.json: the pooling file's mode, normalised; mean without it.
        assert_eq!(pipeline(None, Some(CLS)), Ok((Pooling::Cls, true)));
        assert_eq!(pipeline(None, None), Ok((Pooling::Mean, true)));
    }

    #[test]
    fn unknown_modes_and_modules_are_refused_by_name() {
        let max = r#"{"pooling_mode_max_tokens":true}"#;
        let e = pipeline(Some(MODULES), Some(max)).unwrap_err();
        assert!(
            e.contains("1_Pooling/config.json")
                && e.contains("pooling mode max_tokens is not supported"),
            "{e}"
        );
        let both = r#"{"pooling_mode_cls_token":true,"pooling_mode_mean_tokens":true}"#;
        let e = pipeline(Some(MODULES), Some(both)).unwrap_err();
        assert!(e.contains("several pooling modes"), "{e}");
        let e = pipeline(Some(MODULES), Some("{}")).unwrap_err();
        assert!(e.contains("no pooling_mode_* is true"), "{e}");
        let dense = r#"[{"path":"","type":"sentence_transformers.models.Transformer"},
            {"path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
            {"path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#;
        let e = pipeline(Some(dense), Some(MEAN)).unwrap_err();
        assert!(
            e.contains("modules.json") && e.contains("models.Dense"),
            "{e}"
        );
        let e = pipeline(Some(MODULES), None).unwrap_err();
        assert!(e.contains("1_Pooling/config.json is missing"), "{e}");
    }

    #[test]
    fn a_missing_directory_names_the_file_and_the_script() {
        let e = MiniLmEmbedder::load("/nonexistent/model")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/model/config.json") && e.contains("minilm.sh"),
            "{e}"
        );
    }
}
