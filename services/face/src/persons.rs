//! Face de-duplication: which faces are the same person.
//!
//! Frontal faces are clustered by a threshold graph: two faces are linked when the cosine
//! similarity of their (L2-normalised) embeddings is at least `link`, and each connected
//! component is a person (single linkage). Non-frontal faces do not form persons (their
//! embeddings are less reliable): each one takes the person of its most similar frontal face
//! when that similarity is at least `attach`, and no person otherwise.
//!
//! Switch point: when the density-peaks clustering of `sightline-cluster` lands, replace
//! [`cluster_frontal`] with it (same input, same labels out); the attach rule stays.
//!
//! [`cluster`] does this for a batch (the `sightline face` command, the evaluation). The stage
//! sees one image at a time and uses [`Gallery::assign`], the streaming form of the same rule:
//! a new frontal face joins the person of its most similar gallery face at or above `link`,
//! or starts a new person. Unlike the batch form it cannot merge two persons that a later
//! face bridges; the batch and streaming results agree whenever persons are well separated.

/// Thresholds of the person rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonConfig {
    /// Cosine similarity at or above which two frontal faces are the same person.
    pub link: f32,
    /// Cosine similarity at or above which a non-frontal face joins its nearest frontal face's person.
    pub attach: f32,
}

impl Default for PersonConfig {
    fn default() -> Self {
        Self { link: sightline_tracking::identity::FRONTAL_LINK, attach: 0.5 }
    }
}

pub use sightline_tracking::identity::{cluster_frontal, cosine};

/// Scales `v` to unit length in place (a zero vector stays zero).
pub fn l2_normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Person ids (from 1, in order of first appearance) for a batch of faces given as
/// `(embedding, frontal)`; `None` for a non-frontal face with no similar frontal face.
pub fn cluster(faces: &[(&[f32], bool)], cfg: &PersonConfig) -> Vec<Option<u64>> {
    let frontal: Vec<usize> = (0..faces.len()).filter(|&i| faces[i].1).collect();
    let embeddings: Vec<&[f32]> = frontal.iter().map(|&i| faces[i].0).collect();
    let labels = cluster_frontal(&embeddings, cfg.link);
    let mut out = vec![None; faces.len()];
    for (&i, &l) in frontal.iter().zip(&labels) {
        out[i] = Some(l as u64 + 1);
    }
    for (i, (e, is_frontal)) in faces.iter().enumerate() {
        if *is_frontal {
            continue;
        }
        let best = frontal.iter().map(|&j| (cosine(e, faces[j].0), j)).max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((sim, j)) = best
            && sim >= cfg.attach
        {
            out[i] = out[j];
        }
    }
    out
}

/// A frontal face already given a person, as the stage keeps them per job.
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryEntry {
    /// The person.
    pub person: u64,
    /// The face's L2-normalised embedding.
    pub embedding: Vec<f32>,
}

/// What [`Gallery::assign`] decided for a face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Assignment {
    /// An existing person, with the similarity that decided it.
    Existing(u64, f32),
    /// A frontal face like no other: a new person.
    New,
    /// A non-frontal face like no frontal face: no person.
    Nobody,
}

/// The frontal faces of one job seen so far.
#[derive(Debug, Clone, Default)]
pub struct Gallery {
    /// The entries, in no particular order.
    pub entries: Vec<GalleryEntry>,
}

impl Gallery {
    /// The person for a face with `embedding` (see [`assign_among`]).
    pub fn assign(&self, embedding: &[f32], frontal: bool, cfg: &PersonConfig) -> Assignment {
        assign_among(&self.entries, embedding, frontal, cfg)
    }
}

/// The person for a face with `embedding` among `entries`: the most similar entry's, if at or
/// above the threshold (`link` for frontal faces, `attach` for the others); else a new person
/// for a frontal face and nobody for a non-frontal one.
pub fn assign_among<'a>(
    entries: impl IntoIterator<Item = &'a GalleryEntry>,
    embedding: &[f32],
    frontal: bool,
    cfg: &PersonConfig,
) -> Assignment {
    let threshold = if frontal { cfg.link } else { cfg.attach };
    let best =
        entries.into_iter().map(|e| (cosine(embedding, &e.embedding), e.person)).max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((sim, person)) if sim >= threshold => Assignment::Existing(person, sim),
        _ if frontal => Assignment::New,
        _ => Assignment::Nobody,
    }
}

/// The adjusted Rand index of two labellings of the same items (1 = identical partitions,
/// about 0 = chance).
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    use std::collections::HashMap;
    let n = a.len().min(b.len());
    if n < 2 {
        return 1.0;
    }
    let pairs = |x: u64| (x * x.saturating_sub(1) / 2) as f64;
    let mut table: HashMap<(usize, usize), u64> = HashMap::new();
    let mut rows: HashMap<usize, u64> = HashMap::new();
    let mut cols: HashMap<usize, u64> = HashMap::new();
    for i in 0..n {
        *table.entry((a[i], b[i])).or_default() += 1;
        *rows.entry(a[i]).or_default() += 1;
        *cols.entry(b[i]).or_default() += 1;
    }
    let index: f64 = table.values().map(|&v| pairs(v)).sum();
    let sa: f64 = rows.values().map(|&v| pairs(v)).sum();
    let sb: f64 = cols.values().map(|&v| pairs(v)).sum();
    let expected = sa * sb / pairs(n as u64);
    let max = (sa + sb) / 2.0;
    if (max - expected).abs() < f64::EPSILON {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        l2_normalise(&mut v);
        v
    }

    #[test]
    fn threshold_graph_links_chains_and_splits_strangers() {
        let a = unit(&[1.0, 0.0, 0.0]);
        let b = unit(&[1.0, 0.8, 0.0]); // cos(a, b) ~ 0.78
        let c = unit(&[0.3, 1.0, 0.0]); // cos(b, c) ~ 0.89, cos(a, c) ~ 0.29: linked through b
        let d = unit(&[0.0, 0.0, 1.0]);
        assert_eq!(cluster_frontal(&[&a, &b, &c, &d], 0.5), vec![0, 0, 0, 1]);
        assert_eq!(cluster_frontal(&[&d, &a], 0.5), vec![0, 1]);
        assert!(cluster_frontal(&[], 0.5).is_empty());
    }

    #[test]
    fn non_frontal_faces_attach_or_stay_alone() {
        let cfg = PersonConfig::default();
        let a = unit(&[1.0, 0.0, 0.0]);
        let a_side = unit(&[1.0, 0.5, 0.0]); // ~0.89 to a
        let stranger_side = unit(&[0.0, 1.0, 0.2]);
        let d = unit(&[0.0, 0.0, 1.0]);
        let persons = cluster(&[(&a_side, false), (&a, true), (&stranger_side, false), (&d, true)], &cfg);
        assert_eq!(persons, vec![Some(1), Some(1), None, Some(2)]);
        // Only non-frontal faces: nobody.
        assert_eq!(cluster(&[(&a, false)], &cfg), vec![None]);
    }

    #[test]
    fn the_streaming_gallery_follows_the_same_rule() {
        let cfg = PersonConfig::default();
        let mut g = Gallery::default();
        let a = unit(&[1.0, 0.0]);
        assert_eq!(g.assign(&a, true, &cfg), Assignment::New);
        assert_eq!(g.assign(&a, false, &cfg), Assignment::Nobody);
        g.entries.push(GalleryEntry { person: 7, embedding: a.clone() });
        match g.assign(&unit(&[1.0, 0.3]), true, &cfg) {
            Assignment::Existing(7, sim) => assert!(sim > 0.9),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.assign(&unit(&[0.0, 1.0]), true, &cfg), Assignment::New);
        assert!(matches!(g.assign(&unit(&[1.0, 0.5]), false, &cfg), Assignment::Existing(7, _)));
    }

    #[test]
    fn ari_matches_known_values() {
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 9, 9]) - 1.0).abs() < 1e-12);
        // sklearn.metrics.adjusted_rand_score([0, 0, 1, 1], [0, 0, 1, 2]) = 0.5714285714285715
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.5714285714285715).abs() < 1e-12);
        // adjusted_rand_score([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) = 0.24242424242424246
        let v = adjusted_rand_index(&[0, 0, 0, 1, 1, 1], &[0, 0, 1, 1, 2, 2]);
        assert!((v - 0.24242424242424246).abs() < 1e-12, "{v}");
    }
}
