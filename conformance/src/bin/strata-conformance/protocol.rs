//! What the child process (the worker) tells the parent: one JSON message
//! per line on its stdout, behind a marker so that whatever a plugin
//! prints to stdout itself cannot be mistaken for a message.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_conformance::{Outcome, RunError};

/// What starts every message line.
pub(crate) const MARKER: &str = "\u{1e}strata-conformance\u{1f} ";

/// The plugin as its manifest describes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Loaded {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) api_version: String,
    pub(crate) contracts: Vec<String>,
}

/// One message.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Message {
    /// An entry point of the plugin is about to be called.
    Step(String),
    /// The plugin is loaded.
    Loaded(Loaded),
    /// What the health check said (a failed one is reported, not fatal).
    Health(String),
    /// A case starts.
    Start(String),
    /// A case ended.
    Done { id: String, outcome: Wire, ms: u64 },
    /// The run stopped before (or instead of) the cases.
    Error { step: String, message: String },
    /// Every case ran.
    Finished,
}

/// An [`Outcome`] on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Wire {
    Passed,
    Failed(String),
    Skipped(String),
    NotApplicable(String),
}

impl From<&Outcome> for Wire {
    fn from(o: &Outcome) -> Wire {
        match o {
            Outcome::Passed => Wire::Passed,
            Outcome::Failed(m) => Wire::Failed(m.clone()),
            Outcome::Skipped(m) => Wire::Skipped(m.clone()),
            Outcome::NotApplicable(m) => Wire::NotApplicable(m.clone()),
        }
    }
}

impl From<Wire> for Outcome {
    fn from(w: Wire) -> Outcome {
        match w {
            Wire::Passed => Outcome::Passed,
            Wire::Failed(m) => Outcome::Failed(m),
            Wire::Skipped(m) => Outcome::Skipped(m),
            Wire::NotApplicable(m) => Outcome::NotApplicable(m),
        }
    }
}

impl Message {
    /// The line for this message.
    pub(crate) fn line(&self) -> String {
        format!(
            "{MARKER}{}",
            serde_json::to_string(self).expect("messages serialise")
        )
    }

    /// The message in a line, or `None` for a line that is not one (what a
    /// plugin printed).
    pub(crate) fn parse(line: &str) -> Option<Message> {
        serde_json::from_str(line.strip_prefix(MARKER)?).ok()
    }

    /// A run error message.
    pub(crate) fn error(e: RunError) -> Message {
        Message::Error {
            step: e.step,
            message: e.message,
        }
    }

    /// A case's end.
    pub(crate) fn done(id: &str, outcome: &Outcome, duration: Duration) -> Message {
        Message::Done {
            id: id.to_string(),
            outcome: outcome.into(),
            ms: duration.as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_other_lines_are_not_messages() {
        let m = Message::Done {
            id: "sql::x".into(),
            outcome: Wire::Failed("a\nb \u{1} \"c\"".into()),
            ms: 7,
        };
        let line = m.line();
        assert!(!line.contains('\n'));
        match Message::parse(&line) {
            Some(Message::Done {
                id,
                outcome: Wire::Failed(msg),
                ms,
            }) => {
                assert_eq!(
                    (id.as_str(), msg.as_str(), ms),
                    ("sql::x", "a\nb \u{1} \"c\"", 7)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(Message::parse("{\"finished\":null}").is_none());
        assert!(Message::parse("plugin says hello").is_none());
        assert!(matches!(
            Message::parse(&Message::Finished.line()),
            Some(Message::Finished)
        ));
    }
}
