//! The full-text half of hybrid search on both SQL tiers, one test body run
//! through the SQLite plugin and the Postgres plugin (`DATABASE_URL`):
//! words found in at least half of a collection's rows leave the lexical
//! ranking (SQLite: FTS5's BM25 gives them no weight; Postgres applies the
//! same rule so a brain ranks alike after a migration), unless every word
//! of the text is such a word.

#[path = "support/migrate.rs"]
mod support;

use strata_host::{Hit, Hybrid, Metric, Record, Strata, Vectors};
use support::*;

/// Lexical-only hybrid (dense weight 0) on 400 notes: "note" is in every
/// row, "lunch" in 60%, "zebra" in five. Only the five zebra rows get a
/// lexical score for "Note, LUNCH and zebra?", in the order "zebra" alone
/// gives them; before, the next rows, matching only "note" or "lunch", were
/// ranked too (on both tiers the test failed with 10 rows instead of 5). A
/// text of only such words still ranks by them.
async fn common_words_leave_the_lexical_ranking(v: &Vectors, tier: &str) {
    v.create_collection("notes", 2, Metric::Cosine)
        .await
        .unwrap();
    let records: Vec<Record> = (0..400)
        .map(|i| {
            let mut text = format!("note {i}");
            if i % 5 < 3 {
                text.push_str(" lunch");
            }
            if i < 5 {
                // Different counts and lengths, so the five rank apart.
                text.push_str(&" zebra".repeat(i + 1));
                text.push_str(&" filler".repeat(10 - 2 * i));
            }
            let angle = i as f32 / 400.0;
            Record::new(format!("r{i:03}"), vec![angle.cos(), angle.sin()]).text(text)
        })
        .collect();
    v.upsert("notes", records).await.unwrap();
    let scored = async |text: &str| -> Vec<String> {
        let q = Hybrid::new(vec![0.0, 1.0], text)
            .weights(0.0, 1.0)
            .top_k(10);
        let hits: Vec<Hit> = v.hybrid_query("notes", &q).await.unwrap();
        hits.into_iter()
            .filter(|h| h.score > 0.0)
            .map(|h| h.id)
            .collect()
    };
    let zebra = scored("zebra").await;
    assert_eq!(zebra.len(), 5, "{tier}: {zebra:?}");
    assert_eq!(
        scored("Note, LUNCH and zebra?").await,
        zebra,
        "{tier}: only the rows holding the one word with weight are ranked, as that word ranks them"
    );
    let common = scored("note lunch").await;
    assert_eq!(
        common.len(),
        10,
        "{tier}: a text of only common words still ranks by them: {common:?}"
    );
}

#[test]
fn common_words_leave_the_lexical_ranking_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("lexical");
    let strata = Strata::load(config(dir.path(), &schema)).unwrap();
    rt().block_on(async {
        for (backend, tier) in [("src", "sqlite"), ("pg", "postgres")] {
            let v = strata.vectors_backend(backend).await.unwrap();
            common_words_leave_the_lexical_ranking(&v, tier).await;
        }
        drop_schema(&strata, &schema).await;
    });
}
