//! Adjusted Rand index (Hubert & Arabie 1985): agreement of two partitions of the same points,
//! 1 for identical partitions (up to renaming), about 0 for chance agreement.

use std::collections::HashMap;
use std::hash::Hash;

/// ARI of two labelings of the same points. Any hashable label type; each distinct value is one
/// group (a `noise` label is one group like any other). Returns 1.0 when both labelings put all
/// points in one group or each point alone (the index is undefined there and both agree).
///
/// # Panics
/// When the two labelings have different lengths.
pub fn adjusted_rand_index<A: Eq + Hash, B: Eq + Hash>(a: &[A], b: &[B]) -> f64 {
    assert_eq!(a.len(), b.len(), "labelings of different lengths");
    let n = a.len();
    if n < 2 {
        return 1.0;
    }
    let mut ia: HashMap<&A, usize> = HashMap::new();
    let mut ib: HashMap<&B, usize> = HashMap::new();
    let mut cells: HashMap<(usize, usize), u64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        let na = ia.len();
        let i = *ia.entry(x).or_insert(na);
        let nb = ib.len();
        let j = *ib.entry(y).or_insert(nb);
        *cells.entry((i, j)).or_default() += 1;
    }
    let mut rows = vec![0u64; ia.len()];
    let mut cols = vec![0u64; ib.len()];
    for (&(i, j), &c) in &cells {
        rows[i] += c;
        cols[j] += c;
    }
    let pairs = |c: u64| (c as f64) * (c as f64 - 1.0) / 2.0;
    let index: f64 = cells.values().map(|&c| pairs(c)).sum();
    let sum_a: f64 = rows.iter().map(|&c| pairs(c)).sum();
    let sum_b: f64 = cols.iter().map(|&c| pairs(c)).sum();
    let total = pairs(n as u64);
    let expected = sum_a * sum_b / total;
    let max = (sum_a + sum_b) / 2.0;
    if (max - expected).abs() < f64::EPSILON * total.max(1.0) {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_partitions_up_to_renaming() {
        assert_eq!(adjusted_rand_index(&[0, 0, 1, 1, 2], &["b", "b", "a", "a", "c"]), 1.0);
    }

    #[test]
    fn known_value() {
        // index 1, expected 2·1/6, max 1.5: ARI = (2/3)/(7/6) = 4/7.
        let v = adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]);
        assert!((v - 0.571_428_571_428_571_5).abs() < 1e-12, "{v}");
        // No pair agrees: index 0, expected 6·3/15 = 1.2, max 4.5, ARI = −1.2/3.3 = −4/11.
        let v = adjusted_rand_index(&[0, 0, 0, 1, 1, 1], &[0, 1, 2, 0, 1, 2]);
        assert!((v + 4.0 / 11.0).abs() < 1e-12, "{v}");
    }

    #[test]
    fn degenerate_partitions() {
        assert_eq!(adjusted_rand_index(&[1, 1, 1], &[2, 2, 2]), 1.0);
        assert_eq!(adjusted_rand_index::<u8, u8>(&[], &[]), 1.0);
        assert!(adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 0, 0]).abs() < 1e-12);
    }
}
