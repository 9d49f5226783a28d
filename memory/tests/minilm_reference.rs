//! The pure-Rust all-MiniLM-L6-v2 against the reference: token ids and
//! embeddings computed by `sentence-transformers` (PyTorch) from the same
//! model directory (`fixtures/minilm-reference.json`; how it was made is in
//! `fixtures/minilm-reference.py` and `fixtures/README.md`).
//!
//! Needs the model: `scripts/models/minilm.sh` fetches it into
//! `~/.cache/strata/models/all-MiniLM-L6-v2` (or set `STRATA_MINILM_DIR`).
//! Without it, the tests pass after printing one SKIPPED line.

use std::sync::Arc;

use strata_memory::{Embedder, MiniLmEmbedder};

fn load() -> Option<MiniLmEmbedder> {
    let dir = strata_memory::minilm::default_model_dir().unwrap_or_default();
    if !dir.join("model.safetensors").is_file() {
        // One line for the whole file, whatever the number of tests.
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            eprintln!(
                "minilm reference tests: SKIPPED (no all-MiniLM-L6-v2 in {}: run scripts/models/minilm.sh)",
                dir.display()
            )
        });
        return None;
    }
    Some(MiniLmEmbedder::load(&dir).expect("the model directory loads"))
}

struct Case {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn reference() -> Vec<Case> {
    let j: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm-reference.json")).unwrap();
    j["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().unwrap().to_string(),
            ids: c["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect(),
            embedding: c["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

fn assert_close(text: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{text:?}: dimension");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let cos: f32 = got.iter().zip(want).map(|(a, b)| a * b).sum();
    println!(
        "{:>3} chars: largest difference {worst:.1e}, cosine {cos:.7}",
        text.chars().count()
    );
    assert!(
        worst <= 1e-4 && cos >= 0.9999,
        "{text:?}: largest component difference {worst:e}, cosine {cos}"
    );
}

#[test]
fn tokenizer_matches_the_reference_ids() {
    let Some(m) = load() else { return };
    assert_eq!(m.max_tokens(), 256);
    for c in reference() {
        assert_eq!(m.token_ids(&c.text), c.ids, "token ids of {:?}", c.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_match_sentence_transformers() {
    let Some(m) = load() else { return };
    assert_eq!((m.name(), m.dimension()), ("all-MiniLM-L6-v2", 384));
    let cases = reference();
    let texts: Vec<String> = cases.iter().map(|c| c.text.clone()).collect();
    // One batch of all the texts (packed, of different lengths) …
    let all = m.embed(&texts).await.unwrap();
    assert_eq!(all.len(), cases.len());
    for (c, v) in cases.iter().zip(&all) {
        assert_close(&c.text, v, &c.embedding);
    }
    // … and one text at a time, single-threaded, through the trait object.
    let one: Arc<dyn Embedder> = Arc::new(m.with_batch(1).with_threads(1));
    for c in &cases {
        let v = one.embed(std::slice::from_ref(&c.text)).await.unwrap();
        assert_close(&c.text, &v[0], &c.embedding);
    }
}

#[test]
fn embed_works_outside_a_tokio_runtime() {
    let Some(m) = load() else { return };
    let texts = vec!["a cat sat on the mat".to_string(), "a kitten".to_string()];
    let fut = m.embed(&texts);
    // A minimal executor: block on the future with a thread park waker.
    let v = block_on(fut).unwrap();
    assert_eq!(v.len(), 2);
    let sim: f32 = v[0].iter().zip(&v[1]).map(|(a, b)| a * b).sum();
    assert!(sim > 0.3, "cat / kitten similarity {sim}");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn semantic_neighbours_rank_first() {
    let Some(m) = load() else { return };
    let t = |s: &str| s.to_string();
    let v = m
        .embed_blocking(&[
            t("How do I bake sourdough bread?"),
            t("A recipe for a naturally leavened loaf"),
            t("The stock market fell sharply today"),
        ])
        .unwrap();
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(cos(&v[0], &v[1]) > cos(&v[0], &v[2]) + 0.2);
}

#[test]
fn a_config_disagreeing_with_the_weights_is_refused_naming_the_tensor() {
    let Some(_) = load() else { return };
    let src = strata_memory::minilm::default_model_dir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    for f in [
        "tokenizer.json",
        "1_Pooling/config.json",
        "model.safetensors",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["intermediate_size"] = 1024.into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let e = MiniLmEmbedder::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("encoder.layer.0.intermediate.dense.weight")
            && e.contains("[1536, 384]")
            && e.contains("[1024, 384]"),
        "{e}"
    );
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let e = MiniLmEmbedder::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("model.safetensors is missing"), "{e}");
}

/// A copy of the model directory (weights linked, not copied) whose
/// pipeline files say `modules` and `pooling`.
fn variant(modules: &str, pooling: &str) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let src = strata_memory::minilm::default_model_dir()?;
    if !src.join("model.safetensors").is_file() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("minilm-variant");
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "sentence_bert_config.json",
    ] {
        std::os::unix::fs::symlink(src.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("modules.json"), modules).unwrap();
    std::fs::write(dir.join("1_Pooling/config.json"), pooling).unwrap();
    Some((tmp, dir))
}

const WITH_NORMALIZE: &str = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
 {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
 {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#;
const WITHOUT_NORMALIZE: &str = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
 {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#;
const CLS: &str = r#"{"word_embedding_dimension":384,"pooling_mode_cls_token":true,"pooling_mode_mean_tokens":false}"#;

#[test]
fn the_pooling_the_directory_asks_for_is_the_one_used() {
    let Some(mean) = load() else { return };
    assert_eq!(mean.pooling(), (strata_memory::Pooling::Mean, true));
    let (_t1, cls_dir) = variant(WITH_NORMALIZE, CLS).unwrap();
    let cls = MiniLmEmbedder::load(&cls_dir).unwrap();
    assert_eq!(cls.pooling(), (strata_memory::Pooling::Cls, true));
    let (_t2, raw_dir) = variant(WITHOUT_NORMALIZE, CLS).unwrap();
    let raw = MiniLmEmbedder::load(&raw_dir).unwrap();
    assert_eq!(raw.pooling(), (strata_memory::Pooling::Cls, false));

    let texts = vec![
        "the user drinks green tea every morning".to_string(),
        "deploys happen on fridays".to_string(),
    ];
    let m = mean.embed_blocking(&texts).unwrap();
    let c = cls.embed_blocking(&texts).unwrap();
    let r = raw.embed_blocking(&texts).unwrap();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for i in 0..texts.len() {
        assert!(
            (dot(&c[i], &c[i]) - 1.0).abs() < 1e-4,
            "cls + Normalize is unit length"
        );
        assert!(
            dot(&m[i], &c[i]) < 0.95,
            "cls pooling must differ from mean pooling: cosine {}",
            dot(&m[i], &c[i])
        );
        let norm = dot(&r[i], &r[i]).sqrt();
        assert!(
            (norm - 1.0).abs() > 0.01,
            "no Normalize module: not unit length ({norm})"
        );
        for (x, y) in r[i].iter().zip(&c[i]) {
            assert!(
                (x / norm - y).abs() < 1e-5,
                "the same direction, unnormalised"
            );
        }
    }
}

#[test]
fn an_unknown_pooling_mode_is_a_clear_error() {
    let Some((_t, dir)) = variant(
        WITH_NORMALIZE,
        r#"{"word_embedding_dimension":384,"pooling_mode_lasttoken":true}"#,
    ) else {
        return;
    };
    let e = MiniLmEmbedder::load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("1_Pooling/config.json")
            && e.contains("pooling mode lasttoken is not supported")
            && e.contains("pooling_mode_cls_token"),
        "{e}"
    );
}
