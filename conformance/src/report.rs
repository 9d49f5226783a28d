//! What a run found: each case's outcome and verdict, the run's summary
//! line, and a JUnit report for CI systems.

use std::time::Duration;

/// How one case ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed, with the reason.
    Failed(String),
    /// It did not run: the backend lacks a capability the case needs, or
    /// the case found at run time that it does not apply.
    Skipped(String),
    /// It did not run: the plugin does not implement the case's contract.
    NotApplicable(String),
}

impl Outcome {
    /// The failure message or skip reason; empty for a pass.
    pub fn message(&self) -> &str {
        match self {
            Outcome::Passed => "",
            Outcome::Failed(m) | Outcome::Skipped(m) | Outcome::NotApplicable(m) => m,
        }
    }
}

/// How an outcome is judged against the plugin's
/// [`Expectations`](crate::expect::Expectations).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Passed, as expected.
    Pass,
    /// Failed, and no failure was expected.
    Fail,
    /// Skipped, as expected (or skips are not judged).
    Skip,
    /// Failed, as declared (XFAIL).
    ExpectedFailure {
        /// Why it is expected to fail.
        reason: String,
    },
    /// Passed although declared as failing (XPASS): the declaration is stale.
    UnexpectedPass {
        /// Why it was expected to fail.
        reason: String,
        /// Where that was declared.
        source: String,
    },
    /// Skipped although not declared as skipped.
    UnexpectedSkip {
        /// What was expected instead.
        note: String,
    },
    /// Declared as skipped, but it ran and passed.
    NotSkipped {
        /// Why it was expected to be skipped.
        reason: String,
        /// Where that was declared.
        source: String,
    },
}

impl Verdict {
    /// Whether this verdict makes the run fail.
    pub fn fails_the_run(&self) -> bool {
        matches!(
            self,
            Verdict::Fail
                | Verdict::UnexpectedPass { .. }
                | Verdict::UnexpectedSkip { .. }
                | Verdict::NotSkipped { .. }
        )
    }

    /// The word a run prints in front of the case id.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Skip => "SKIP",
            Verdict::ExpectedFailure { .. } => "XFAIL",
            Verdict::UnexpectedPass { .. } => "XPASS",
            Verdict::Fail | Verdict::UnexpectedSkip { .. } | Verdict::NotSkipped { .. } => "FAIL",
        }
    }

    /// What the verdict adds to the outcome's own message, if anything.
    pub fn note(&self) -> Option<String> {
        match self {
            Verdict::Pass | Verdict::Fail | Verdict::Skip => None,
            Verdict::ExpectedFailure { reason } => Some(format!("expected to fail: {reason}")),
            Verdict::UnexpectedPass { reason, source } => Some(format!(
                "passed, but {source} lists it as expected to fail ({reason}): remove the entry"
            )),
            Verdict::UnexpectedSkip { note } => Some(format!("skipped: {note}")),
            Verdict::NotSkipped { reason, source } => Some(format!(
                "ran and passed, but {source} lists it under [skip] ({reason}): remove the entry"
            )),
        }
    }
}

/// One case's result.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseOutcome {
    /// `suite::name`.
    pub id: String,
    /// What happened.
    pub outcome: Outcome,
    /// How it is judged.
    pub verdict: Verdict,
    /// How long it ran.
    pub duration: Duration,
}

/// Why a run stopped before its cases (or part of them) could run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunError {
    /// The step that failed: `load`, `manifest`, `open`, `sql()` …
    pub step: String,
    /// What happened.
    pub message: String,
}

/// All results of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Results in run order.
    pub cases: Vec<CaseOutcome>,
    /// What stopped the run, if something did.
    pub error: Option<RunError>,
}

impl Report {
    fn count(&self, pred: impl Fn(&CaseOutcome) -> bool) -> usize {
        self.cases.iter().filter(|c| pred(c)).count()
    }

    /// Cases that passed as expected.
    pub fn passed(&self) -> usize {
        self.count(|c| c.verdict == Verdict::Pass)
    }

    /// Cases whose verdict fails the run (failures, unexpected passes,
    /// unexpected skips).
    pub fn failed(&self) -> usize {
        self.count(|c| c.verdict.fails_the_run())
    }

    /// Cases skipped (as expected, or not judged).
    pub fn skipped(&self) -> usize {
        self.count(|c| c.verdict == Verdict::Skip)
    }

    /// Cases that failed as declared.
    pub fn expected_failures(&self) -> usize {
        self.count(|c| matches!(c.verdict, Verdict::ExpectedFailure { .. }))
    }

    /// Whether the run is green: no error and no case failing the run.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.failed() == 0
    }

    /// The closing line: `N passed, N failed, N skipped` (then `, N
    /// expected failures` when there are any, and what stopped the run).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        );
        match self.expected_failures() {
            0 => {}
            1 => s.push_str(", 1 expected failure"),
            n => s.push_str(&format!(", {n} expected failures")),
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(
                "; stopped at `{}`: {}",
                e.step,
                first_line(&e.message)
            ));
        }
        s
    }

    /// JUnit XML for CI systems. Expected failures are reported as skipped
    /// (with the reason), unexpected passes and skips as failures, and a
    /// run that stopped (a plugin that cannot be loaded, or that killed the
    /// process) as an `<error>` test case. Characters XML cannot carry
    /// (control characters from a plugin's message) are written as `\xNN`.
    pub fn junit(&self, suite_name: &str) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">\n",
            xml(suite_name),
            self.cases.len() + usize::from(self.error.is_some()),
            self.failed(),
            usize::from(self.error.is_some()),
            self.skipped() + self.expected_failures()
        ));
        if let Some(e) = &self.error {
            out.push_str(&format!(
                "  <testcase classname=\"strata-conformance\" name=\"{}\"><error message=\"{}\">{}</error></testcase>\n",
                xml(&e.step),
                xml(first_line(&e.message)),
                xml(&e.message)
            ));
        }
        for c in &self.cases {
            let (class, name) = c.id.split_once("::").unwrap_or(("", &c.id));
            out.push_str(&format!(
                "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(class),
                xml(name),
                c.duration.as_secs_f64()
            ));
            let message = match c.verdict.note() {
                Some(note) if c.outcome.message().is_empty() => note,
                Some(note) => format!("{note}\n{}", c.outcome.message()),
                None => c.outcome.message().to_string(),
            };
            match (&c.verdict, c.verdict.fails_the_run()) {
                (Verdict::Pass, _) => out.push_str("/>\n"),
                (_, true) => out.push_str(&format!(
                    "><failure message=\"{}\">{}</failure></testcase>\n",
                    xml(first_line(&message)),
                    xml(&message)
                )),
                (_, false) => out.push_str(&format!(
                    "><skipped message=\"{}\"/></testcase>\n",
                    xml(&message)
                )),
            }
        }
        out.push_str("</testsuite>\n");
        out
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// `s` escaped for XML text and attributes; characters XML 1.0 cannot hold
/// at all (control characters other than tab, newline and carriage return,
/// U+FFFE, U+FFFF) are written as `\xNN` / `\u{NNNN}` instead.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            '\u{fffe}' | '\u{ffff}' => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, outcome: Outcome, verdict: Verdict) -> CaseOutcome {
        CaseOutcome {
            id: id.into(),
            outcome,
            verdict,
            duration: Duration::from_millis(5),
        }
    }

    /// Every character left in the document is one XML 1.0 allows.
    fn assert_xml_chars(doc: &str) {
        for c in doc.chars() {
            let ok = matches!(c, '\t' | '\n' | '\r')
                || ('\u{20}'..='\u{d7ff}').contains(&c)
                || ('\u{e000}'..='\u{fffd}').contains(&c)
                || c >= '\u{10000}';
            assert!(ok, "character {:?} in the JUnit document", c);
        }
    }

    #[test]
    fn junit_strips_control_characters_from_plugin_messages() {
        let report = Report {
            cases: vec![case(
                "sql::x",
                Outcome::Failed("bad \u{1}\u{0} bytes <&> \u{ffff}".into()),
                Verdict::Fail,
            )],
            error: None,
        };
        let doc = report.junit("strata-conformance t\u{7}");
        assert_xml_chars(&doc);
        assert!(doc.contains("bad \\x01\\x00 bytes &lt;&amp;&gt;"), "{doc}");
        assert!(doc.contains("name=\"strata-conformance t\\x07\""), "{doc}");
    }

    #[test]
    fn junit_reports_a_run_that_stopped_as_an_error() {
        let report = Report {
            cases: vec![],
            error: Some(RunError {
                step: "manifest".into(),
                message: "the plugin killed the process (signal 6)\nthread panicked".into(),
            }),
        };
        let doc = report.junit("strata-conformance p");
        assert!(doc.contains("errors=\"1\""), "{doc}");
        assert!(
            doc.contains("<testcase classname=\"strata-conformance\" name=\"manifest\"><error message=\"the plugin killed the process (signal 6)\">"),
            "{doc}"
        );
        assert!(!report.ok());
        assert!(
            report.summary().contains("stopped at `manifest`"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn verdicts_count_and_render() {
        let report = Report {
            cases: vec![
                case("sql::a", Outcome::Passed, Verdict::Pass),
                case(
                    "sql::b",
                    Outcome::Failed("boom".into()),
                    Verdict::ExpectedFailure {
                        reason: "known".into(),
                    },
                ),
                case(
                    "sql::c",
                    Outcome::Passed,
                    Verdict::UnexpectedPass {
                        reason: "known".into(),
                        source: "x.toml".into(),
                    },
                ),
                case("sql::d", Outcome::Skipped("cap".into()), Verdict::Skip),
            ],
            error: None,
        };
        assert_eq!(
            report.summary(),
            "1 passed, 1 failed, 1 skipped, 1 expected failure"
        );
        assert!(!report.ok());
        let doc = report.junit("s");
        assert!(doc.contains("failures=\"1\""), "{doc}");
        assert!(doc.contains("skipped=\"2\""), "{doc}");
        assert!(
            doc.contains("<skipped message=\"expected to fail: known\nboom\"/>"),
            "{doc}"
        );
    }
}
