//! `strata vectors upsert NAME FILE`: records from JSON Lines, checked
//! before they are written.
//!
//! Every line is parsed and checked (a string `id`, a `vector` of finite
//! numbers as long as the collection's dimension, `metadata` an object or
//! absent, `text` a string or absent) before its batch is sent. A file up
//! to `--check-first-mb` MiB is read and checked whole first, so a bad
//! record anywhere in it writes nothing; a larger file (or stdin past the
//! bound) is written batch by batch as it is read. Either way an error
//! names the line and says how many records were written before it.

use std::io::BufRead;

use strata_host::{Error, PluginError, Record, Vectors};

/// The default bound of the whole-file check, in MiB.
pub(crate) const DEFAULT_CHECK_FIRST_MB: u64 = 64;

/// A record with the line it came from.
struct Line {
    number: usize,
    record: Record,
}

fn invalid(message: String) -> Error {
    Error::Plugin(PluginError::invalid_input(message))
}

/// Parses and checks one line of the file.
fn parse(text: &str, dim: usize) -> Result<Record, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let id = doc
        .get("id")
        .and_then(|v| v.as_str())
        .ok_or("missing string `id`")?;
    let values = doc
        .get("vector")
        .and_then(|v| v.as_array())
        .ok_or("missing `vector` (an array of numbers)")?;
    if values.len() != dim {
        return Err(format!(
            "`vector` has {} values, the collection's dimension is {dim}",
            values.len()
        ));
    }
    let mut vector = Vec::with_capacity(dim);
    for (i, v) in values.iter().enumerate() {
        let x = v
            .as_f64()
            .ok_or_else(|| format!("`vector[{i}]` is {v}, not a number"))?;
        let f = x as f32;
        if !f.is_finite() {
            return Err(format!("`vector[{i}]` = {x} is beyond the range of f32"));
        }
        vector.push(f);
    }
    let mut record = Record::new(id, vector);
    match doc.get("metadata") {
        None | Some(serde_json::Value::Null) => {}
        Some(m @ serde_json::Value::Object(_)) => record = record.metadata(m.clone()),
        Some(other) => return Err(format!("`metadata` must be an object, found {other}")),
    }
    match doc.get("text") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(t)) => record = record.text(t.clone()),
        Some(other) => return Err(format!("`text` must be a string, found {other}")),
    }
    Ok(record)
}

/// What an upsert did so far, for progress and for error messages.
struct Written {
    records: u64,
    last_line: usize,
}

impl Written {
    fn so_far(&self, checked_whole: bool) -> String {
        match (self.records, checked_whole) {
            (0, true) => "nothing was written (the file is checked whole before writing)".into(),
            (0, false) => "nothing was written".into(),
            (n, _) => format!(
                "{n} record(s) were written before it (lines 1–{})",
                self.last_line
            ),
        }
    }
}

async fn send(
    v: &Vectors,
    name: &str,
    batch: &mut Vec<Line>,
    written: &mut Written,
    checked_whole: bool,
    bar: &indicatif::ProgressBar,
) -> Result<(), Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let (first, last) = (batch[0].number, batch[batch.len() - 1].number);
    let records: Vec<Record> = std::mem::take(batch)
        .into_iter()
        .map(|l| l.record)
        .collect();
    let n = records.len() as u64;
    match v.upsert(name, records).await {
        Ok(_) => {
            written.records += n;
            written.last_line = last;
            bar.inc(n);
            Ok(())
        }
        Err(e) => {
            let kind = e.kind();
            Err(Error::Plugin(PluginError::new(
                kind,
                format!(
                    "upserting the records of lines {first}–{last} into {name} failed: {e}; {}",
                    written.so_far(checked_whole)
                ),
            )))
        }
    }
}

/// Upserts the records of `input` into collection `name` (of dimension
/// `dim`) in batches of `batch`, checking up to `check_first` bytes of
/// input whole before writing. Returns the records written.
pub(crate) async fn upsert_lines(
    v: &Vectors,
    name: &str,
    dim: usize,
    input: &mut dyn BufRead,
    batch: usize,
    check_first: u64,
    bar: &indicatif::ProgressBar,
) -> Result<u64, Error> {
    let batch = batch.max(1);
    let mut written = Written {
        records: 0,
        last_line: 0,
    };
    // Records read and checked, not yet sent.
    let mut pending: Vec<Line> = Vec::new();
    let mut bytes = 0u64;
    // Still reading the first `check_first` bytes whole, writing nothing.
    let mut checking = true;
    let mut number = 0usize;
    let mut text = String::new();
    loop {
        text.clear();
        let n = input.read_line(&mut text).map_err(|e| Error::Io {
            context: format!("reading line {} of the records", number + 1),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        number += 1;
        bytes += n as u64;
        if checking && bytes > check_first {
            // Past the bound: write what is checked so far, then stream.
            checking = false;
        }
        let line = text.trim();
        if line.is_empty() {
            continue;
        }
        let record = parse(line, dim)
            .map_err(|m| invalid(format!("line {number}: {m}; {}", written.so_far(checking))))?;
        pending.push(Line { number, record });
        if !checking {
            while pending.len() >= batch {
                let rest = pending.split_off(batch);
                let mut full = std::mem::replace(&mut pending, rest);
                send(v, name, &mut full, &mut written, false, bar).await?;
            }
        }
    }
    // Everything checked (or the tail of a streamed file): write it.
    let whole = checking;
    let mut rest = pending;
    while !rest.is_empty() {
        let tail = rest.split_off(batch.min(rest.len()));
        let mut chunk = std::mem::replace(&mut rest, tail);
        send(v, name, &mut chunk, &mut written, whole, bar).await?;
    }
    Ok(written.records)
}
