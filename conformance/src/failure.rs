//! How a case says it failed (or that it does not apply), and the checks
//! cases are written with.
//!
//! The lowest layer of the crate: it imports nothing from the others.

use strata_host::{Error, ErrorKind};

/// Why a case failed (or, with [`Failure::skip`], why it could not apply).
#[derive(Debug, Clone)]
pub struct Failure {
    message: String,
    skip: bool,
}

impl Failure {
    /// A failure with a message.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            skip: false,
        }
    }

    /// Not a failure: the case found at run time that it does not apply to
    /// this backend's configuration (e.g. a bulk path the plugin does not
    /// have). Reported as a skip with the reason; a plugin's expectations
    /// list such skips like any other.
    pub fn skip(reason: impl Into<String>) -> Failure {
        Failure {
            message: reason.into(),
            skip: true,
        }
    }

    /// Whether this is a skip.
    pub fn is_skip(&self) -> bool {
        self.skip
    }

    /// The message (or the reason of a skip).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message, consumed.
    pub fn into_message(self) -> String {
        self.message
    }

    /// The same failure with `context` in front of its message.
    pub fn context(self, context: impl std::fmt::Display) -> Failure {
        Failure {
            message: format!("{context}: {}", self.message),
            skip: self.skip,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(format!("unexpected `{}` error: {e}", e.kind()))
    }
}

/// What a case returns.
pub type CaseResult = Result<(), Failure>;

/// Expects `result` to be an error of `kind`.
pub fn expect_kind<T: std::fmt::Debug>(
    result: Result<T, Error>,
    kind: ErrorKind,
    what: &str,
) -> CaseResult {
    expect_error(result, kind, what).map(|_| ())
}

/// Expects an error of `kind` and hands it back for further checks.
pub fn expect_error<T: std::fmt::Debug>(
    result: Result<T, Error>,
    kind: ErrorKind,
    what: &str,
) -> Result<Error, Failure> {
    match result {
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(Failure::new(format!(
            "{what}: expected a `{kind}` error, got `{}`: {e}",
            e.kind()
        ))),
        Ok(v) => Err(Failure::new(format!(
            "{what}: expected a `{kind}` error, got Ok({})",
            short_debug(&v)
        ))),
    }
}

/// `Ok(Some(value))`, `Ok(None)` when refused with `invalid_input`, any
/// other outcome a failure: for the rules that let a backend either accept
/// an input (and then behave exactly) or refuse it up front.
pub fn accepted_or_refused<T>(result: Result<T, Error>, what: &str) -> Result<Option<T>, Failure> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::InvalidInput => Ok(None),
        Err(e) => Err(Failure::new(format!(
            "{what}: expected success or an `invalid_input` refusal, got `{}`: {e}",
            e.kind()
        ))),
    }
}

/// A `Debug` rendering cut to a readable length (results can be megabytes).
pub fn short_debug(v: &impl std::fmt::Debug) -> String {
    let s = format!("{v:?}");
    if s.len() <= 300 {
        return s;
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// Fails the case with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {{
        let holds: bool = $cond;
        if !holds {
            return Err($crate::failure::Failure::new(format!($($msg)+)));
        }
    }};
}

/// Fails the case unless `left == right`, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err($crate::failure::Failure::new(format!(
                        "{} != {}\n    left: {}\n   right: {}",
                        stringify!($left),
                        stringify!($right),
                        $crate::failure::short_debug(l),
                        $crate::failure::short_debug(r)
                    )));
                }
            }
        }
    };
    ($left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (l, r) => {
                if l != r {
                    return Err($crate::failure::Failure::new(format!(
                        "{}: {} != {}",
                        format!($($msg)+),
                        $crate::failure::short_debug(l),
                        $crate::failure::short_debug(r)
                    )));
                }
            }
        }
    };
}

pub(crate) use {ensure, ensure_eq};
