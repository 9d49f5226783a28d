//! Expectations: the cases a plugin is known to skip or fail, so that a run
//! is judged exactly instead of by "at least N passed".
//!
//! A plugin's expectations come from the `[conformance]` table of its
//! conformance config, or from a file of the same shape (`--expect FILE`;
//! the repository keeps one per in-tree plugin under `conformance/expected/`):
//!
//! ```toml
//! [skip]   # cases that must be skipped, with why (exact when present)
//! "sql::durable_across_reopen" = "an in-memory database keeps nothing"
//! [fail]   # cases expected to fail, with why (reported as XFAIL)
//! "vector::top_k_u32_max" = "allocates top_k slots before clamping (issue 16 #1)"
//! ```
//!
//! - A case listed under `fail` that fails is an *expected failure*
//!   (XFAIL); one that passes is an *unexpected pass* (XPASS) and fails
//!   the run, so a fixed bug cannot hide behind a stale entry.
//! - When `skip` is present, skips are exact: a case skipped without being
//!   listed, or listed and run to a pass, fails the run. Without `skip`,
//!   skips are reported but not judged. Cases of a contract the plugin does
//!   not implement at all are never judged (they are listed once, by
//!   contract, in the run's header line).
//! - Naming a case that does not exist is an error (a typo must not turn
//!   an expectation into a no-op).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::Value as Json;

use crate::report::{Outcome, Verdict};

/// Why expectations could not be read.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ExpectationsError {
    /// The file cannot be read.
    #[error("{}: cannot read the expectations file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML (or a `${VAR}` is unset).
    #[error("{message}")]
    Parse {
        /// What the TOML reader said, naming the file.
        message: String,
    },
    /// The document has the wrong shape.
    #[error("{origin}: {message}")]
    Shape {
        /// Where the expectations came from.
        origin: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// An expectation names a case the suite does not have.
    #[error(
        "{origin}: `{id}` is not a case of this suite (ids are `suite::name`, as printed by a run)"
    )]
    UnknownCase {
        /// Where the expectations came from.
        origin: String,
        /// The id.
        id: String,
    },
    /// Two sources list the same case.
    #[error("`{id}` is listed both in {first} and in {second}")]
    Conflict {
        /// The id.
        id: String,
        /// One source.
        first: String,
        /// The other.
        second: String,
    },
}

/// One expected skip or failure and where it was declared.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    reason: String,
    source: String,
}

/// What a plugin is expected to skip and fail; empty by default (every
/// case that runs must pass, skips are not judged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// `None`: skips are not judged.
    skip: Option<BTreeMap<String, Entry>>,
    fail: BTreeMap<String, Entry>,
    /// Where the `skip` table came from, for messages.
    skip_source: Option<String>,
}

impl Expectations {
    /// No expectations.
    pub fn none() -> Expectations {
        Expectations::default()
    }

    /// Reads an expectations file (TOML, `${VAR}` interpolated).
    pub fn from_file(path: &Path) -> Result<Expectations, ExpectationsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExpectationsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let json = strata_host::Config::plugin_config_from_toml(path, &text).map_err(|e| {
            ExpectationsError::Parse {
                message: e.to_string(),
            }
        })?;
        Expectations::from_json(&json, &path.display().to_string())
    }

    /// Expectations from a JSON document `{"skip": {id: reason}, "fail":
    /// {id: reason}}` (a `[conformance]` table read from TOML); `source`
    /// names it in messages.
    pub fn from_json(json: &Json, source: &str) -> Result<Expectations, ExpectationsError> {
        let shape = |message: String| ExpectationsError::Shape {
            origin: source.to_string(),
            message,
        };
        let Json::Object(map) = json else {
            return Err(shape(
                "expected a table with `skip` and `fail` tables".into(),
            ));
        };
        let table = |key: &str| -> Result<Option<BTreeMap<String, Entry>>, ExpectationsError> {
            let Some(v) = map.get(key) else {
                return Ok(None);
            };
            let Json::Object(entries) = v else {
                return Err(shape(format!(
                    "`{key}` must be a table of \"suite::case\" = \"reason\""
                )));
            };
            let mut out = BTreeMap::new();
            for (id, reason) in entries {
                match reason {
                    Json::String(r) if !r.trim().is_empty() => {
                        out.insert(
                            id.clone(),
                            Entry {
                                reason: r.clone(),
                                source: source.to_string(),
                            },
                        );
                    }
                    _ => {
                        return Err(shape(format!(
                            "`{key}.\"{id}\"` must be a non-empty string saying why"
                        )));
                    }
                }
            }
            Ok(Some(out))
        };
        if let Some(other) = map.keys().find(|k| *k != "skip" && *k != "fail") {
            return Err(shape(format!(
                "unknown key `{other}` (allowed: skip, fail)"
            )));
        }
        let skip = table("skip")?;
        let fail = table("fail")?.unwrap_or_default();
        if let Some(skip) = &skip
            && let Some(id) = skip.keys().find(|id| fail.contains_key(*id))
        {
            return Err(shape(format!("`{id}` is listed under both skip and fail")));
        }
        Ok(Expectations {
            skip_source: skip.as_ref().map(|_| source.to_string()),
            skip,
            fail,
        })
    }

    /// Both sets of expectations; a case listed in both is an error.
    pub fn merge(mut self, other: Expectations) -> Result<Expectations, ExpectationsError> {
        let conflict = |id: &str, a: &Entry, b: &Entry| ExpectationsError::Conflict {
            id: id.to_string(),
            first: a.source.clone(),
            second: b.source.clone(),
        };
        let all_mine: Vec<(&String, &Entry)> =
            self.fail.iter().chain(self.skip.iter().flatten()).collect();
        for (id, theirs) in other.fail.iter().chain(other.skip.iter().flatten()) {
            if let Some((_, mine)) = all_mine.iter().find(|(i, _)| *i == id) {
                return Err(conflict(id, mine, theirs));
            }
        }
        self.fail.extend(other.fail);
        match (&mut self.skip, other.skip) {
            (Some(mine), Some(theirs)) => {
                mine.extend(theirs);
                self.skip_source = Some(format!(
                    "{} and {}",
                    self.skip_source.take().unwrap_or_default(),
                    other.skip_source.unwrap_or_default()
                ));
            }
            (None, Some(theirs)) => {
                self.skip = Some(theirs);
                self.skip_source = other.skip_source;
            }
            (_, None) => {}
        }
        Ok(self)
    }

    /// Checks that every listed id is one of `known` (the ids of every case
    /// of every suite).
    pub fn check_ids<'a>(
        &self,
        known: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ExpectationsError> {
        let known: Vec<&str> = known.into_iter().collect();
        for (id, e) in self.fail.iter().chain(self.skip.iter().flatten()) {
            if !known.contains(&id.as_str()) {
                return Err(ExpectationsError::UnknownCase {
                    origin: e.source.clone(),
                    id: id.clone(),
                });
            }
        }
        Ok(())
    }

    /// Whether nothing is expected.
    pub fn is_empty(&self) -> bool {
        self.fail.is_empty() && self.skip.as_ref().is_none_or(BTreeMap::is_empty)
    }

    /// How the case `id` ending with `outcome` is judged.
    pub fn verdict(&self, id: &str, outcome: &Outcome) -> Verdict {
        let fail = self.fail.get(id);
        let skip = self.skip.as_ref().and_then(|s| s.get(id));
        match outcome {
            Outcome::NotApplicable(_) => Verdict::Skip,
            Outcome::Passed => match (fail, skip) {
                (Some(e), _) => Verdict::UnexpectedPass {
                    reason: e.reason.clone(),
                    source: e.source.clone(),
                },
                (None, Some(e)) => Verdict::NotSkipped {
                    reason: e.reason.clone(),
                    source: e.source.clone(),
                },
                (None, None) => Verdict::Pass,
            },
            Outcome::Failed(_) => match fail {
                Some(e) => Verdict::ExpectedFailure {
                    reason: e.reason.clone(),
                },
                None => Verdict::Fail,
            },
            Outcome::Skipped(_) => match (fail, &self.skip, skip) {
                (Some(e), _, _) => Verdict::UnexpectedSkip {
                    note: format!(
                        "listed in {} as expected to fail ({}), but it did not run",
                        e.source, e.reason
                    ),
                },
                (None, None, _) | (None, Some(_), Some(_)) => Verdict::Skip,
                (None, Some(_), None) => Verdict::UnexpectedSkip {
                    note: format!(
                        "not listed under [skip] in {}",
                        self.skip_source.as_deref().unwrap_or("the expectations")
                    ),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn exp(j: Json) -> Expectations {
        Expectations::from_json(&j, "test.toml").unwrap()
    }

    #[test]
    fn verdicts() {
        let e = exp(json!({
            "skip": {"sql::s": "no capability"},
            "fail": {"sql::f": "known bug"},
        }));
        let failed = Outcome::Failed("boom".into());
        let skipped = Outcome::Skipped("missing capability x".into());
        assert_eq!(e.verdict("sql::other", &Outcome::Passed), Verdict::Pass);
        assert_eq!(e.verdict("sql::other", &failed), Verdict::Fail);
        assert!(matches!(
            e.verdict("sql::f", &failed),
            Verdict::ExpectedFailure { .. }
        ));
        assert!(matches!(
            e.verdict("sql::f", &Outcome::Passed),
            Verdict::UnexpectedPass { .. }
        ));
        assert_eq!(e.verdict("sql::s", &skipped), Verdict::Skip);
        assert!(matches!(
            e.verdict("sql::s", &Outcome::Passed),
            Verdict::NotSkipped { .. }
        ));
        assert!(matches!(
            e.verdict("sql::other", &skipped),
            Verdict::UnexpectedSkip { .. }
        ));
        assert_eq!(
            e.verdict(
                "blob::x",
                &Outcome::NotApplicable("no blob contract".into())
            ),
            Verdict::Skip
        );
        // Without a skip table, skips are not judged.
        let loose = exp(json!({"fail": {"sql::f": "known bug"}}));
        assert_eq!(loose.verdict("sql::other", &skipped), Verdict::Skip);
        assert!(matches!(
            loose.verdict("sql::f", &skipped),
            Verdict::UnexpectedSkip { .. }
        ));
    }

    #[test]
    fn malformed_expectations_are_refused_naming_the_key() {
        for (doc, needle) in [
            (json!({"fail": {"sql::f": ""}}), "non-empty string"),
            (json!({"fail": ["sql::f"]}), "must be a table"),
            (json!({"xfail": {}}), "unknown key `xfail`"),
            (
                json!({"skip": {"sql::a": "x"}, "fail": {"sql::a": "y"}}),
                "both skip and fail",
            ),
        ] {
            let err = Expectations::from_json(&doc, "t.toml").unwrap_err();
            assert!(err.to_string().contains(needle), "{doc}: {err}");
        }
        let e = exp(json!({"fail": {"sql::nope": "x"}}));
        let err = e.check_ids(["sql::yes"]).unwrap_err();
        assert!(err.to_string().contains("sql::nope"), "{err}");
        let a = exp(json!({"fail": {"sql::a": "x"}}));
        let b = exp(json!({"skip": {"sql::a": "y"}}));
        assert!(matches!(
            a.merge(b).unwrap_err(),
            ExpectationsError::Conflict { .. }
        ));
    }
}
