//! Stored vectors (embeddings): little-endian `f32`s, nothing else, so any language reads them.
//! Messages carry only the storage key.

/// The stored bytes of `v`.
pub fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Reads stored bytes back (`None` when empty or not a whole number of `f32`s).
pub fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    (!bytes.is_empty() && bytes.len().is_multiple_of(4))
        .then(|| bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_partial_vectors() {
        let v = [1.0, -2.5, f32::MIN_POSITIVE];
        assert_eq!(
            encode(&v),
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes(), f32::MIN_POSITIVE.to_le_bytes()].concat()
        );
        assert_eq!(decode(&encode(&v)).as_deref(), Some(&v[..]));
        assert_eq!(decode(&[1, 2, 3]), None);
        assert_eq!(decode(&[]), None);
    }
}
