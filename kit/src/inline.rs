//! Whether the current poll is an inline call's: the one piece of state
//! the panic guard (which sets it) and [`crate::runs`] (which exports it)
//! share, kept apart so neither imports the other.

use std::cell::Cell;

thread_local! {
    /// Set while the kit polls a call placed [`Runs::Inline`](crate::Runs::Inline).
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the code calling this is being polled as a
/// [`Runs::Inline`](crate::Runs::Inline) call, on the host's thread: a
/// backend whose `runs` answer depended on state (an index loaded, say)
/// checks here, inside the call, and moves work that turned out not to be
/// short to [`blocking`](crate::runs::blocking). `false` on the plugin's
/// own threads and outside any call.
pub fn is_inline() -> bool {
    INLINE.with(Cell::get)
}

/// Runs `f` (one poll of an inline call) with [`is_inline`] set, and
/// restores it after, so nested and later polls on the thread see their
/// own placement.
pub(crate) fn polled_inline<R>(f: impl FnOnce() -> R) -> R {
    let before = INLINE.with(|c| c.replace(true));
    let out = f();
    INLINE.with(|c| c.set(before));
    out
}
