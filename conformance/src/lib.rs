//! The strata contract suites.
//!
//! One public async function per behaviour, each run against a plugin loaded
//! through the host's own loader — the same path applications use — so a
//! green run means the `.so` works, not just its Rust code. Third parties run
//! the suites with the `strata-conformance` binary; the workspace's tests run
//! them against every in-tree plugin on real servers.
//!
//! A case names the capabilities it needs; when the plugin's manifest lacks
//! one the case is *skipped* and says which. Every case gets a fresh backend
//! (opened from the same config) and a unique name prefix for the tables it
//! creates, and drops what it created.

#![warn(missing_docs, unreachable_pub)]

pub mod blob;
pub mod runner;
pub mod sql;
pub mod vector;

pub use runner::{Case, CaseOutcome, Ctx, Failure, Outcome, Report, Suite, Target, run};

/// Fails the case with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err($crate::Failure::new(format!($($msg)+)));
        }
    };
}

/// Fails the case unless `left == right`, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err($crate::Failure::new(format!(
                "{} != {}\n    left: {:?}\n   right: {:?}",
                stringify!($left), stringify!($right), l, r
            )));
        }
    }};
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err($crate::Failure::new(format!(
                "{}: {:?} != {:?}", format!($($msg)+), l, r
            )));
        }
    }};
}
