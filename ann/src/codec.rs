//! Vectors as bytes, and normalisation.
//!
//! The byte form is `dim` little-endian `f32`s (`4 · dim` bytes), what the
//! SQLite plugin stores in a BLOB and what any store can keep as opaque
//! bytes.

/// `v` as little-endian `f32` bytes.
pub fn encode(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// [`decode`] into `out` (cleared first): one buffer for many vectors.
pub fn decode_into(bytes: &[u8], out: &mut Vec<f32>) {
    out.clear();
    out.extend(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    );
}

/// The `f32`s of little-endian bytes written by [`encode`]. A trailing
/// partial value (`bytes.len() % 4 != 0`) is ignored: check the length
/// against the expected dimension first where it matters.
pub fn decode(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Appends [`normalized`]`(v)` to `out` (the same bits, without a vector
/// of its own).
pub fn normalize_into(v: &[f32], out: &mut Vec<f32>) {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        out.extend_from_slice(v);
    } else {
        out.extend(v.iter().map(|&x| (f64::from(x) / norm) as f32));
    }
}

/// `v / ‖v‖`; the zero vector is returned unchanged (its cosine score
/// against anything is 0).
///
/// The norm is computed in `f64`: in `f32` the squares of components past
/// about 1.8e19 overflow (`[0, 0, 0, -3.4e38]` became the zero vector and
/// scored 0 against `[0, 0, 0, -1]`) and those below about 1e-23 underflow
/// (`[0, 0, 0, -1e-30]` was left unnormalised). In `f64` neither happens
/// for any finite `f32` vector of up to 2^40 dimensions.
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.len());
    normalize_into(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let v = [0.0, -0.0, 1.5, -3.25e-38, f32::MAX, f32::MIN_POSITIVE];
        let bytes = encode(&v);
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[8..12], &1.5f32.to_le_bytes());
        let back = decode(&bytes);
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        // A partial trailing value is dropped.
        assert_eq!(decode(&bytes[..23]).len(), 5);
    }

    #[test]
    fn normalized_has_unit_norm_and_keeps_zero() {
        let n = normalized(&[3.0, 4.0]);
        assert_eq!(n, vec![0.6, 0.8]);
        assert_eq!(normalized(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn normalized_survives_the_edges_of_f32() {
        // Before the fix: the f32 norm overflowed to infinity (giving the
        // zero vector) or underflowed to 0 (leaving the vector as it was).
        assert_eq!(
            normalized(&[0.0, 0.0, 0.0, -3.4e38]),
            vec![0.0, 0.0, 0.0, -1.0]
        );
        assert_eq!(
            normalized(&[f32::MAX, f32::MAX]),
            vec![0.70710677, 0.70710677]
        );
        assert_eq!(normalized(&[0.0, -1e-30, 0.0]), vec![0.0, -1.0, 0.0]);
        let tiny = normalized(&[f32::from_bits(1), f32::from_bits(1)]);
        assert_eq!(tiny, vec![0.70710677, 0.70710677], "subnormals");
        for v in [&[3.0f32, 4.0][..], &[0.0, 0.0], &[1e-30, -2.5, 7.0]] {
            let mut out = vec![9.0];
            normalize_into(v, &mut out);
            assert_eq!(out[1..], normalized(v)[..]);
        }
    }
}
