//! Multi-index hashing for the near-duplicate index: a 64-bit hash is split into four
//! 16-bit bands and filed under each band's value. Two hashes within Hamming distance `t`
//! agree within `t / 4` bits on at least one band (pigeonhole), so probing every band value
//! within that radius of the query's bands finds every candidate; candidates are then
//! verified by their full distance.

/// Number of bands a hash is split into.
pub const BANDS: usize = 4;

/// Largest distance [`crate::Coord::claim_near`] searches; larger values are clamped. The
/// probe count grows as `4 × Σ C(16, k), k ≤ t / 4`: 4 probes up to distance 3, 68 up to 7,
/// 548 up to 11.
pub const MAX_NEAR_DISTANCE: u32 = 11;

/// The value of band `band` (0 = most significant 16 bits).
pub fn band(hash: u64, band: usize) -> u16 {
    (hash >> (48 - 16 * band)) as u16
}

/// Every (band, value) bucket to probe for hashes within `max_distance` of `hash`: the
/// hash's own four buckets first, then the neighbours.
pub fn probes(hash: u64, max_distance: u32) -> Vec<(usize, u16)> {
    let radius = max_distance.min(MAX_NEAR_DISTANCE) / BANDS as u32;
    let mut out: Vec<(usize, u16)> = (0..BANDS).map(|b| (b, band(hash, b))).collect();
    for b in 0..BANDS {
        let v = band(hash, b);
        if radius >= 1 {
            for i in 0..16 {
                out.push((b, v ^ (1 << i)));
            }
        }
        if radius >= 2 {
            for i in 0..16 {
                for j in i + 1..16 {
                    out.push((b, v ^ (1 << i) ^ (1 << j)));
                }
            }
        }
    }
    out
}

/// The clamped search distance.
pub fn clamp(max_distance: u32) -> u32 {
    max_distance.min(MAX_NEAR_DISTANCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_counts_follow_the_radius() {
        assert_eq!(probes(0, 3).len(), 4);
        assert_eq!(probes(0, 4).len(), 4 + 4 * 16);
        assert_eq!(probes(0, 11).len(), 4 + 4 * (16 + 120));
        assert_eq!(probes(0, 99).len(), probes(0, 11).len(), "clamped");
    }

    #[test]
    fn every_hash_within_the_distance_shares_a_probed_bucket() {
        let h = 0x0123_4567_89ab_cdef_u64;
        // One flipped bit in every band: distance 4, no band equal.
        let other = h ^ 0x0001_0002_0004_0008;
        let probed = probes(h, 4);
        assert!((0..BANDS).any(|b| probed.contains(&(b, band(other, b)))));
        assert!(!(0..BANDS).any(|b| band(h, b) == band(other, b)));
        // Distance 3 needs no neighbours at all.
        let close = h ^ 0x0001_0002_0004_0000;
        assert!((0..BANDS).any(|b| band(h, b) == band(close, b)));
    }
}
