use super::scaled::IndexParams;
use super::*;
use crate::ari::adjusted_rand_index;

/// `per` points around each of `centres` (2-D, standard deviation `sd`), labels by blob.
fn blobs(centres: &[(f32, f32)], per: usize, sd: f64, seed: u64) -> (Points, Vec<u32>) {
    let mut rng = SplitMix64(seed);
    let mut rows = Vec::new();
    let mut truth = Vec::new();
    for (c, &(x, y)) in centres.iter().enumerate() {
        for _ in 0..per {
            rows.push([x + (rng.normal() * sd) as f32, y + (rng.normal() * sd) as f32]);
            truth.push(c as u32);
        }
    }
    (Points::from_rows(&rows).unwrap(), truth)
}

fn three_blobs() -> (Points, Vec<u32>) {
    blobs(&[(0.0, 0.0), (10.0, 0.0), (5.0, 9.0)], 120, 1.0, 1)
}

fn both(params: &Params) -> [Box<dyn DensityPeaks>; 2] {
    [Box::new(Exact::new(params.clone())), Box::new(Scaled::new(params.clone()))]
}

#[test]
fn recovers_separated_blobs_with_every_kernel() {
    let (points, truth) = three_blobs();
    for kernel in [Kernel::Knn, Kernel::Cutoff, Kernel::Gaussian] {
        for imp in both(&Params { kernel, ..Params::default() }) {
            let c = imp.cluster(&points).unwrap();
            assert_eq!(c.n_clusters(), 3, "{} {kernel:?}", imp.name());
            assert_eq!(adjusted_rand_index(&truth, &c.labels), 1.0, "{} {kernel:?}", imp.name());
            // Centres are the densest point of their cluster and never halo.
            for (id, &p) in c.centres.iter().enumerate() {
                assert_eq!(c.labels[p], id as u32);
                assert!(!c.halo[p]);
                assert!((0..c.len()).filter(|&i| c.labels[i] == id as u32).all(|i| c.rho[i] <= c.rho[p]));
            }
        }
    }
}

#[test]
fn every_point_but_the_densest_has_a_nearer_denser_neighbour() {
    let (points, _) = three_blobs();
    let c = Exact::default().cluster(&points).unwrap();
    let top: Vec<usize> = (0..c.len()).filter(|&i| c.nearest_denser[i].is_none()).collect();
    assert_eq!(top.len(), 1);
    assert_eq!(c.centres[0], top[0], "the densest point is cluster 0's centre");
    for i in 0..c.len() {
        if let Some(j) = c.nearest_denser[i] {
            let j = j as usize;
            assert!(c.rho[j] >= c.rho[i]);
            // δ is the exact distance to the nearest denser point: brute force agrees.
            let d = |a: usize, b: usize| {
                points.row(a).iter().zip(points.row(b)).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
            };
            assert!((c.delta[i] - d(i, j)).abs() < 1e-4);
            let denser_min =
                (0..c.len()).filter(|&m| c.rho[m] > c.rho[i]).map(|m| d(i, m)).fold(f32::INFINITY, f32::min);
            assert!(c.delta[i] <= denser_min + 1e-4, "point {i}: δ {} > {denser_min}", c.delta[i]);
        }
    }
}

#[test]
fn scaled_probing_every_cell_equals_exact() {
    let (points, _) = blobs(&[(0.0, 0.0), (6.0, 1.0), (2.0, 7.0), (9.0, 8.0)], 80, 1.2, 5);
    let params = Params::default();
    let e = Exact::new(params.clone()).cluster(&points).unwrap();
    let index = IndexParams { cells: Some(6), probe: 6, ..IndexParams::default() };
    let s = Scaled::new(params).with_index(index).cluster(&points).unwrap();
    assert_eq!(e.centres, s.centres);
    assert_eq!(e.labels, s.labels);
    assert_eq!(e.halo, s.halo);
    for i in 0..e.len() {
        assert!((e.rho[i] - s.rho[i]).abs() <= 1e-3 * e.rho[i], "ρ of {i}");
        assert!((e.delta[i] - s.delta[i]).abs() < 1e-3, "δ of {i}");
    }
}

#[test]
fn one_point() {
    let points = Points::from_rows(&[[1.0f32, 2.0]]).unwrap();
    for imp in both(&Params::default()) {
        let c = imp.cluster(&points).unwrap();
        assert_eq!(c.labels, vec![0]);
        assert_eq!(c.centres, vec![0]);
        assert_eq!(c.halo, vec![false]);
        assert_eq!(c.delta, vec![0.0]);
        assert_eq!(c.k, 0);
    }
}

#[test]
fn two_points() {
    let points = Points::from_rows(&[[0.0f32, 0.0], [3.0, 4.0]]).unwrap();
    for imp in both(&Params::default()) {
        let c = imp.cluster(&points).unwrap();
        // No bulk to stand out from: one cluster.
        assert_eq!(c.n_clusters(), 1, "{}", imp.name());
        assert_eq!(c.delta, vec![5.0, 5.0]);
    }
    let two = Params { centres: CentreRule::Count(2), ..Params::default() };
    for imp in both(&two) {
        let c = imp.cluster(&points).unwrap();
        assert_eq!(c.n_clusters(), 2);
        assert_ne!(c.labels[0], c.labels[1]);
    }
}

#[test]
fn all_identical_points_form_one_cluster() {
    let points = Points::new(vec![0.5; 3 * 60], 3).unwrap();
    for kernel in [Kernel::Knn, Kernel::Cutoff, Kernel::Gaussian] {
        for imp in both(&Params { kernel, ..Params::default() }) {
            let c = imp.cluster(&points).unwrap();
            assert_eq!(c.n_clusters(), 1, "{} {kernel:?}", imp.name());
            assert!(c.delta.iter().all(|&d| d == 0.0));
            assert!(c.labels.iter().all(|&l| l == 0));
            assert!(c.rho.iter().all(|r| r.is_finite()));
        }
    }
}

#[test]
fn duplicates_stay_together() {
    let (points, truth) = three_blobs();
    // Every point twice.
    let mut data = points.as_slice().to_vec();
    data.extend_from_slice(points.as_slice());
    let doubled = Points::new(data, 2).unwrap();
    let n = points.len();
    for imp in both(&Params::default()) {
        let c = imp.cluster(&doubled).unwrap();
        assert_eq!(c.n_clusters(), 3, "{}", imp.name());
        assert!((0..n).all(|i| c.labels[i] == c.labels[i + n]));
        assert_eq!(adjusted_rand_index(&truth, &c.labels[..n]), 1.0);
        assert!(c.rho.iter().all(|r| r.is_finite()));
    }
}

#[test]
fn ties_in_the_cutoff_count_are_broken() {
    // Two square lattices: every interior point has the same count.
    let mut rows = Vec::new();
    for (ox, oy) in [(0.0f32, 0.0f32), (40.0, 0.0)] {
        for i in 0..12 {
            for j in 0..12 {
                rows.push([ox + i as f32, oy + j as f32]);
            }
        }
    }
    let points = Points::from_rows(&rows).unwrap();
    let params = Params { kernel: Kernel::Cutoff, percent: 2.0, ..Params::default() };
    for imp in both(&params) {
        let c = imp.cluster(&points).unwrap();
        assert_eq!(c.n_clusters(), 2, "{}", imp.name());
        assert!((0..144).all(|i| c.labels[i] == c.labels[0]));
        assert!((144..288).all(|i| c.labels[i] == c.labels[144]));
        // Following nearest denser neighbours always ends at the densest point.
        for start in 0..c.len() {
            let mut i = start;
            for _ in 0..c.len() {
                match c.nearest_denser[i] {
                    Some(j) => i = j as usize,
                    None => break,
                }
            }
            assert!(c.nearest_denser[i].is_none(), "cycle from {start}");
        }
    }
}

#[test]
fn manual_count_and_thresholds() {
    let (points, _) = three_blobs();
    let five = Exact::new(Params { centres: CentreRule::Count(5), ..Params::default() }).cluster(&points).unwrap();
    assert_eq!(five.n_clusters(), 5);
    assert_eq!(five.decision.rule, "count");
    // Centres by decreasing γ.
    assert!(five.centres.windows(2).all(|w| five.gamma[w[0]] >= five.gamma[w[1]]));
    let auto = Exact::default().cluster(&points).unwrap();
    // Thresholds just below the third centre's ρ and δ pick the same three centres.
    let rho = auto.centres.iter().map(|&p| auto.rho[p]).fold(f32::INFINITY, f32::min) * 0.99;
    let delta = auto.centres.iter().map(|&p| auto.delta[p]).fold(f32::INFINITY, f32::min) * 0.99;
    let t = Exact::new(Params { centres: CentreRule::Thresholds { rho, delta }, ..Params::default() })
        .cluster(&points)
        .unwrap();
    let mut a = auto.centres.clone();
    let mut b = t.centres.clone();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
    let none =
        Exact::new(Params { centres: CentreRule::Thresholds { rho: f32::MAX, delta: 0.0 }, ..Params::default() })
            .cluster(&points)
            .unwrap();
    assert_eq!(none.n_clusters(), 1, "the densest point is always a centre");
}

#[test]
fn automatic_centres_lie_above_the_gamma_line() {
    let (points, _) = blobs(&[(0.0, 0.0), (10.0, 0.0), (5.0, 9.0), (15.0, 9.0), (-5.0, 9.0)], 60, 1.0, 9);
    let c = Exact::default().cluster(&points).unwrap();
    assert_eq!(c.n_clusters(), 5);
    let line = c.decision.gamma_threshold;
    assert!(c.centres.iter().all(|&p| c.gamma[p] > line));
    // Candidates are local maxima (no denser point among the k nearest neighbours): the only
    // ones above the line that are not centres were merged.
    let all: Vec<usize> = (0..c.len()).collect();
    let lists = exact_knn(&points, &all, c.k);
    let local_max = |i: usize| c.delta[i] > *lists.row(i).1.last().unwrap() * (1.0 - 1e-5);
    let others: Vec<(usize, f32, f32, f64)> = (0..c.len())
        .filter(|i| !c.centres.contains(i))
        .filter(|&i| c.gamma[i] >= line && local_max(i))
        .map(|i| (i, c.delta[i], *lists.row(i).1.last().unwrap(), c.decision.z(c.gamma[i])))
        .collect();
    assert_eq!(
        others.len(),
        c.decision.merged,
        "only merged candidates lie above the line: {others:?} {:?}",
        c.decision
    );
    assert!(c.decision.centre_z.iter().skip(1).all(|&z| z >= AUTO_Z_MIN));
}

/// Blobs of the given sizes (2-D, unit standard deviation) at jittered points of a grid with
/// spacing `gap`, labels by blob.
fn grid_blobs(sizes: &[usize], gap: f32, seed: u64) -> (Points, Vec<u32>) {
    let mut rng = SplitMix64(seed);
    let side = (sizes.len() as f64).sqrt().ceil() as usize;
    let mut rows = Vec::new();
    let mut truth = Vec::new();
    for (c, &size) in sizes.iter().enumerate() {
        let x = (c % side) as f32 * gap + (rng.uniform() as f32 - 0.5) * gap * 0.3;
        let y = (c / side) as f32 * gap + (rng.uniform() as f32 - 0.5) * gap * 0.3;
        for _ in 0..size {
            rows.push([x + rng.normal() as f32, y + rng.normal() as f32]);
            truth.push(c as u32);
        }
    }
    (Points::from_rows(&rows).unwrap(), truth)
}

#[test]
fn automatic_centres_find_many_clusters() {
    // 20 and 50 well-separated clusters of 150 and 60 points (issue 16: the rule found 2 of 20).
    for (clusters, per) in [(20, 150), (50, 60)] {
        let (points, truth) = grid_blobs(&vec![per; clusters], 8.0, clusters as u64);
        let c = Exact::default().cluster(&points).unwrap();
        assert_eq!(c.n_clusters(), clusters, "{:?}", c.decision);
        let ari = adjusted_rand_index(&truth, &c.labels);
        assert!(ari > 0.99, "{clusters} clusters: ARI {ari}");
    }
}

#[test]
fn automatic_centres_find_small_clusters_beside_large_ones() {
    // 8 clusters whose sizes fall from 400 to 80 points (1:5). The old rule's median-density
    // floor drops the small clusters' centres: their kNN density is below the median point's.
    let sizes: Vec<usize> = (0..8).map(|c| (400.0 * 5f64.powf(-(c as f64) / 7.0)).round() as usize).collect();
    let (points, truth) = grid_blobs(&sizes, 10.0, 3);
    let c = Exact::default().cluster(&points).unwrap();
    assert_eq!(c.n_clusters(), 8, "{:?}", c.decision);
    assert!(adjusted_rand_index(&truth, &c.labels) > 0.97);
    let old = CentreRule::AutoMedianFloor { z_min: AUTO_Z_MIN, merge: Some(AUTO_MERGE) };
    let o = Exact::new(Params { centres: old, ..Params::default() }).cluster(&points).unwrap();
    assert!(o.n_clusters() < 8, "the old rule found {}", o.n_clusters());
}

#[test]
fn automatic_centres_are_local_maxima() {
    // No centre but the densest point has a denser point among its k nearest neighbours.
    let (points, _) = grid_blobs(&[200, 120, 80, 40], 7.0, 8);
    let c = Exact::default().cluster(&points).unwrap();
    assert!(c.n_clusters() >= 2);
    let lists = exact_knn(&points, &c.centres, c.k);
    for (r, &p) in c.centres.iter().enumerate().skip(1) {
        let kth = *lists.row(r).1.last().unwrap();
        assert!(c.delta[p] > kth, "centre {p}: δ {} within its k-th neighbour {kth}", c.delta[p]);
    }
}

#[test]
fn one_blob_is_one_cluster() {
    // With k = 8-10 (1 % of a few hundred points) the kNN density of a 2-D Gaussian sample has
    // noise valleys deep enough to split it (docs/clustering.md, "Limits"); with a steadier
    // estimate it is one cluster.
    for seed in 1..6 {
        let (points, _) = blobs(&[(0.0, 0.0)], 500, 1.0, seed);
        for imp in both(&Params { k: Some(25), ..Params::default() }) {
            let c = imp.cluster(&points).unwrap();
            assert_eq!(c.n_clusters(), 1, "seed {seed} {}: {:?}", imp.name(), c.decision);
            assert!(c.halo.iter().all(|h| !h), "no border, no halo");
        }
    }
}

#[test]
fn saddle_merge_joins_bumps_and_keeps_valleys() {
    // A 1-D chain of 9 points, each linked to its neighbours; two peaks (points 2 and 6).
    let make = |rho: Vec<f32>| {
        let n = rho.len();
        let mut idx = Vec::new();
        let mut dist = Vec::new();
        for i in 0..n {
            let l = if i > 0 { i - 1 } else { i + 1 };
            let r = if i + 1 < n { i + 1 } else { i - 1 };
            idx.extend([l as u32, r as u32]);
            dist.extend([1.0, 1.0]);
        }
        (Neighbours { k: 2, idx, dist }, rho)
    };
    let labels0: Vec<u32> = vec![0, 0, 0, 0, 1, 1, 1, 1, 1];
    // Shallow saddle (0.9 of the lower peak): merged.
    let (lists, rho) = make(vec![1.0, 2.0, 5.0, 4.6, 4.5, 4.6, 4.8, 2.0, 1.0]);
    let mut labels = labels0.clone();
    let kept = centres::merge_by_saddle(&[2, 6], &mut labels, &rho, &lists, 2, AUTO_MERGE);
    assert_eq!(kept, vec![2]);
    assert!(labels.iter().all(|&l| l == 0));
    // Deep valley (0.2 of the lower peak): both kept.
    let (lists, rho) = make(vec![1.0, 2.0, 5.0, 2.0, 1.0, 2.0, 4.8, 2.0, 1.0]);
    let mut labels = labels0.clone();
    let kept = centres::merge_by_saddle(&[2, 6], &mut labels, &rho, &lists, 2, AUTO_MERGE);
    assert_eq!(kept, vec![2, 6]);
    assert_eq!(labels, labels0);
}

#[test]
fn halo_is_below_the_border_density() {
    // Two blobs joined by a thin bridge.
    let (mut points, _) = blobs(&[(0.0, 0.0), (12.0, 0.0)], 150, 1.3, 4);
    let mut data = points.as_slice().to_vec();
    for i in 0..12 {
        data.extend_from_slice(&[3.0 + 0.5 * i as f32, 0.2]);
    }
    points = Points::new(data, 2).unwrap();
    let c = Exact::default().cluster(&points).unwrap();
    assert_eq!(c.n_clusters(), 2);
    let halo = c.halo.iter().filter(|h| **h).count();
    assert!(halo > 0 && halo < c.len() / 2, "{halo} halo points");
    for id in 0..2u32 {
        let core_min =
            (0..c.len()).filter(|&i| c.labels[i] == id && !c.halo[i]).map(|i| c.rho[i]).fold(f32::INFINITY, f32::min);
        let halo_max = (0..c.len())
            .filter(|&i| c.labels[i] == id && c.halo[i])
            .map(|i| c.rho[i])
            .fold(f32::NEG_INFINITY, f32::max);
        assert!(halo_max < core_min, "cluster {id}: halo up to {halo_max}, core from {core_min}");
    }
    let no_halo = Exact::new(Params { halo: false, ..Params::default() }).cluster(&points).unwrap();
    assert!(no_halo.halo.iter().all(|h| !h));
    assert_eq!(no_halo.labels, c.labels);
}

#[test]
fn runs_are_deterministic_and_thread_count_free() {
    let (points, _) = blobs(&[(0.0, 0.0), (8.0, 3.0)], 300, 1.5, 2);
    for imp in both(&Params::default()) {
        let a = imp.cluster(&points).unwrap();
        let b = imp.cluster(&points).unwrap();
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.rho, b.rho);
    }
    let one = Params { threads: Some(1), ..Params::default() };
    for (imp, one) in both(&Params::default()).iter().zip(both(&one)) {
        let a = imp.cluster(&points).unwrap();
        let b = one.cluster(&points).unwrap();
        assert_eq!(a.labels, b.labels, "{}", imp.name());
        assert_eq!(a.delta, b.delta);
    }
}

#[test]
fn exact_knn_matches_brute_force() {
    let (points, _) = three_blobs();
    let queries = [0usize, 17, 200, 359];
    let lists = exact_knn(&points, &queries, 5);
    for (r, &q) in queries.iter().enumerate() {
        let mut all: Vec<(f32, usize)> = (0..points.len())
            .filter(|&j| j != q)
            .map(|j| (points.row(q).iter().zip(points.row(j)).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt(), j))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: Vec<u32> = all.iter().take(5).map(|&(_, j)| j as u32).collect();
        assert_eq!(lists.row(r).0, &want[..]);
    }
}

#[test]
fn refuses_bad_input_and_parameters() {
    let (points, _) = three_blobs();
    let empty = Points::new(Vec::new(), 2).unwrap();
    assert!(matches!(Exact::default().cluster(&empty), Err(DpcError::Input(_))));
    assert!(matches!(Scaled::default().cluster(&empty), Err(DpcError::Input(_))));
    let bad = [
        Params { percent: 0.0, ..Params::default() },
        Params { percent: 100.0, ..Params::default() },
        Params { k: Some(0), ..Params::default() },
        Params { dc: Some(-1.0), ..Params::default() },
        Params { k_min: 10, k_max: 5, ..Params::default() },
        Params { centres: CentreRule::Count(0), ..Params::default() },
        Params { centres: CentreRule::Auto { z_min: 3.0, merge: Some(1.5) }, ..Params::default() },
        Params { centres: CentreRule::Auto { z_min: f64::NAN, merge: None }, ..Params::default() },
    ];
    for p in bad {
        assert!(matches!(Exact::new(p.clone()).cluster(&points), Err(DpcError::Params(_))), "{p:?}");
    }
    let no_probe = Scaled::default().with_index(IndexParams { probe: 0, ..IndexParams::default() });
    assert!(matches!(no_probe.cluster(&points), Err(DpcError::Params(_))));
}

#[test]
fn explicit_dc_and_k_are_used() {
    let (points, _) = three_blobs();
    let c = Exact::new(Params { kernel: Kernel::Cutoff, dc: Some(1.5), ..Params::default() }).cluster(&points).unwrap();
    assert_eq!(c.dc, Some(1.5));
    // ρ is the count of points within d_c.
    let count = (1..points.len())
        .filter(|&j| points.row(0).iter().zip(points.row(j)).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt() < 1.5)
        .count();
    assert_eq!(c.rho[0], count as f32);
    let k = Exact::new(Params { k: Some(7), ..Params::default() }).cluster(&points).unwrap();
    assert_eq!(k.k, 7);
    assert_eq!(Params::default().k_for(10_000), 32);
    assert_eq!(Params::default().k_for(788), 8);
    assert_eq!(Params::default().k_for(100), 8);
    assert_eq!(Params::default().k_for(2_000), 20);
    assert_eq!(Params::default().k_for(3), 2);
}

#[test]
fn estimated_dc_gives_the_requested_neighbour_share() {
    let (points, _) = three_blobs();
    let c = Exact::new(Params { kernel: Kernel::Cutoff, percent: 2.0, ..Params::default() }).cluster(&points).unwrap();
    // Average neighbours within d_c ≈ 2 % of n.
    let mean = c.rho.iter().map(|&r| f64::from(r)).sum::<f64>() / c.len() as f64;
    let want = 0.02 * (c.len() - 1) as f64;
    assert!((mean - want).abs() < 0.1 * want + 1.0, "mean count {mean}, want {want}");
}
