//! Plane geometry in image coordinates: pixels, `x` to the right, `y` down, origin at the
//! top-left corner of the frame.

use serde::{Deserialize, Serialize};

/// A point in image coordinates; written `[x, y]` in configuration files and JSON.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct Point {
    /// Horizontal coordinate, pixels to the right of the left edge.
    pub x: f64,
    /// Vertical coordinate, pixels below the top edge.
    pub y: f64,
}

impl Point {
    /// Makes a point from its coordinates.
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    /// Whether both coordinates are finite.
    pub fn is_finite(self) -> bool {
        self.x.is_finite() && self.y.is_finite()
    }
}

impl From<[f64; 2]> for Point {
    fn from([x, y]: [f64; 2]) -> Self {
        Self { x, y }
    }
}

impl From<Point> for [f64; 2] {
    fn from(p: Point) -> Self {
        [p.x, p.y]
    }
}

/// An axis-aligned box: top-left corner `(x, y)`, width `w` and height `h`, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl BBox {
    /// Makes a box from its top-left corner and size.
    pub const fn new(x: f64, y: f64, w: f64, h: f64) -> Self {
        Self { x, y, w, h }
    }

    /// Whether every field is finite and the box has a positive width and height.
    pub fn is_valid(&self) -> bool {
        self.x.is_finite()
            && self.y.is_finite()
            && self.w.is_finite()
            && self.h.is_finite()
            && self.w > 0.0
            && self.h > 0.0
    }

    /// The area, zero for an empty box.
    pub fn area(&self) -> f64 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// The foot point: the bottom-centre of the box, where a standing person touches the floor.
    pub fn foot(&self) -> Point {
        Point::new(self.x + self.w / 2.0, self.y + self.h)
    }

    /// The centre of the box.
    pub fn centre(&self) -> Point {
        Point::new(self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Intersection over union with another box, in `[0, 1]`; zero when either box is empty.
    pub fn iou(&self, other: &BBox) -> f64 {
        let left = self.x.max(other.x);
        let top = self.y.max(other.y);
        let right = (self.x + self.w).min(other.x + other.w);
        let bottom = (self.y + self.h).min(other.y + other.h);
        let intersection = (right - left).max(0.0) * (bottom - top).max(0.0);
        let union = self.area() + other.area() - intersection;
        if union > 0.0 { intersection / union } else { 0.0 }
    }
}

/// A simple polygon given by its vertices in order (either orientation); written as a list of
/// `[x, y]` pairs. The last vertex connects back to the first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Polygon {
    /// The vertices, in order around the polygon.
    pub points: Vec<Point>,
}

impl Polygon {
    /// Makes a polygon from its vertices.
    pub fn new(points: Vec<Point>) -> Self {
        Self { points }
    }

    /// Whether `p` lies inside (even-odd rule). A point exactly on an edge may count as either.
    pub fn contains(&self, p: Point) -> bool {
        let n = self.points.len();
        if n < 3 {
            return false;
        }
        let mut inside = false;
        let mut j = n - 1;
        for i in 0..n {
            let (pi, pj) = (self.points[i], self.points[j]);
            // The edge straddles the horizontal through p (half-open in y, so a vertex on that
            // horizontal is counted once) and meets it to the right of p.
            if (pi.y > p.y) != (pj.y > p.y) && p.x < pi.x + (pj.x - pi.x) * (p.y - pi.y) / (pj.y - pi.y) {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    /// The enclosed area (shoelace formula), always non-negative.
    pub fn area(&self) -> f64 {
        let n = self.points.len();
        let twice: f64 = (0..n)
            .map(|i| {
                let (a, b) = (self.points[i], self.points[(i + 1) % n]);
                a.x * b.y - b.x * a.y
            })
            .sum();
        twice.abs() / 2.0
    }
}

/// A side of a directed segment `a → b`, as seen on screen (image coordinates, `y` down):
/// stand at `a`, face `b`; `Left` is on your left hand.
///
/// ```text
///   (0,0) ────────────▶ x
///     │        Left
///     │   a ●═════════════▶● b
///     │        Right
///     ▼ y
/// ```
///
/// With `cross = (b.x − a.x)(p.y − a.y) − (b.y − a.y)(p.x − a.x)`, `p` is on the `Left` when
/// `cross < 0` and on the `Right` when `cross > 0`. For a segment pointing down the screen
/// (`a = [300, 0]`, `b = [300, 480]`) `Left` is the half `x > 300`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Left of `a → b`, `cross < 0`.
    Left,
    /// Right of `a → b`, `cross > 0`.
    Right,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// A directed segment `a → b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    /// Start.
    pub a: Point,
    /// End.
    pub b: Point,
}

impl Segment {
    /// Makes the segment `a → b`.
    pub const fn new(a: Point, b: Point) -> Self {
        Self { a, b }
    }

    /// The length of the segment.
    pub fn length(&self) -> f64 {
        (self.b.x - self.a.x).hypot(self.b.y - self.a.y)
    }

    /// The cross product `(b − a) × (p − a)`: negative on the left, positive on the right.
    pub fn cross(&self, p: Point) -> f64 {
        (self.b.x - self.a.x) * (p.y - self.a.y) - (self.b.y - self.a.y) * (p.x - self.a.x)
    }

    /// Where `p` projects onto the line through the segment: 0 at `a`, 1 at `b`.
    pub fn projection(&self, p: Point) -> f64 {
        let (dx, dy) = (self.b.x - self.a.x, self.b.y - self.a.y);
        let len2 = dx * dx + dy * dy;
        if len2 > 0.0 { ((p.x - self.a.x) * dx + (p.y - self.a.y) * dy) / len2 } else { f64::NAN }
    }

    /// The side of `p`, or `None` when `p` projects beyond either end of the segment (outside
    /// the band swept by the segment along its normal) or lies exactly on the line.
    pub fn side_of(&self, p: Point) -> Option<Side> {
        let u = self.projection(p);
        if !(0.0..=1.0).contains(&u) {
            return None;
        }
        let cross = self.cross(p);
        if cross < 0.0 {
            Some(Side::Left)
        } else if cross > 0.0 {
            Some(Side::Right)
        } else {
            None
        }
    }

    /// Whether the step `p → q` crosses this segment (not merely its line). Points on the line
    /// count as left (half-open), so a path that touches the line is counted once, not twice.
    pub fn crossed_by(&self, p: Point, q: Point) -> bool {
        let (cp, cq) = (self.cross(p), self.cross(q));
        if (cp > 0.0) == (cq > 0.0) {
            return false;
        }
        // cp and cq differ in sign (one may be zero), so cp − cq is not zero.
        let s = cp / (cp - cq);
        let hit = Point::new(p.x + s * (q.x - p.x), p.y + s * (q.y - p.y));
        (0.0..=1.0).contains(&self.projection(hit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(20.0, 0.0, 10.0, 10.0)), 0.0);
        // Overlap 5x10 = 50, union 150.
        assert!((a.iou(&BBox::new(5.0, 0.0, 10.0, 10.0)) - 50.0 / 150.0).abs() < 1e-12);
    }

    #[test]
    fn foot_point_is_bottom_centre() {
        assert_eq!(BBox::new(10.0, 20.0, 40.0, 100.0).foot(), Point::new(30.0, 120.0));
    }

    #[test]
    fn polygon_contains_and_area() {
        let square = Polygon::new(vec![
            Point::new(0.0, 0.0),
            Point::new(10.0, 0.0),
            Point::new(10.0, 10.0),
            Point::new(0.0, 10.0),
        ]);
        assert!(square.contains(Point::new(5.0, 5.0)));
        assert!(!square.contains(Point::new(15.0, 5.0)));
        assert!(!square.contains(Point::new(5.0, -1.0)));
        assert_eq!(square.area(), 100.0);
        // A concave "L": the notch is outside.
        let l = Polygon::new(vec![
            Point::new(0.0, 0.0),
            Point::new(10.0, 0.0),
            Point::new(10.0, 4.0),
            Point::new(4.0, 4.0),
            Point::new(4.0, 10.0),
            Point::new(0.0, 10.0),
        ]);
        assert!(l.contains(Point::new(2.0, 8.0)));
        assert!(!l.contains(Point::new(8.0, 8.0)));
    }

    #[test]
    fn sides_follow_the_documented_picture() {
        // Pointing right on screen: left is above (smaller y), right is below.
        let horizontal = Segment::new(Point::new(100.0, 300.0), Point::new(500.0, 300.0));
        assert_eq!(horizontal.side_of(Point::new(300.0, 200.0)), Some(Side::Left));
        assert_eq!(horizontal.side_of(Point::new(300.0, 400.0)), Some(Side::Right));
        // Pointing down the screen: left is x > 300.
        let vertical = Segment::new(Point::new(300.0, 0.0), Point::new(300.0, 480.0));
        assert_eq!(vertical.side_of(Point::new(400.0, 100.0)), Some(Side::Left));
        assert_eq!(vertical.side_of(Point::new(200.0, 100.0)), Some(Side::Right));
    }

    #[test]
    fn side_is_none_beyond_the_segment_ends_and_on_the_line() {
        let s = Segment::new(Point::new(100.0, 300.0), Point::new(500.0, 300.0));
        assert_eq!(s.side_of(Point::new(600.0, 200.0)), None);
        assert_eq!(s.side_of(Point::new(50.0, 400.0)), None);
        assert_eq!(s.side_of(Point::new(300.0, 300.0)), None);
    }

    #[test]
    fn crossing_needs_the_segment_not_just_the_line() {
        let s = Segment::new(Point::new(100.0, 300.0), Point::new(500.0, 300.0));
        assert!(s.crossed_by(Point::new(300.0, 250.0), Point::new(300.0, 350.0)));
        assert!(s.crossed_by(Point::new(300.0, 350.0), Point::new(300.0, 250.0)));
        // Crosses the line beyond b.
        assert!(!s.crossed_by(Point::new(600.0, 250.0), Point::new(600.0, 350.0)));
        // Same side.
        assert!(!s.crossed_by(Point::new(200.0, 250.0), Point::new(400.0, 280.0)));
        // Through a point on the line: counted once over the two steps.
        let (p, on, q) = (Point::new(300.0, 250.0), Point::new(300.0, 300.0), Point::new(300.0, 350.0));
        assert_eq!(u8::from(s.crossed_by(p, on)) + u8::from(s.crossed_by(on, q)), 1);
    }
}
