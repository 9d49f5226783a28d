//! The strata contract suites.
//!
//! One async function per behaviour, each run against a plugin loaded
//! through the host's own loader — the same path applications use — so a
//! green run means the `.so` works, not just its Rust code. Third parties
//! run the suites with the `strata-conformance` binary; the workspace's
//! tests run them against every in-tree plugin on real servers.
//!
//! # Design
//!
//! Files depend downwards only:
//!
//! - [`failure`]: how a case fails or skips, and the checks cases use;
//! - [`target`]: the plugin under test and its config;
//! - [`ctx`]: what a case runs with (fresh backends, names unique to the
//!   case, a real [`Ctx::reopen`], cleanup);
//! - [`case`]: a case — suite, name, required capabilities, troubleshooting
//!   text, body;
//! - [`sql`], [`vector`], [`blob`]: the cases of each contract;
//! - [`report`] and [`expect`]: outcomes, verdicts against a plugin's
//!   declared expectations, the summary line and JUnit;
//! - [`runner`]: runs cases in process;
//! - this file: gathers the suites.
//!
//! A case names the capabilities it needs; when the opened backend lacks
//! one the case is *skipped* and says which. Every case gets fresh
//! backends (opened from the same config), names unique to it for the
//! tables, collections and keys it creates, and the runner drops those
//! afterwards. Every case carries a troubleshooting text ([`Case::help`])
//! saying what the contract requires and where that is written; the rules
//! the contract documents leave open are decided in [`rules`].
//!
//! A plugin's known skips and failures are declared ([`Expectations`]),
//! so a run is judged exactly: an undeclared failure or skip fails it, and
//! so does a declared failure that passes.

#![warn(missing_docs, unreachable_pub)]

pub mod blob;
pub mod case;
pub mod ctx;
pub mod expect;
pub mod failure;
pub mod report;
pub mod rules;
pub mod runner;
pub mod sql;
pub mod target;
pub mod vector;

use std::{sync::Arc, time::Duration};

pub use case::{Case, Suite};
pub use ctx::Ctx;
pub use expect::{Expectations, ExpectationsError};
pub use failure::{CaseResult, Failure};
pub use report::{CaseOutcome, Outcome, Report, RunError, Verdict};
pub use runner::{Event, run};
pub use target::{ConfigError, ConformanceConfig, Target};

/// Every case of `suites`, in run order.
pub fn cases(suites: &[Suite]) -> Vec<Case> {
    let mut all = Vec::new();
    for s in suites {
        match s {
            Suite::Sql => all.extend(sql::cases()),
            Suite::Vector => all.extend(vector::cases()),
            Suite::Blob => all.extend(blob::cases()),
        }
    }
    all
}

/// The cases of `suites` whose id (`suite::name`) contains `filter`.
pub fn select(suites: &[Suite], filter: Option<&str>) -> Vec<Case> {
    cases(suites)
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.id().contains(f)))
        .collect()
}

/// The case with id `id`, in any suite.
pub fn find(id: &str) -> Option<Case> {
    cases(&Suite::ALL).into_iter().find(|c| c.id() == id)
}

/// Runs the cases of `suites` whose id contains `filter` (see [`run`]),
/// after checking that `expectations` name only cases that exist.
pub async fn run_suites(
    target: Arc<Target>,
    suites: &[Suite],
    filter: Option<&str>,
    expectations: &Expectations,
    case_timeout: Duration,
    on_event: impl FnMut(Event<'_>),
) -> Result<Report, ExpectationsError> {
    let all: Vec<String> = cases(&Suite::ALL).iter().map(Case::id).collect();
    expectations.check_ids(all.iter().map(String::as_str))?;
    let selected = select(suites, filter);
    Ok(run(target, &selected, expectations, case_timeout, on_event).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_are_unique_and_every_case_explains_itself() {
        let all = cases(&Suite::ALL);
        let mut ids: Vec<String> = all.iter().map(Case::id).collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "duplicate case ids");
        for c in &all {
            assert!(
                c.help.len() >= 40,
                "{}: the troubleshooting text is too short to help",
                c.id()
            );
        }
        assert!(all.len() >= 120, "{} cases", all.len());
    }
}
