//! Reading binary `COPY … TO STDOUT` output: the file format of
//! <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>
//! (a signature, flags and a header extension, then per tuple a field
//! count and per field a length, `-1` for NULL, and the value in its
//! binary send form; a field count of `-1` ends the data), fed in the
//! chunks the server sends, which need not end on a tuple.

use strata_plugin::{PluginError, PluginResult};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Splits binary `COPY` output into tuples.
pub(crate) struct CopyDecoder {
    buf: Vec<u8>,
    width: usize,
    header_done: bool,
    ended: bool,
    /// A tuple's fields as offsets into `buf` (`None` = NULL), reused.
    fields: Vec<Option<(usize, usize)>>,
}

fn malformed(what: &str) -> PluginError {
    PluginError::internal(format!("binary COPY output: {what}"))
}

impl CopyDecoder {
    /// A decoder of tuples of `width` fields.
    pub(crate) fn new(width: usize) -> CopyDecoder {
        CopyDecoder {
            buf: Vec::new(),
            width,
            header_done: false,
            ended: false,
            fields: Vec::with_capacity(width),
        }
    }

    /// Feeds the next chunk; calls `row` with each tuple it completes.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(&[Option<&[u8]>]) -> PluginResult<()>,
    ) -> PluginResult<()> {
        if self.ended {
            return if chunk.is_empty() {
                Ok(())
            } else {
                Err(malformed("data after the trailer"))
            };
        }
        self.buf.extend_from_slice(chunk);
        let mut pos = 0;
        if !self.header_done {
            // Signature, flags (4), extension length (4), extension.
            if self.buf.len() < SIGNATURE.len() + 8 {
                return Ok(());
            }
            if &self.buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(malformed("no PGCOPY signature"));
            }
            let at = SIGNATURE.len() + 4;
            let ext =
                u32::from_be_bytes(self.buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            if self.buf.len() < at + 4 + ext {
                return Ok(());
            }
            pos = at + 4 + ext;
            self.header_done = true;
        }
        let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(self.width);
        while let Some(count) = self.buf.get(pos..pos + 2) {
            let count = i16::from_be_bytes([count[0], count[1]]);
            if count == -1 {
                self.ended = true;
                pos += 2;
                if pos != self.buf.len() {
                    return Err(malformed("data after the trailer"));
                }
                break;
            }
            if count as usize != self.width {
                return Err(malformed(&format!(
                    "a tuple of {count} fields where the query has {} columns",
                    self.width
                )));
            }
            // Whole tuple present? Walk its lengths first.
            let mut at = pos + 2;
            self.fields.clear();
            let mut complete = true;
            for _ in 0..self.width {
                let Some(len) = self.buf.get(at..at + 4) else {
                    complete = false;
                    break;
                };
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                at += 4;
                if len < 0 {
                    self.fields.push(None);
                    continue;
                }
                let len = len as usize;
                if self.buf.len() < at + len {
                    complete = false;
                    break;
                }
                self.fields.push(Some((at, len)));
                at += len;
            }
            if !complete {
                break;
            }
            values.clear();
            values.extend(
                self.fields
                    .iter()
                    .map(|f| f.map(|(start, len)| &self.buf[start..start + len])),
            );
            row(&values)?;
            pos = at;
        }
        self.buf.drain(..pos);
        Ok(())
    }

    /// Checks that the data ended with its trailer.
    pub(crate) fn finish(&self) -> PluginResult<()> {
        if self.ended {
            Ok(())
        } else {
            Err(malformed("the data ends before its trailer"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rows: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&2u32.to_be_bytes());
        out.extend_from_slice(b"xx");
        for r in rows {
            out.extend_from_slice(&(r.len() as i16).to_be_bytes());
            for f in *r {
                match f {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(b) => {
                        out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                        out.extend_from_slice(b);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn decode(data: &[u8], chunk: usize, width: usize) -> PluginResult<Vec<Vec<Option<Vec<u8>>>>> {
        let mut d = CopyDecoder::new(width);
        let mut got = Vec::new();
        for c in data.chunks(chunk.max(1)) {
            d.feed(c, |fields| {
                got.push(fields.iter().map(|f| f.map(<[u8]>::to_vec)).collect());
                Ok(())
            })?;
        }
        d.finish()?;
        Ok(got)
    }

    #[test]
    fn tuples_split_anywhere_decode_alike() {
        let rows: Vec<[Option<&[u8]>; 3]> = vec![
            [Some(b"abc"), None, Some(b"")],
            [Some(&[0, 0, 0, 7]), Some(b"long value here"), None],
        ];
        let refs: Vec<&[Option<&[u8]>]> = rows.iter().map(|r| &r[..]).collect();
        let data = stream(&refs);
        let whole = decode(&data, data.len(), 3).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0][0].as_deref(), Some(&b"abc"[..]));
        assert_eq!(whole[0][1], None);
        assert_eq!(whole[0][2].as_deref(), Some(&b""[..]));
        assert_eq!(whole[1][1].as_deref(), Some(&b"long value here"[..]));
        for chunk in 1..data.len() {
            assert_eq!(decode(&data, chunk, 3).unwrap(), whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn malformed_output_is_an_error() {
        let data = stream(&[&[Some(b"a")]]);
        let cut = &data[..data.len() - 2];
        let e = decode(cut, 4, 1).unwrap_err();
        assert!(e.to_string().contains("before its trailer"), "{e}");
        let e = decode(&data, 4, 2).unwrap_err();
        assert!(
            e.to_string().contains("1 fields where the query has 2"),
            "{e}"
        );
        let mut bad = data.clone();
        bad[0] = b'X';
        assert!(decode(&bad, 64, 1).is_err());
        let mut more = data.clone();
        more.push(0);
        assert!(decode(&more, 64, 1).is_err());
    }
}
