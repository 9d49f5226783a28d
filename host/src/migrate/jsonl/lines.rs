//! Reading an export: line by line with a bound on the line length, and
//! what it holds (its headers) without loading it.

use std::io::BufRead;

use serde_json::Value as Json;

use crate::migrate::error::MigrateError;

use super::codec::io_err;

/// The tables and collections an export holds, in order, read from the
/// header lines only (rows are skipped unparsed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// Table names.
    pub tables: Vec<String>,
    /// Collection names.
    pub collections: Vec<String>,
}

/// The longest line an export may hold (a row or a record with its
/// vector, metadata and text). A longer one is a corrupt or foreign file,
/// reported as such instead of being read into memory whole.
pub const MAX_LINE: usize = 256 << 20;

/// Reads one line (with its `\n`) into `buf`, at most `max` bytes;
/// `Ok(false)` at the end of the input.
pub(super) fn read_line_bounded(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    buf.clear();
    let n = std::io::Read::take(&mut *input, max as u64 + 1).read_until(b'\n', buf)?;
    if n > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {max} bytes (the limit of an export line)"),
        ));
    }
    Ok(n > 0)
}

/// `BufRead::lines` with [`MAX_LINE`] (and the same end-of-line handling).
pub(super) struct BoundedLines<'a> {
    pub(super) input: &'a mut dyn BufRead,
    pub(super) buf: Vec<u8>,
    pub(super) max: usize,
}

impl Iterator for BoundedLines<'_> {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        match read_line_bounded(self.input, &mut self.buf, self.max) {
            Ok(false) => None,
            Err(e) => Some(Err(e)),
            Ok(true) => {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                Some(String::from_utf8(line).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
                }))
            }
        }
    }
}

/// Lists what an export holds without loading it.
pub fn contents(input: &mut dyn BufRead, file: &str) -> Result<Contents, MigrateError> {
    let bad = |n: usize, message: String| MigrateError::File {
        file: format!("{file}:{n}"),
        message,
    };
    let mut out = Contents::default();
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        if !read_line_bounded(input, &mut buf, MAX_LINE).map_err(io_err(file))? {
            break;
        }
        n += 1;
        if n == 1 {
            let first: Json = serde_json::from_slice(&buf).map_err(|e| bad(1, e.to_string()))?;
            if first.get("strata_export").and_then(Json::as_i64) != Some(1) {
                return Err(bad(1, "not a strata export".into()));
            }
            continue;
        }
        let (is_table, is_coll) = (
            buf.starts_with(b"{\"table\":"),
            buf.starts_with(b"{\"collection\":"),
        );
        if !(is_table || is_coll) {
            continue;
        }
        let doc: Json = serde_json::from_slice(&buf).map_err(|e| bad(n, e.to_string()))?;
        let name = doc
            .get(if is_table { "table" } else { "collection" })
            .and_then(|h| h.get("name"))
            .and_then(Json::as_str)
            .ok_or_else(|| bad(n, "a header without a name".into()))?;
        if is_table {
            out.tables.push(name.to_string());
        } else {
            out.collections.push(name.to_string());
        }
    }
    if n == 0 {
        return Err(bad(1, "empty file".into()));
    }
    Ok(out)
}

/// Numbered lines of an export, as the importer reads them.
pub(super) type Lines<'a> = dyn Iterator<Item = (usize, std::io::Result<String>)> + 'a;

#[cfg(test)]
mod bounded_lines {
    use super::*;

    fn lines(text: &[u8], max: usize) -> Vec<Result<String, String>> {
        let mut input = std::io::BufReader::with_capacity(4, text);
        BoundedLines {
            input: &mut input,
            buf: Vec::new(),
            max,
        }
        .map(|l| l.map_err(|e| e.to_string()))
        .collect()
    }

    #[test]
    fn ends_of_lines_as_bufread_lines() {
        assert_eq!(
            lines(b"a\r\nbb\n\nlast", 10),
            vec![
                Ok("a".to_string()),
                Ok("bb".to_string()),
                Ok(String::new()),
                Ok("last".to_string())
            ]
        );
        assert!(lines(b"", 10).is_empty());
    }

    #[test]
    fn a_line_past_the_limit_is_an_error_not_a_read() {
        let got = lines(b"0123456789\n0123456789X\nnext\n", 11);
        assert_eq!(got[0], Ok("0123456789".to_string()));
        let e = got[1].as_ref().unwrap_err();
        assert!(e.contains("longer than 11 bytes"), "{e}");
        // Exactly the limit (newline included) is fine; invalid UTF-8 is an error.
        assert_eq!(lines(b"0123456789\n", 11).len(), 1);
        assert!(lines(b"\xff\xfe\n", 11)[0].is_err());
    }
}
