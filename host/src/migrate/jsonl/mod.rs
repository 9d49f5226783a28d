//! Export to and import from JSON Lines, streamed (one page in memory).
//!
//! The format (2), one JSON document per line:
//!
//! ```text
//! {"strata_export":2,"source":"local","dialect":"sqlite"}
//! {"table":{"name":"notes","columns":[{"name":"id","kind":"integer","not_null":true},…],
//!           "primary_key":["id"],"auto_key":true,"indexes":[{"name":"…","unique":false,"columns":["…"]}]}}
//! {"row":[1,"hello",{"b64":"AAEC"},2.5,null]}
//! {"end":{"table":"notes","rows":1}}
//! {"collection":{"name":"memories","dimension":3,"metric":"cosine"}}
//! {"record":{"id":"m1","vector":[0.1,0.2,0.3],"metadata":{"kind":"fact"},"text":"…"}}
//! {"end":{"collection":"memories","rows":1}}
//! {"trailer":{"tables":[{"name":"notes","rows":1}],"collections":[{"name":"memories","rows":1}],"lines":7,"sha256":"…"}}
//! ```
//!
//! Row values are in column order: integers as JSON integers, reals as JSON
//! numbers (always with a fraction or exponent, so `1.0` stays real;
//! non-finite reals as `{"f":"NaN"}`), text as strings, blobs as
//! `{"b64":"…"}` (standard base64 with padding), NULL as `null`. Vector
//! columns are exported as blobs of little-endian `f32`s whatever the source
//! stores.
//!
//! **The trailer** ends every file: the tables and collections in file
//! order with their row counts, the number of lines before it and the
//! SHA-256 of every byte before it. Without it a file cut between two
//! tables is a well-formed, shorter export. Readers check it as they read
//! (a line after it is an error too); [`contents`] reads a file whole and
//! says whether it matches, and [`import`] does that before writing
//! anything. Format 1 (before trailers) is still read by restores of old
//! logical backups, whose manifest's SHA-256 covers the whole file;
//! [`import`] refuses it. [`export_file`] writes to a temporary file renamed
//! into place when complete.
//!
//! Import creates each missing table **inside** the transaction that loads
//! it (types translated for the target as in [`super::schema`]), committed
//! at the table's `end` line after checking its row count: a failure or a
//! kill rolls the whole table back, creation included, leaving the target
//! clean. An existing table is merged into by its key, and must have one
//! ([`super::schema::require_unique_key`]). Collections are upserted in
//! batches (the vector contract has no transactions).

mod codec;
mod export;
mod import;
mod lines;

pub(crate) use export::{ExportWriter, export_collections, export_tables, write_header};
pub use export::{export, export_file};
pub use import::{ImportMode, import, import_with};
pub use lines::{Contents, MAX_LINE, contents};
