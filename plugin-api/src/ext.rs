//! The extension slot every growable request and result carries.
//!
//! Structs passed by value cannot be prefix types, so each one that may
//! grow within 1.x carries an [`Extensions`]: string keys and JSON-text
//! values. A 1.x release adds an optional field as a documented key instead
//! of a new struct field, so a plugin built against 1.0 still loads. Keys
//! are namespaced: `strata.*` for those this crate documents, `<plugin>.*`
//! for a plugin's own. A reader ignores keys it does not know; a key whose
//! meaning cannot be ignored (say, "run as this user") is documented as
//! such, and a plugin that does not know it never sees a request carrying
//! it (the host checks the plugin's version first).

/// The documented `strata.*` keys.
pub mod keys {
    /// On a SQL [`Statement`](crate::sql::Statement): run it as this user.
    /// The value is the user's claims, a JSON object as a JWT carries them
    /// (`{"sub": "…", "role": "authenticated", …}`). It cannot be ignored:
    /// the host sends it only to a plugin claiming
    /// [`SQL_AS_USER`](crate::capabilities::SQL_AS_USER), and such a plugin
    /// refuses the statement rather than run it as anyone else (the
    /// Supabase plugin applies it as PostgREST does: transaction-local
    /// `request.jwt.claims` and `role`, so row-level security decides).
    /// Every statement of a transaction run as a user carries it. On a
    /// vector data request (upsert, query, hybrid_query, fetch, delete,
    /// count, scan) it means the same, for a plugin claiming
    /// [`VECTOR_AS_USER`](crate::capabilities::VECTOR_AS_USER).
    pub const AUTH_CLAIMS: &str = "strata.auth.claims";
    /// As [`AUTH_CLAIMS`], but the value is a JSON string holding a signed
    /// JWT (compact form): the plugin verifies it and uses its claims. A
    /// plugin that cannot verify tokens refuses it.
    pub const AUTH_JWT: &str = "strata.auth.jwt";
}

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec, Tuple2},
};

/// Extension entries: `key → JSON text`, in insertion order, keys unique.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct Extensions {
    entries: RVec<Tuple2<RString, RString>>,
}

impl Extensions {
    /// No entries (allocates nothing).
    pub const fn new() -> Self {
        Extensions {
            entries: RVec::new(),
        }
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The JSON text stored under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.0.as_str() == key)
            .map(|e| e.1.as_str())
    }

    /// Stores `json` under `key`, replacing an earlier value.
    pub fn insert(&mut self, key: impl Into<String>, json: impl Into<String>) {
        let key = key.into();
        let json = RString::from(json.into());
        match self.entries.iter_mut().find(|e| e.0.as_str() == key) {
            Some(e) => e.1 = json,
            None => self.entries.push(Tuple2(key.into(), json)),
        }
    }

    /// Every entry, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|e| (e.0.as_str(), e.1.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_and_get_finds() {
        let mut e = Extensions::new();
        assert!(e.is_empty());
        e.insert("strata.a", "1");
        e.insert("x.b", "\"s\"");
        e.insert("strata.a", "2");
        assert_eq!(e.get("strata.a"), Some("2"));
        assert_eq!(e.get("missing"), None);
        assert_eq!(e.iter().count(), 2);
    }
}
