//! Which faces are the same person: the face stage's rule (`sightline_face::persons`), here so
//! that the track stage applies it to visitors without the face models.
//!
//! Frontal faces are clustered by a threshold graph: two faces are linked when the cosine
//! similarity of their (L2-normalised) embeddings is at least `link`, and each connected
//! component is a person (single linkage).

/// The similarity at or above which two frontal faces are the same person.
pub const FRONTAL_LINK: f32 = 0.5;

/// Dot product (cosine similarity of L2-normalised vectors).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Connected components of the graph "similarity >= link" over `embeddings`; labels are
/// numbered from 0 in order of first appearance.
pub fn cluster_frontal(embeddings: &[&[f32]], link: f32) -> Vec<usize> {
    let n = embeddings.len();
    let mut label = vec![usize::MAX; n];
    let mut next = 0;
    for start in 0..n {
        if label[start] != usize::MAX {
            continue;
        }
        label[start] = next;
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            for j in 0..n {
                if label[j] == usize::MAX && cosine(embeddings[i], embeddings[j]) >= link {
                    label[j] = next;
                    stack.push(j);
                }
            }
        }
        next += 1;
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_faces_share_a_label_in_order_of_appearance() {
        let (a, b, c) = ([1.0f32, 0.0], [0.9f32, 0.436], [0.0f32, 1.0]);
        assert_eq!(cluster_frontal(&[&a, &c, &b], FRONTAL_LINK), vec![0, 1, 0]);
        assert_eq!(cluster_frontal(&[], FRONTAL_LINK), Vec::<usize>::new());
    }
}
