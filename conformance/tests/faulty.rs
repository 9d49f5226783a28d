//! Cases that guard a rule fail against a plugin that breaks it
//! (`fixtures/faulty`), where the suite before issue 16 gave a wrong
//! verdict: the pagination case checked the host's sorted `list()`, the
//! recall case never asked whether an index answered (exact search has
//! perfect recall), and the reopen case never closed the backend and
//! *skipped* when the collection was gone.

mod common;

use common::{plugin, run, stdout};

fn run_with(fault: &str, filter: &str) -> (std::process::Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faulty.toml");
    std::fs::write(&config, format!("fault = \"{fault}\"\n")).unwrap();
    let out = run(
        &[
            &"--plugin",
            &plugin("fixture_faulty"),
            &"--config",
            &config,
            &"--filter",
            &filter,
        ],
        &[],
    );
    let text = stdout(&out);
    (out, text)
}

#[test]
fn list_pages_out_of_key_order_fail_although_the_host_sorts_the_listing() {
    let (out, text) = run_with("none", "blob::list_pa");
    assert!(out.status.success(), "the honest store passes: {text}");
    assert!(
        text.contains("PASS blob::list_paginates_over_1000_keys"),
        "{text}"
    );
    assert!(
        text.contains("PASS blob::list_pages_are_in_key_order"),
        "{text}"
    );
    let (out, text) = run_with("unsorted_list_pages", "blob::list_pa");
    assert_eq!(out.status.code(), Some(1), "{text}");
    for case in [
        "list_paginates_over_1000_keys",
        "list_pages_are_in_key_order",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("FAIL blob::{case}")))
            .unwrap_or_else(|| panic!("{case} did not fail: {text}"));
        assert!(line.contains("pages must be in key order"), "{line}");
    }
}

#[test]
fn an_ann_claim_without_an_index_fails_the_recall_case() {
    let (out, text) = run_with("claims_an_index", "vector::recall_at_10_with_the_index");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL vector::recall_at_10_with_the_index") && text.contains("and no index"),
        "{text}"
    );
}

#[test]
fn a_persistent_index_that_is_gone_after_a_real_reopen_fails() {
    let (out, text) = run_with("forgets_on_reopen", "vector::index_survives_reopen");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL vector::index_survives_reopen")
            && text.contains("the collection is gone after closing and reopening"),
        "{text}"
    );
}
