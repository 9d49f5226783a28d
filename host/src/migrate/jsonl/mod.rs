//! Export to and import from JSON Lines, streamed (one page in memory).
//!
//! The format, one JSON document per line:
//!
//! ```text
//! {"strata_export":1,"source":"local","dialect":"sqlite"}
//! {"table":{"name":"notes","columns":[{"name":"id","kind":"integer","not_null":true},…],
//!           "primary_key":["id"],"auto_key":true,"indexes":[{"name":"…","unique":false,"columns":["…"]}]}}
//! {"row":[1,"hello",{"b64":"AAEC"},2.5,null]}
//! {"end":{"table":"notes","rows":1}}
//! {"collection":{"name":"memories","dimension":3,"metric":"cosine"}}
//! {"record":{"id":"m1","vector":[0.1,0.2,0.3],"metadata":{"kind":"fact"},"text":"…"}}
//! {"end":{"collection":"memories","rows":1}}
//! ```
//!
//! Row values are in column order: integers as JSON integers, reals as JSON
//! numbers (always with a fraction or exponent, so `1.0` stays real;
//! non-finite reals as `{"f":"NaN"}`), text as strings, blobs as
//! `{"b64":"…"}` (standard base64 with padding), NULL as `null`. Vector
//! columns are exported as blobs of little-endian `f32`s whatever the source
//! stores. Import creates each table (types translated for the target as in
//! [`super::schema`]) and loads it in **one transaction**, committed at the
//! table's `end` line after checking its row count: a failure rolls the
//! whole table back, leaving the target clean. Collections are upserted in
//! batches (the vector contract has no transactions).

mod codec;
mod export;
mod import;
mod lines;

pub use export::export;
pub(crate) use export::{export_collections, export_tables, write_header};
pub use import::{ImportMode, import, import_with};
pub use lines::{Contents, MAX_LINE, contents};
