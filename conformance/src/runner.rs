//! Running cases in process and collecting their outcomes.
//!
//! Each case gets a fresh [`Ctx`] and runs as its own tokio task under a
//! time limit, so a panicking or hanging case fails alone; its cleanup is
//! bounded by the same limit. A plugin that *aborts* the process cannot be
//! contained here: the `strata-conformance` binary runs this loop in a
//! child process and restarts it after the case that killed it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use strata_plugin_api::capabilities as cap;

use crate::{
    case::{Case, Suite},
    ctx::Ctx,
    expect::Expectations,
    report::{CaseOutcome, Outcome, Report, RunError},
    target::Target,
};

/// What [`run`] reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A case is about to run.
    Started(&'a Case),
    /// A case ended (its cleanup included).
    Finished(&'a CaseOutcome),
}

/// The capabilities an opened backend reports (the backend is closed
/// again); an error when the plugin cannot open a backend from the config.
pub async fn capabilities(target: &Target) -> Result<Vec<String>, RunError> {
    let backend = target.open().await.map_err(|e| RunError {
        step: "open".into(),
        message: e.to_string(),
    })?;
    let caps = backend.capabilities().map_err(|e| RunError {
        step: "capabilities()".into(),
        message: e.to_string(),
    });
    let closed = backend.close().await.map_err(|e| RunError {
        step: "close".into(),
        message: e.to_string(),
    });
    let caps = caps?;
    closed?;
    Ok(caps)
}

/// Runs `cases` against `target`, judging each outcome by `expectations`
/// and calling `on_event` before and after each case.
pub async fn run(
    target: Arc<Target>,
    cases: &[Case],
    expectations: &Expectations,
    case_timeout: Duration,
    mut on_event: impl FnMut(Event<'_>),
) -> Report {
    let mut report = Report::default();
    let capabilities = match capabilities(&target).await {
        Ok(c) => Arc::new(c),
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let contracts = target.plugin().info().contracts;
    for case in cases {
        on_event(Event::Started(case));
        let start = Instant::now();
        let outcome = if contracts & case.suite.contract_bit() == 0 {
            Outcome::NotApplicable(format!(
                "the plugin does not implement the {} contract",
                case.suite.name()
            ))
        } else if case.suite == Suite::Vector
            && capabilities
                .iter()
                .any(|c| c == cap::VECTOR_EVENTUALLY_CONSISTENT)
        {
            Outcome::Skipped(format!(
                "the backend declines read-after-write ({}): the vector cases read what they \
                 just wrote; run them with the backend's read-after-write option on",
                cap::VECTOR_EVENTUALLY_CONSISTENT
            ))
        } else if let Some(missing) = case
            .requires
            .iter()
            .find(|c| !capabilities.iter().any(|have| have == *c))
        {
            Outcome::Skipped(format!("missing capability {missing}"))
        } else {
            run_one(&target, case, &capabilities, case_timeout).await
        };
        let done = CaseOutcome {
            id: case.id(),
            verdict: expectations.verdict(&case.id(), &outcome),
            outcome,
            duration: start.elapsed(),
        };
        on_event(Event::Finished(&done));
        report.cases.push(done);
    }
    report
}

async fn run_one(
    target: &Arc<Target>,
    case: &Case,
    capabilities: &Arc<Vec<String>>,
    case_timeout: Duration,
) -> Outcome {
    let ctx = Ctx::new(target.clone(), capabilities.clone());
    let fut = (case.run)(ctx.clone());
    let result = tokio::spawn(async move { tokio::time::timeout(case_timeout, fut).await }).await;
    let outcome = match result {
        Ok(Ok(Ok(()))) => Outcome::Passed,
        Ok(Ok(Err(f))) if f.is_skip() => Outcome::Skipped(f.into_message()),
        Ok(Ok(Err(f))) => Outcome::Failed(f.into_message()),
        Ok(Err(_)) => Outcome::Failed(format!("timed out after {case_timeout:?}")),
        Err(join) => Outcome::Failed(format!("the case panicked: {join}")),
    };
    // Cleanup closes the case's backends, which waits for anything the case
    // left holding a connection (a transaction, a task it spawned): bounded,
    // so one bad case cannot stall the suite.
    let problem = match tokio::time::timeout(case_timeout, ctx.cleanup()).await {
        Ok(problems) if problems.is_empty() => None,
        Ok(problems) => Some(format!("cleanup: {}", problems.join("; "))),
        Err(_) => Some(format!(
            "cleanup (closing the case's backends, dropping its tables, collections and objects) did not finish within {case_timeout:?}: the case left a transaction, stream or task holding a connection"
        )),
    };
    match (problem, outcome) {
        (None, outcome) => outcome,
        (Some(p), Outcome::Failed(f)) => Outcome::Failed(format!("{f}; then {p}")),
        (Some(p), _) => Outcome::Failed(p),
    }
}
