//! `.npy` files of `f32` matrices: how benchmark datasets (embeddings
//! written by numpy or by `strata-memory`'s `embed_corpus` example) reach
//! the engine, its examples and `strata-bench`.
//!
//! Only what those need: a two-dimensional, C-order, little-endian `f32`
//! array (`'<f4'`), format versions 1.0–3.0 read, 1.0 written. Anything
//! else is refused with an [`NpyError`] naming what was found, never read
//! as something it is not.

use std::path::{Path, PathBuf};

/// Why a file is not a readable `f32` matrix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpyError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a `.npy` `f32` matrix; `why` says what is wrong.
    #[error("{path}: not a .npy f32 matrix ({why})")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        why: String,
    },
}

/// A matrix read from a `.npy` file: `rows × cols` values, row after row.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// The values, row-major.
    pub values: Vec<f32>,
    /// Rows.
    pub rows: usize,
    /// Columns (the vectors' dimension).
    pub cols: usize,
}

/// Reads the `f32` matrix in `path`.
pub fn read_f32_matrix(path: &Path) -> Result<Matrix, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_f32_matrix(&bytes).map_err(|why| NpyError::Format {
        path: path.to_path_buf(),
        why,
    })
}

/// The matrix in the bytes of a `.npy` file (the error: what is wrong).
pub fn parse_f32_matrix(bytes: &[u8]) -> Result<Matrix, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("no .npy magic".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("format version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("the header is cut short")?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not UTF-8")?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(format!("header {header:?}: need '<f4' in C order"));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in the header")?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("shape ({shape})")))
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(format!("shape ({shape}) is not two-dimensional"));
    };
    let body = &bytes[start + header_len..];
    if Some(body.len()) != rows.checked_mul(cols).and_then(|n| n.checked_mul(4)) {
        return Err(format!(
            "{} bytes of data for shape ({rows}, {cols})",
            body.len()
        ));
    }
    let values = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Matrix { values, rows, cols })
}

/// The version 1.0 header of a `rows × cols` C-order little-endian `f32`
/// matrix: write it, then the values row after row.
pub fn f32_matrix_header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + length (2) + dict + padding + '\n': a
    // multiple of 64, so the data is aligned as numpy writes it.
    let unpadded = 10 + dict.len() + 1;
    let pad = unpadded.div_ceil(64) * 64 - unpadded;
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&((dict.len() + pad + 1) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.extend(std::iter::repeat_n(b' ', pad));
    h.push(b'\n');
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rows: usize, cols: usize, values: &[f32]) -> Vec<u8> {
        let mut b = f32_matrix_header(rows, cols);
        for v in values {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn a_written_matrix_reads_back() {
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let bytes = file(4, 3, &values);
        assert_eq!(f32_matrix_header(4, 3).len() % 64, 0);
        let m = parse_f32_matrix(&bytes).unwrap();
        assert_eq!((m.rows, m.cols), (4, 3));
        assert_eq!(m.values, values);
        // numpy's own spelling of the same header (no trailing comma in the
        // dict, version 2.0) reads the same.
        let dict = b"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3)}\n";
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        v2.extend_from_slice(dict);
        v2.extend_from_slice(&bytes[f32_matrix_header(4, 3).len()..]);
        assert_eq!(parse_f32_matrix(&v2).unwrap(), m);
    }

    #[test]
    fn what_is_not_an_f32_matrix_is_refused_naming_why() {
        let good = file(2, 2, &[1.0, 2.0, 3.0, 4.0]);
        let err = |b: &[u8]| parse_f32_matrix(b).unwrap_err();
        assert!(err(b"not numpy at all").contains("magic"));
        assert!(err(&good[..good.len() - 1]).contains("15 bytes of data for shape (2, 2)"));
        // Same-length edits of the header, byte for byte.
        let edit = |b: &[u8], from: &[u8], to: &[u8]| {
            let at = b.windows(from.len()).position(|w| w == from).unwrap();
            let mut out = b.to_vec();
            out[at..at + to.len()].copy_from_slice(to);
            out
        };
        assert!(err(&edit(&good, b"<f4", b"<f8")).contains("need '<f4'"));
        assert!(err(&edit(&good, b"False", b"True,")).contains("need '<f4'"));
        let one_d = edit(&f32_matrix_header(4, 1), b"(4, 1)", b"(4,)  ");
        assert!(err(&one_d).contains("not two-dimensional"));
        let e = read_f32_matrix(Path::new("/nonexistent/x.npy")).unwrap_err();
        assert!(matches!(e, NpyError::Io { .. }), "{e}");
    }
}
