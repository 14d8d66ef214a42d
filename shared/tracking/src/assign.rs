//! Minimum-cost assignment: the Hungarian algorithm (Kuhn–Munkres with potentials, O(n³)) and
//! the partial assignment with a cost limit that the tracker uses.

/// A dense, rectangular cost matrix, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct CostMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl CostMatrix {
    /// A `rows × cols` matrix whose entry `(i, j)` is `f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f64) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Self { rows, cols, data }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The entry at row `i`, column `j`.
    ///
    /// # Panics
    /// When `i` or `j` is out of range.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(i < self.rows && j < self.cols, "cost matrix index ({i}, {j}) out of range");
        self.data[i * self.cols + j]
    }
}

/// The minimum-cost assignment of rows to columns: for each row, its column. Every row is
/// assigned when `rows ≤ cols`, every column when `rows ≥ cols`. Non-finite costs are treated
/// as larger than any finite one.
pub fn hungarian(cost: &CostMatrix) -> Vec<Option<usize>> {
    if cost.rows == 0 || cost.cols == 0 {
        return vec![None; cost.rows];
    }
    let finite_max = cost.data.iter().copied().filter(|c| c.is_finite()).fold(0.0_f64, |m, c| m.max(c.abs()));
    let big = (finite_max + 1.0) * (cost.rows + cost.cols) as f64 * 2.0;
    let entry = |i: usize, j: usize| {
        let c = cost.get(i, j);
        if c.is_finite() { c } else { big }
    };
    if cost.rows <= cost.cols {
        solve(cost.rows, cost.cols, entry)
    } else {
        let by_col = solve(cost.cols, cost.rows, |j, i| entry(i, j));
        let mut by_row = vec![None; cost.rows];
        for (j, i) in by_col.into_iter().enumerate() {
            if let Some(i) = i {
                by_row[i] = Some(j);
            }
        }
        by_row
    }
}

/// Kuhn–Munkres with row and column potentials for an `n × m` matrix, `n ≤ m`: adds one row at
/// a time along a shortest augmenting path (Dijkstra on reduced costs).
fn solve(n: usize, m: usize, a: impl Fn(usize, usize) -> f64) -> Vec<Option<usize>> {
    // 1-based, with row 0 and column 0 as sentinels; p[j] is the row matched to column j.
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let reduced = a(i0 - 1, j - 1) - u[i0] - v[j];
                if reduced < minv[j] {
                    minv[j] = reduced;
                    way[j] = j0;
                }
                if minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path back to the root.
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assignment = vec![None; n];
    for j in 1..=m {
        if p[j] != 0 {
            assignment[p[j] - 1] = Some(j - 1);
        }
    }
    assignment
}

/// A partial assignment: matched pairs and what was left over, each list in ascending order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// `(row, column)` pairs, by row.
    pub matches: Vec<(usize, usize)>,
    /// Rows left unmatched.
    pub unmatched_rows: Vec<usize>,
    /// Columns left unmatched.
    pub unmatched_cols: Vec<usize>,
}

/// The minimum-cost partial assignment in which leaving a row and a column unmatched costs
/// `limit`: a pair is matched only when its cost is at most `limit`, and among such
/// assignments the total cost (matched costs plus `limit` per unmatched pair) is minimal.
/// This is `lap.lapjv(cost, cost_limit=limit)` in ByteTrack; ties exactly at the limit may go
/// either way.
///
/// Solved as a square `(rows + cols)` problem: each row may take its own dummy column and each
/// column its own dummy row at `limit / 2`.
pub fn assign_with_limit(cost: &CostMatrix, limit: f64) -> Assignment {
    let (n, m) = (cost.rows, cost.cols);
    if n == 0 || m == 0 || limit.is_nan() || limit < 0.0 {
        return Assignment { matches: Vec::new(), unmatched_rows: (0..n).collect(), unmatched_cols: (0..m).collect() };
    }
    let finite_max = cost.data.iter().copied().filter(|c| c.is_finite()).fold(0.0_f64, |acc, c| acc.max(c.abs()));
    let big = (finite_max + limit + 1.0) * (n + m) as f64 * 2.0;
    let half = limit / 2.0;
    let size = n + m;
    let square = CostMatrix::from_fn(size, size, |i, j| match (i < n, j < m) {
        (true, true) => cost.get(i, j),
        (true, false) => {
            if j - m == i {
                half
            } else {
                big
            }
        }
        (false, true) => {
            if i - n == j {
                half
            } else {
                big
            }
        }
        (false, false) => 0.0,
    });
    let solution = hungarian(&square);
    let mut out = Assignment::default();
    let mut col_taken = vec![false; m];
    for (i, col) in solution.iter().enumerate().take(n) {
        match col {
            Some(j) if *j < m && cost.get(i, *j) <= limit => {
                out.matches.push((i, *j));
                col_taken[*j] = true;
            }
            _ => out.unmatched_rows.push(i),
        }
    }
    out.unmatched_cols = (0..m).filter(|&j| !col_taken[j]).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(cost: &CostMatrix, assignment: &[Option<usize>]) -> f64 {
        assignment.iter().enumerate().filter_map(|(i, j)| j.map(|j| cost.get(i, j))).sum()
    }

    /// The best total over every injective map of the smaller side into the larger.
    fn brute_force(cost: &CostMatrix) -> f64 {
        fn go(cost: &CostMatrix, row: usize, used: &mut Vec<bool>, acc: f64, best: &mut f64) {
            if row == cost.rows() {
                *best = best.min(acc);
                return;
            }
            let must_assign = cost.rows() <= cost.cols();
            for j in 0..cost.cols() {
                if !used[j] {
                    used[j] = true;
                    go(cost, row + 1, used, acc + cost.get(row, j), best);
                    used[j] = false;
                }
            }
            // With more rows than columns, a row may stay unassigned if enough rows remain.
            let assigned = used.iter().filter(|u| **u).count();
            if !must_assign && cost.rows() - row > cost.cols() - assigned {
                go(cost, row + 1, used, acc, best);
            }
        }
        let mut best = f64::INFINITY;
        go(cost, 0, &mut vec![false; cost.cols()], 0.0, &mut best);
        best
    }

    /// A small deterministic generator, so the tests need no extra crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn solves_a_known_square_problem() {
        let rows = [[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]];
        let cost = CostMatrix::from_fn(3, 3, |i, j| rows[i][j]);
        let a = hungarian(&cost);
        assert_eq!(a, vec![Some(1), Some(0), Some(2)]);
        assert_eq!(total(&cost, &a), 5.0);
    }

    #[test]
    fn matches_brute_force_on_random_rectangular_matrices() {
        let mut rng = Lcg(7);
        for trial in 0..300 {
            let rows = 1 + trial % 5;
            let cols = 1 + (trial / 5) % 5;
            let cost = CostMatrix::from_fn(rows, cols, |_, _| (rng.next() * 10.0).round());
            let a = hungarian(&cost);
            assert_eq!(a.len(), rows);
            let assigned: Vec<usize> = a.iter().flatten().copied().collect();
            assert_eq!(assigned.len(), rows.min(cols), "{cost:?}");
            let mut unique = assigned.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), assigned.len(), "a column used twice: {a:?}");
            assert!((total(&cost, &a) - brute_force(&cost)).abs() < 1e-9, "{cost:?} -> {a:?}");
        }
    }

    #[test]
    fn empty_matrices_assign_nothing() {
        assert_eq!(hungarian(&CostMatrix::from_fn(2, 0, |_, _| 0.0)), vec![None, None]);
        assert_eq!(hungarian(&CostMatrix::from_fn(0, 3, |_, _| 0.0)), Vec::<Option<usize>>::new());
    }

    #[test]
    fn limit_leaves_expensive_pairs_unmatched() {
        // Row 0 fits column 1 well; row 1 fits nothing under the limit.
        let rows = [[0.9, 0.1, 0.95], [0.85, 0.9, 0.99]];
        let cost = CostMatrix::from_fn(2, 3, |i, j| rows[i][j]);
        let a = assign_with_limit(&cost, 0.8);
        assert_eq!(a.matches, vec![(0, 1)]);
        assert_eq!(a.unmatched_rows, vec![1]);
        assert_eq!(a.unmatched_cols, vec![0, 2]);
    }

    #[test]
    fn limit_prefers_two_good_matches_over_one_excellent() {
        // (0,0) alone costs 0.0 plus 0.5 for leaving row 1 and column 1 unmatched; the pairs
        // (0,1) and (1,0) cost 0.4 together.
        let rows = [[0.0, 0.2], [0.2, 0.9]];
        let cost = CostMatrix::from_fn(2, 2, |i, j| rows[i][j]);
        let a = assign_with_limit(&cost, 0.5);
        assert_eq!(a.matches, vec![(0, 1), (1, 0)]);
        assert!(a.unmatched_rows.is_empty() && a.unmatched_cols.is_empty());
    }

    #[test]
    fn limit_assignment_is_optimal_on_random_matrices() {
        let mut rng = Lcg(11);
        for trial in 0..200 {
            let rows = 1 + trial % 4;
            let cols = 1 + (trial / 4) % 4;
            let limit = 0.5;
            let cost = CostMatrix::from_fn(rows, cols, |_, _| rng.next());
            let a = assign_with_limit(&cost, limit);
            // Brute force over the same objective: a matched pair costs its cost, an unmatched
            // row or column costs limit / 2. Clipping a real pair at the limit stands for
            // leaving both unmatched; padding to square at limit / 2 for the surplus side.
            let size = rows.max(cols);
            let clipped = CostMatrix::from_fn(size, size, |i, j| {
                if i < rows && j < cols { cost.get(i, j).min(limit) } else { limit / 2.0 }
            });
            let best = brute_force(&clipped);
            let unmatched = rows + cols - 2 * a.matches.len();
            let got: f64 = a.matches.iter().map(|&(i, j)| cost.get(i, j)).sum::<f64>() + unmatched as f64 * limit / 2.0;
            assert!((got - best).abs() < 1e-9, "{cost:?}: {a:?} costs {got}, best {best}");
            assert_eq!(a.unmatched_rows.len() + a.matches.len(), rows);
            assert_eq!(a.unmatched_cols.len() + a.matches.len(), cols);
            for &(i, j) in &a.matches {
                assert!(cost.get(i, j) <= limit);
            }
        }
    }
}
