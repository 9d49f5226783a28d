//! Rules the contract leaves open, as this suite decides them.
//!
//! The contract is written in the plugin-api crate docs (`sql`, `vector`,
//! `blob`, `filter` modules, `capabilities`) and the kit's docs. Where they
//! are silent and a case still has to decide, the decision is written here
//! and in the case's troubleshooting text. Where a rule lets a backend
//! choose (accept and behave exactly, or refuse up front), a refusal is
//! always `invalid_input`: never `internal`, never a panic, never silence.
//!
//! # Statements (SQL)
//!
//! - Whether a statement returns rows is decided from the prepared
//!   statement, not its text: a query that starts with a comment, blanks
//!   or `WITH` returns its rows through `query`, and `run` of any query
//!   reports 0 changes.
//! - `run` or `query` of an empty statement (empty, blanks, only a
//!   comment) is `invalid_input`; `exec` of an empty script does nothing.
//! - A statement binds at least 1,000 parameters.
//!
//! # Handles
//!
//! - Two backends opened from one config of a durable backend share its
//!   storage: each sees the other's committed writes, never its
//!   uncommitted ones, and a reader does not wait for a writer.
//! - After any error the handle keeps serving.
//! - After `Backend::close`, every handle the backend gave out (SQL,
//!   vector, blob, and a multipart writer opened before) answers `closed`.
//! - A plugin's `Drop` must not panic: a raw-ABI plugin that panics while
//!   being dropped aborts the process (a kit-based plugin's drops are
//!   guarded). `strata-conformance` loads, opens, closes and drops a backend
//!   in a child process first and names the entry point that killed it.
//!
//! # Cancellation
//!
//! A caller may drop any call's future at any time (a timeout). The handle
//! must answer the next call at once; a SQL statement is all or nothing; a
//! transaction abandoned before commit is rolled back; an upsert abandoned
//! mid-flight never leaves a half-written record (a vector from one write
//! with metadata from another); an abandoned put or multipart upload leaves
//! no object or the whole object, never part of it.
//!
//! # Vectors
//!
//! - Dimensions above 65,536 are `invalid_input`. A backend may have a
//!   lower limit of its own (pgvector's, a configured maximum) and refuses
//!   above it with `invalid_input` naming the limit.
//! - Scores are computed as `Metric::score` computes them (in `f64`): no
//!   overflow for components near `±f32::MAX`, subnormals kept. A backend
//!   that cannot may refuse such vectors at upsert with `invalid_input`.
//!   Scores are never NaN or infinite.
//! - A zero vector in a cosine collection is either refused with
//!   `invalid_input` or stored and scored 0 against every query (as
//!   `Metric::score` does); a query by the zero vector likewise. Under dot
//!   and euclidean a zero vector is an ordinary vector.
//! - Sizes a caller controls (`top_k`, `candidates`, scan `limit`) are
//!   clamped to what exists before anything is allocated: `top_k =
//!   u32::MAX` on a small collection returns every record.
//! - Concurrent upserts of one id leave one whole record (vector, metadata
//!   and text from the same write).
//!
//! # Filters
//!
//! `Filter::matches` is the reference semantics, including where it may
//! surprise: a dotted filter key is always a path (a metadata key that
//! itself contains a dot is kept, but no filter can address it); a path
//! does not reach into objects inside arrays (`items.k` does not match
//! `{"items": [{"k": …}]}`); a filter key starting with `$` is an operator,
//! so metadata keys starting with `$` are kept but cannot be filtered on
//! (`invalid_input`); `1` and `1.0` are the same number. A filter of any
//! size the host accepts (2,000 values in `$in`, 1,000 `$or` clauses) is
//! answered exactly.
//!
//! # Hybrid
//!
//! The text of a hybrid query is plain words, never the full-text engine's
//! query syntax (quotes, `AND`/`OR`/`NOT`, `NEAR()`, `*`, `col:`, `&|!`).
//! Text without words (punctuation only, empty) is not an error: the
//! lexical ranking is empty and the results are the dense ranking.
//!
//! # Scans
//!
//! - A scan ends: a page that fills the limit exactly may carry a cursor,
//!   and the next page is then empty without one. An empty page never
//!   carries a cursor.
//! - `limit` 0 is either `invalid_input` or a page size the backend picks
//!   (at least one record while records remain).
//! - A cursor the backend never issued is either `invalid_input` or read
//!   as a position: the scan continues without error, returns no record
//!   twice, and ends.
//!
//! # Indexes
//!
//! A backend claiming `vector.ann` names the index that answers a
//! collection's queries under `"index"` in `collection_info`'s details once
//! it is built (`"exact"`, or a value starting with `"none"`, means no
//! index). The recall case expects the index built for 20,000 vectors, the
//! reopen case for 3,000; with `vector.persistent_index` the same index
//! answers after a close and reopen.
//!
//! # Keys and objects (blob)
//!
//! - Keys are non-empty UTF-8 strings of at most 1,024 bytes (the store's
//!   configured prefix not counted: a plugin whose store counts it must say
//!   so in its expectations). Every printable character works — spaces,
//!   `%`, `+`, `?`, `#`, `<&'"`, emoji.
//! - A key the store cannot keep verbatim (empty or `.`/`..` segments, a
//!   leading or trailing `/`, control characters) is refused with
//!   `invalid_input`, never stored under a normalised key. A key over 1,024
//!   bytes is `invalid_input`.
//! - A get never returns part of an object that was being overwritten: it
//!   returns one whole version. Of two multipart uploads to one key that
//!   both complete, the object is one of them whole.
//!
//! # Ranges
//!
//! The contract has no suffix ranges: `start..u64::MAX` reads from `start`
//! to the end (the end is clamped), which with `head` reads the last N
//! bytes. A range that starts at or past the end, an empty range and a
//! reversed range return no bytes or are `invalid_input`: never data, and
//! never the whole object (what S3 does with a range header it cannot parse).
//!
//! # Listing
//!
//! The contract has no delimiter and no start offset: a prefix is plain
//! text, and a listing resumes only from a cursor. A cursor stays valid
//! while keys change between pages: every key present throughout is listed
//! once, in order; keys added or deleted meanwhile may or may not appear.
//!
//! # Not in the contract
//!
//! Conditional puts (if-match / if-none-match), updating vector records by
//! filter, and list delimiters are not part of the contract; the suite has
//! no cases for them.
