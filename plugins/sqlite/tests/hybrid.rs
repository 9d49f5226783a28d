//! The full-text half of hybrid search through the loaded `.so`: words in
//! at least half of a collection's rows, which FTS5's BM25 gives no weight,
//! are left out of the lexical ranking (the rows they alone match would
//! otherwise all be ranked, for nothing).

mod common;

use strata_host::{Hybrid, Metric, Record, Strata};

use common::plugin;

/// Lexical-only hybrid (dense weight 0) on 400 notes: "note" is in every
/// row, "lunch" in 60%, "zebra" in five. Only the five zebra rows get a
/// lexical score for "note lunch zebra", in the order "zebra" alone gives
/// them; before the change the next rows, matching only "note" or "lunch",
/// were ranked too (scored by FTS5's 10⁻⁶ floor). A text of only such
/// words still ranks by them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_in_half_the_rows_leave_the_lexical_ranking() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plugins.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {:?} }}\n",
            plugin(),
            dir.path().join("db.sqlite")
        ),
    )
    .unwrap();
    let strata = Strata::load(&cfg).unwrap();
    let v = strata.vectors().await.unwrap();
    v.create_collection("notes", 2, Metric::Cosine)
        .await
        .unwrap();
    let records = (0..400).map(|i| {
        let mut text = format!("note {i}");
        if i % 5 < 3 {
            text.push_str(" lunch");
        }
        if i < 5 {
            // Different lengths and counts, so BM25 orders the five.
            text.push_str(&" zebra".repeat(i + 1));
            text.push_str(&" filler".repeat(10 - 2 * i));
        }
        let angle = i as f32 / 400.0;
        Record::new(format!("r{i:03}"), vec![angle.cos(), angle.sin()]).text(text)
    });
    v.upsert("notes", records).await.unwrap();
    let lexical = |text: &str| {
        Hybrid::new(vec![0.0, 1.0], text)
            .weights(0.0, 1.0)
            .top_k(10)
    };
    let scored = |hits: Vec<strata_host::Hit>| {
        hits.into_iter()
            .filter(|h| h.score > 0.0)
            .map(|h| h.id)
            .collect::<Vec<_>>()
    };
    let zebra = scored(v.hybrid_query("notes", &lexical("zebra")).await.unwrap());
    assert_eq!(zebra.len(), 5, "{zebra:?}");
    let all = scored(
        v.hybrid_query("notes", &lexical("note lunch zebra"))
            .await
            .unwrap(),
    );
    assert_eq!(
        all, zebra,
        "only the rows holding the one word with weight are ranked, as that word ranks them"
    );
    let common = scored(
        v.hybrid_query("notes", &lexical("note lunch"))
            .await
            .unwrap(),
    );
    assert_eq!(
        common.len(),
        10,
        "a text of only common words still ranks by them: {common:?}"
    );
}
