//! Hybrid (dense + full-text) queries.

use std::collections::HashSet;

use serde_json::json;
use strata_host::{Hybrid, Metric, Query, Record};
use strata_plugin_api::capabilities as cap;

use super::support::{random_vectors, store_with};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Vector,
            hybrid_ranks_a_keyword_match_the_dense_ranking_misses,
            "With `vector.hybrid`, a record far from the query vector but holding the query's words ranks near the top of the fused ranking, and fused scores descend (plugin-api `HybridRequest`: reciprocal rank fusion).",
            cap::VECTOR_HYBRID
        ),
        case!(
            Suite::Vector,
            hybrid_respects_filters_and_weights,
            "Hybrid results honour the filter (applied to both rankings) and the weights: lexical weight 0 gives the dense order, dense weight 0 the lexical order (plugin-api `HybridRequest`).",
            cap::VECTOR_HYBRID
        ),
        case!(
            Suite::Vector,
            hybrid_filter_applies_before_the_cut,
            "A filtered hybrid query ranks full-text matches among the records passing the filter: a weak keyword match that passes is found behind more than `candidates` stronger ones that do not, and the filter follows overwrites, inserts and deletes (plugin-api `HybridRequest`: the filter applies to both rankings).",
            cap::VECTOR_HYBRID
        ),
        case!(
            Suite::Vector,
            hybrid_with_punctuation_only_text,
            "Hybrid text with no words (punctuation only, or empty) is not an error: the lexical ranking is empty and the results are the dense ranking (rules: hybrid).",
            cap::VECTOR_HYBRID
        ),
        case!(
            Suite::Vector,
            hybrid_text_is_not_query_syntax,
            "Hybrid text is plain words, never the full-text engine's query syntax: quotes, AND/OR/NOT, NEAR(), `*`, `col:` and parentheses neither fail nor change the meaning (rules: hybrid).",
            cap::VECTOR_HYBRID
        ),
        case!(
            Suite::Vector,
            hybrid_top_k_u32_max,
            "Hybrid with top_k = u32::MAX on a small collection returns every record: clamp the sizes a caller controls before allocating (kit `HybridRequest`; issue 16 #1).",
            cap::VECTOR_HYBRID
        ),
    ]
}

/// A record whose vector is far from the query but whose text holds the exact
/// keyword is ranked into the top results by hybrid search.
async fn hybrid_ranks_a_keyword_match_the_dense_ranking_misses(ctx: Ctx) -> CaseResult {
    let dim = 16;
    let (v, c) = store_with(&ctx, "hybrid", dim as u32, Metric::Cosine).await?;
    let q = random_vectors(21, 1, dim).remove(0);
    let mut recs: Vec<Record> = random_vectors(22, 300, dim)
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            Record::new(format!("doc{i}"), x)
                .text(format!("ordinary note number {i} about lunch and meetings"))
        })
        .collect();
    let far: Vec<f32> = q.iter().map(|x| -x).collect();
    recs.push(Record::new("needle", far).text("the invoice from Zanzibar Trading arrived"));
    v.upsert(&c, recs).await?;
    let dense = v.query(&c, &Query::new(q.clone()).top_k(10)).await?;
    ensure!(
        dense.iter().all(|h| h.id != "needle"),
        "fixture: the dense ranking must miss the needle"
    );
    let hits = v
        .hybrid_query(&c, &Hybrid::new(q.clone(), "zanzibar invoice").top_k(10))
        .await?;
    let pos = hits.iter().position(|h| h.id == "needle");
    ensure!(
        pos.is_some_and(|p| p < 3),
        "needle should be in the top 3 of the hybrid ranking: {:?}",
        hits.iter().map(|h| &h.id).collect::<Vec<_>>()
    );
    ensure!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "fused scores descend"
    );
    // The best dense result is still near the top.
    ensure!(
        hits.iter().take(3).any(|h| h.id == dense[0].id),
        "the best dense match should stay in the top 3"
    );
    Ok(())
}

/// Hybrid results honour the filter, and the weights shift the fusion.
async fn hybrid_respects_filters_and_weights(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "hybridf", 2, Metric::Cosine).await?;
    v.upsert(
        &c,
        [
            Record::new("a", vec![1.0, 0.0])
                .metadata(json!({"team": "red"}))
                .text("alpha report"),
            Record::new("b", vec![0.9, 0.1])
                .metadata(json!({"team": "blue"}))
                .text("beta report"),
            Record::new("c", vec![0.0, 1.0])
                .metadata(json!({"team": "red"}))
                .text("gamma keyword"),
            Record::new("d", vec![-1.0, 0.0])
                .metadata(json!({"team": "blue"}))
                .text("keyword keyword"),
        ],
    )
    .await?;
    let hits = v
        .hybrid_query(
            &c,
            &Hybrid::new(vec![1.0, 0.0], "keyword").filter(json!({"team": "red"})),
        )
        .await?;
    let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    ensure_eq!(ids, HashSet::from(["a", "c"]), "filtered hybrid");
    let dense_heavy = v
        .hybrid_query(
            &c,
            &Hybrid::new(vec![1.0, 0.0], "keyword").weights(1.0, 0.0),
        )
        .await?;
    ensure_eq!(dense_heavy[0].id, "a", "lexical weight 0 = dense order");
    let lexical_heavy = v
        .hybrid_query(
            &c,
            &Hybrid::new(vec![1.0, 0.0], "keyword").weights(0.0, 1.0),
        )
        .await?;
    ensure!(
        lexical_heavy[0].id == "d" || lexical_heavy[0].id == "c",
        "dense weight 0 = lexical order: {lexical_heavy:?}"
    );
    Ok(())
}

/// The filter is applied before each ranking is cut to `candidates`, not
/// after: the only full-text match passing it is found behind stronger
/// ones that do not, and writes move records in and out of it.
async fn hybrid_filter_applies_before_the_cut(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "hybridcut", 4, Metric::Cosine).await?;
    // Sixty strong matches failing the filter, two hundred rows passing it
    // without the keyword: a backend reading the full-text order only as
    // deep as the filter's share suggests must read it again, deeper.
    let mut recs: Vec<Record> = random_vectors(31, 60, 4)
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            Record::new(format!("blue{i}"), x)
                .metadata(json!({"team": "blue"}))
                .text("keyword keyword keyword")
        })
        .collect();
    recs.extend(
        random_vectors(32, 200, 4)
            .into_iter()
            .enumerate()
            .map(|(i, x)| {
                Record::new(format!("red{i}"), x)
                    .metadata(json!({"team": "red"}))
                    .text("plain words only")
            }),
    );
    // Written last: a tie on fused score would not put it first.
    recs.push(
        Record::new("target", vec![0.5, 0.5, 0.5, 0.5])
            .metadata(json!({"team": "red"}))
            .text("one keyword among several other plain words in a longer note"),
    );
    v.upsert(&c, recs).await?;
    let q = vec![1.0, 0.0, 0.0, 0.0];
    // Lexical order only, five candidates per ranking: without the filter
    // the five best full-text matches are all blue.
    let lexical = || {
        Hybrid::new(q.clone(), "keyword")
            .filter(json!({"team": "red"}))
            .weights(0.0, 1.0)
            .candidates(5)
            .top_k(5)
    };
    let unfiltered = v
        .hybrid_query(
            &c,
            &Hybrid::new(q.clone(), "keyword")
                .weights(0.0, 1.0)
                .candidates(5)
                .top_k(5),
        )
        .await?;
    ensure!(
        unfiltered.iter().all(|h| h.id.starts_with("blue")),
        "fixture: the five best full-text matches are blue: {:?}",
        unfiltered.iter().map(|h| &h.id).collect::<Vec<_>>()
    );
    let ids =
        |hits: &[strata_host::Hit]| -> Vec<String> { hits.iter().map(|h| h.id.clone()).collect() };
    let hits = v.hybrid_query(&c, &lexical()).await?;
    ensure!(
        hits.first()
            .is_some_and(|h| h.id == "target" && h.score > 0.0),
        "the only red full-text match leads the filtered lexical ranking: {:?}",
        hits.iter().map(|h| (&h.id, h.score)).collect::<Vec<_>>()
    );
    ensure!(
        hits.iter()
            .all(|h| h.id == "target" || h.id.starts_with("red")),
        "filtered hybrid returned a record failing the filter: {:?}",
        ids(&hits)
    );
    // Moved out of the filter by an overwrite; a new match moved in.
    v.upsert(
        &c,
        [
            Record::new("target", vec![0.5, 0.5, 0.5, 0.5])
                .metadata(json!({"team": "blue"}))
                .text("one keyword among several other plain words in a longer note"),
            Record::new("late", vec![0.0, 0.0, 0.0, 1.0])
                .metadata(json!({"team": "red"}))
                .text("a late keyword"),
        ],
    )
    .await?;
    let hits = v.hybrid_query(&c, &lexical()).await?;
    ensure!(
        hits.first()
            .is_some_and(|h| h.id == "late" && h.score > 0.0),
        "after the writes, the new red match leads: {:?}",
        ids(&hits)
    );
    ensure!(
        hits.iter().all(|h| h.id != "target"),
        "a record overwritten out of the filter is still returned: {:?}",
        ids(&hits)
    );
    v.delete_ids(&c, &["late"]).await?;
    let hits = v.hybrid_query(&c, &lexical()).await?;
    ensure!(
        hits.iter().all(|h| h.id.starts_with("red")),
        "after deleting the only red full-text match, only red records without the keyword remain: {:?}",
        hits.iter().map(|h| (&h.id, h.score)).collect::<Vec<_>>()
    );
    Ok(())
}

/// Twenty records with texts, for the text-handling cases.
async fn texts(ctx: &Ctx, name: &str) -> Result<(strata_host::Vectors, String), Failure> {
    let (v, c) = store_with(ctx, name, 4, Metric::Cosine).await?;
    let mut recs = vec![
        Record::new("ab", vec![0.1, 0.9, 0.0, 0.0]).text("alpha beta"),
        Record::new("g", vec![0.2, 0.8, 0.1, 0.0]).text("gamma delta"),
        Record::new("river", vec![0.3, 0.7, 0.2, 0.0]).text("the river runs"),
    ];
    for (i, x) in random_vectors(5, 17, 4).into_iter().enumerate() {
        recs.push(Record::new(format!("o{i}"), x).text(format!("unrelated words number {i}")));
    }
    v.upsert(&c, recs).await?;
    Ok((v, c))
}

/// Text without words changes nothing: the dense ranking comes back.
async fn hybrid_with_punctuation_only_text(ctx: Ctx) -> CaseResult {
    let (v, c) = texts(&ctx, "punct").await?;
    let q = vec![1.0, 0.2, 0.0, 0.3];
    let dense: Vec<String> = v
        .query(&c, &Query::new(q.clone()).top_k(10))
        .await?
        .into_iter()
        .map(|h| h.id)
        .collect();
    for text in ["?!.,;:()", "", "   ", "---", "\"\"", "*", "'", "…—«»"] {
        let hits = v
            .hybrid_query(&c, &Hybrid::new(q.clone(), text).top_k(10))
            .await
            .map_err(|e| Failure::from(e).context(format!("hybrid with the text {text:?}")))?;
        let ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
        ensure_eq!(
            ids,
            dense,
            "hybrid with the text {text:?}: the dense ranking"
        );
    }
    Ok(())
}

/// Query-language syntax in the text is read as plain words.
async fn hybrid_text_is_not_query_syntax(ctx: Ctx) -> CaseResult {
    let (v, c) = texts(&ctx, "syntax").await?;
    let q = vec![0.0, 0.0, 1.0, 0.0];
    let lexical = |text: &str| Hybrid::new(q.clone(), text).weights(0.0, 1.0).top_k(5);
    for (text, first) in [
        ("alpha AND NOT beta", "ab"),
        ("NEAR(alpha beta)", "ab"),
        ("\"alpha", "ab"),
        ("text:alpha", "ab"),
        ("^alpha", "ab"),
        ("alpha:*", "ab"),
        ("(gamma", "g"),
        ("gamma) OR (", "g"),
        ("river's", "river"),
        ("{river} [runs]", "river"),
    ] {
        let hits = v
            .hybrid_query(&c, &lexical(text))
            .await
            .map_err(|e| Failure::from(e).context(format!("hybrid with the text {text:?}")))?;
        ensure_eq!(
            hits.first().map(|h| h.id.as_str()),
            Some(first),
            "lexical-only hybrid with the text {text:?}: the best match"
        );
    }
    for text in [
        "alpha & beta | !gamma",
        "-beta gamma",
        "alph*",
        "NOT",
        "OR OR",
        "\\",
        "%_",
    ] {
        let hits = v
            .hybrid_query(&c, &lexical(text))
            .await
            .map_err(|e| Failure::from(e).context(format!("hybrid with the text {text:?}")))?;
        ensure_eq!(hits.len(), 5, "hybrid with the text {text:?}: results");
    }
    let both = v
        .hybrid_query(&c, &lexical("alpha & beta | !gamma"))
        .await?;
    let top2: HashSet<&str> = both.iter().take(2).map(|h| h.id.as_str()).collect();
    ensure_eq!(
        top2,
        HashSet::from(["ab", "g"]),
        "the two records holding alpha, beta or gamma lead `alpha & beta | !gamma`"
    );
    Ok(())
}

/// Hybrid with top_k = u32::MAX returns every record.
async fn hybrid_top_k_u32_max(ctx: Ctx) -> CaseResult {
    let (v, c) = texts(&ctx, "hmaxk").await?;
    let hits = v
        .hybrid_query(
            &c,
            &Hybrid::new(vec![1.0, 0.0, 0.0, 0.0], "alpha river").top_k(u32::MAX),
        )
        .await?;
    ensure_eq!(hits.len(), 20, "results of top_k u32::MAX on 20 records");
    let filtered = v
        .hybrid_query(
            &c,
            &Hybrid::new(vec![1.0, 0.0, 0.0, 0.0], "alpha river")
                .top_k(u32::MAX)
                .filter(json!({"missing": {"$exists": false}})),
        )
        .await?;
    ensure_eq!(
        filtered.len(),
        20,
        "results of top_k u32::MAX with a filter"
    );
    Ok(())
}
