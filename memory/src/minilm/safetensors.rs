//! A reader for the safetensors format, F32 tensors only.
//!
//! The file is: 8 bytes, the little-endian length `n` of a JSON header;
//! `n` bytes of JSON mapping each tensor name to `{"dtype", "shape",
//! "data_offsets": [begin, end]}` (offsets relative to the first byte after
//! the header), plus an optional `"__metadata__"` object of strings; then
//! the tensors' bytes, little-endian, row-major.

use std::{collections::BTreeMap, path::Path};

use super::ModelError;

/// One tensor's place in the file.
#[derive(Debug, Clone)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// A safetensors file read into memory.
pub(crate) struct SafeTensors {
    path: String,
    data: Vec<u8>,
    /// Where the tensor bytes start in `data`.
    base: usize,
    entries: BTreeMap<String, Entry>,
}

impl SafeTensors {
    /// Reads and checks the file at `path` (header, offsets within the file).
    pub(crate) fn read(path: &Path) -> Result<SafeTensors, ModelError> {
        let data = std::fs::read(path).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        SafeTensors::parse(path.display().to_string(), data)
    }

    /// Parses `data` (named `path` in errors).
    pub(crate) fn parse(path: String, data: Vec<u8>) -> Result<SafeTensors, ModelError> {
        let bad = |message: String| ModelError::BadSafetensors {
            path: path.clone(),
            message,
        };
        if data.len() < 8 {
            return Err(bad(format!(
                "{} bytes: too short for the 8-byte header length",
                data.len()
            )));
        }
        let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let base = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_add(8))
            .filter(|b| *b <= data.len())
            .ok_or_else(|| {
                bad(format!(
                    "header length {n} runs past the end of the file ({} bytes)",
                    data.len()
                ))
            })?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&data[8..base])
                .map_err(|e| bad(format!("the header is not a JSON object: {e}")))?;
        let mut entries = BTreeMap::new();
        let payload = data.len() - base;
        for (name, v) in header {
            if name == "__metadata__" {
                continue;
            }
            let field = |k: &str| {
                v.get(k)
                    .ok_or_else(|| bad(format!("tensor {name}: no \"{k}\" in the header")))
            };
            let dtype = field("dtype")?
                .as_str()
                .ok_or_else(|| bad(format!("tensor {name}: dtype is not a string")))?
                .to_string();
            let usizes = |k: &str| -> Result<Vec<usize>, ModelError> {
                field(k)?
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|x| x.as_u64().and_then(|x| usize::try_from(x).ok()))
                            .collect::<Option<Vec<usize>>>()
                    })
                    .ok_or_else(|| {
                        bad(format!(
                            "tensor {name}: {k} is not an array of non-negative integers"
                        ))
                    })
            };
            let shape = usizes("shape")?;
            let offsets = usizes("data_offsets")?;
            let [begin, end] = offsets[..] else {
                return Err(bad(format!(
                    "tensor {name}: data_offsets has {} numbers, not 2",
                    offsets.len()
                )));
            };
            if begin > end || end > payload {
                return Err(bad(format!(
                    "tensor {name}: data_offsets [{begin}, {end}] outside the {payload} data bytes"
                )));
            }
            entries.insert(
                name,
                Entry {
                    dtype,
                    shape,
                    begin,
                    end,
                },
            );
        }
        Ok(SafeTensors {
            path,
            data,
            base,
            entries,
        })
    }

    /// Tensor `name` as f32 values, row-major; refused unless it is F32
    /// of exactly `shape`.
    pub(crate) fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        if e.dtype != "F32" {
            return Err(ModelError::WrongDtype {
                name: name.to_string(),
                dtype: e.dtype.clone(),
            });
        }
        if e.shape != shape {
            return Err(ModelError::WrongShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: e.shape.clone(),
            });
        }
        let count: usize = shape.iter().product();
        if e.end - e.begin != count * 4 {
            return Err(ModelError::BadSafetensors {
                path: self.path.clone(),
                message: format!(
                    "tensor {name}: {} bytes for {count} f32 values",
                    e.end - e.begin
                ),
            });
        }
        let bytes = &self.data[self.base + e.begin..self.base + e.end];
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, payload: &[u8]) -> Vec<u8> {
        let mut d = (header.len() as u64).to_le_bytes().to_vec();
        d.extend_from_slice(header.as_bytes());
        d.extend_from_slice(payload);
        d
    }

    fn floats(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_f32_tensors_at_their_offsets() {
        let payload = [floats(&[1.0, 2.0]), floats(&[3.0, 4.0, 5.0, 6.0])].concat();
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}"#;
        let st = SafeTensors::parse("t".into(), file(h, &payload)).unwrap();
        assert_eq!(st.f32("a", &[2]).unwrap(), vec![1.0, 2.0]);
        assert_eq!(st.f32("b", &[2, 2]).unwrap(), vec![3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn refuses_wrong_shape_dtype_missing_and_truncated() {
        let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}"#;
        let st = SafeTensors::parse("t".into(), file(h, &[0; 16])).unwrap();
        let e = st.f32("a", &[3]).unwrap_err().to_string();
        assert!(
            e.contains("tensor a") && e.contains("[3]") && e.contains("[2]"),
            "{e}"
        );
        let e = st.f32("i", &[1]).unwrap_err().to_string();
        assert!(e.contains("I64"), "{e}");
        let e = st.f32("nope", &[1]).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let e = SafeTensors::parse("t".into(), file(h, &[0; 10]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("outside"), "{e}");
        let e = SafeTensors::parse("t".into(), vec![255; 12])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("runs past"), "{e}");
    }
}
