//! Connected components of 2-D maps (4-connectivity, depth first with an explicit stack).

/// Visits the 4-connected component of cell `start` of a `w` × `h` grid among the cells where
/// `inside` holds, marking each in `seen` and passing it to `visit` in the order it is popped
/// (neighbours are pushed left, right, above, below). `start` is marked here; the caller
/// checks that it is inside and unseen.
pub fn flood_fill(
    seen: &mut [bool],
    w: usize,
    h: usize,
    start: usize,
    inside: impl Fn(usize) -> bool,
    mut visit: impl FnMut(usize),
) {
    seen[start] = true;
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        visit(i);
        let (x, y) = (i % w, i / w);
        let mut push = |j: usize| {
            if !seen[j] && inside(j) {
                seen[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            push(i - 1);
        }
        if x + 1 < w {
            push(i + 1);
        }
        if y > 0 {
            push(i - w);
        }
        if y + 1 < h {
            push(i + w);
        }
    }
}

/// A 4-connected region of a thresholded map: bounding box (end-exclusive), pixel count and
/// the sum of its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Left.
    pub x0: usize,
    /// Top.
    pub y0: usize,
    /// Right (exclusive).
    pub x1: usize,
    /// Bottom (exclusive).
    pub y1: usize,
    /// Pixels in the region.
    pub pixels: usize,
    /// Sum of the map over the region.
    pub sum: f32,
}

/// The 4-connected regions of `map > threshold`, in the order of their first cell (row-major).
pub fn regions(map: &[f32], w: usize, h: usize, threshold: f32) -> Vec<Region> {
    let mut seen = vec![false; w * h];
    let mut out = Vec::new();
    for start in 0..w * h {
        if seen[start] || map[start] <= threshold {
            continue;
        }
        let mut r = Region { x0: usize::MAX, y0: usize::MAX, x1: 0, y1: 0, pixels: 0, sum: 0.0 };
        flood_fill(
            &mut seen,
            w,
            h,
            start,
            |j| map[j] > threshold,
            |i| {
                let (x, y) = (i % w, i / w);
                r.x0 = r.x0.min(x);
                r.y0 = r.y0.min(y);
                r.x1 = r.x1.max(x + 1);
                r.y1 = r.y1.max(y + 1);
                r.pixels += 1;
                r.sum += map[i];
            },
        );
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_four_connected() {
        // Two pixels touching only diagonally are two regions.
        let m = [1.0, 0.0, 0.0, 1.0];
        assert_eq!(regions(&m, 2, 2, 0.5).len(), 2);
        let m = [1.0, 1.0, 0.0, 1.0];
        let r = regions(&m, 2, 2, 0.5);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].x0, r[0].y0, r[0].x1, r[0].y1, r[0].pixels), (0, 0, 2, 2, 3));
        assert_eq!(r[0].sum, 3.0);
    }
}
