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
//! - `1_Pooling/config.json`: must ask for mean pooling;
//! - `sentence_bert_config.json` (optional): `max_seq_length` (256 for
//!   all-MiniLM-L6-v2; longer texts are truncated, as
//!   `sentence-transformers` does).
//!
//! A text's vector is the mean of the encoder's last hidden states over
//! its tokens (`[CLS]` and `[SEP]` included), L2-normalised. The compute
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

        let pooling_path = file("1_Pooling/config.json")?;
        let pooling = json(&pooling_path)?;
        let mode = |k: &str| pooling[k].as_bool().unwrap_or(false);
        if !mode("pooling_mode_mean_tokens")
            || [
                "pooling_mode_cls_token",
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
            ]
            .iter()
            .any(|k| mode(k))
        {
            return Err(ModelError::BadConfig {
                path: pooling_path.display().to_string(),
                message: "only mean pooling (pooling_mode_mean_tokens alone) is supported".into(),
            });
        }
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
            out.extend(m.bert.embed(&seqs, self.threads));
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
