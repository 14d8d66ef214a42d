//! The geometry of DB post-processing, written to give what RapidOCR gets from OpenCV,
//! pyclipper and shapely: contour following (`cv2.findContours` with `RETR_LIST` and
//! `CHAIN_APPROX_SIMPLE`, Suzuki–Abe border following), convex hull (OpenCV's Sklansky),
//! the minimum-area rectangle (OpenCV's rotating calipers in float32), `cv2.boxPoints`,
//! polygon rasterisation (`cv2.fillPoly`), dilation with a 2×2 kernel, and the round-join
//! polygon offset of Clipper 6.4 (`pyclipper.PyclipperOffset`).
//!
//! Float32 arithmetic is kept where OpenCV uses it: corners that land on integers must land
//! on the same side of them, because later steps truncate.

/// A point with integer coordinates.
pub type IPoint = (i64, i64);

/// A float32 point.
pub type FPoint = [f32; 2];

// ---------------------------------------------------------------------------------------
// contours

const NBD: i8 = 2;
const NBD_RIGHT: i8 = 2 | -128;
const CODE_DELTAS: [(i64, i64); 8] = [(1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1)];

/// Outer and hole borders of the non-zero regions of a `width` × `height` mask (row-major),
/// as `cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)` lists them (last found
/// first): each contour's points start where the raster scan met the border and follow
/// OpenCV's direction, keeping only the points where the direction changes. Pixels outside the
/// mask count as zero.
pub fn find_contours(mask: &[u8], width: usize, height: usize) -> Vec<Vec<IPoint>> {
    let step = width + 2;
    let mut img = vec![0i8; step * (height + 2)];
    for y in 0..height {
        for x in 0..width {
            if mask[y * width + x] != 0 {
                img[(y + 1) * step + x + 1] = 1;
            }
        }
    }
    let s = step as isize;
    let d8 = [1, -s + 1, -s, -s - 1, -1, s - 1, s, s + 1];
    let mut deltas = [0isize; 16];
    deltas[..8].copy_from_slice(&d8);
    deltas[8..].copy_from_slice(&d8);
    let mut contours = Vec::new();
    for y in 1..=height {
        let mut prev = 0i8;
        for x in 1..=width + 1 {
            let p = img[y * step + x];
            if p == prev {
                continue;
            }
            if prev == 0 && p == 1 {
                let origin = ((x - 1) as i64, (y - 1) as i64);
                contours.push(fetch_contour(&mut img, &deltas, y * step + x, origin, false));
            } else if p == 0 && prev >= 1 {
                let origin = ((x - 2) as i64, (y - 1) as i64);
                contours.push(fetch_contour(&mut img, &deltas, y * step + x - 1, origin, true));
            }
            prev = img[y * step + x];
        }
    }
    contours.reverse();
    contours
}

/// OpenCV's `icvFetchContour` with `CHAIN_APPROX_SIMPLE`.
fn fetch_contour(img: &mut [i8], deltas: &[isize; 16], i0: usize, origin: IPoint, hole: bool) -> Vec<IPoint> {
    let at = |i: usize, d: isize| i.wrapping_add_signed(d);
    let mut pts = Vec::new();
    let mut pt = origin;
    let mut s: usize = if hole { 0 } else { 4 };
    let s_end = s;
    let mut i1;
    loop {
        s = (s + 7) & 7;
        i1 = at(i0, deltas[s]);
        if img[i1] != 0 || s == s_end {
            break;
        }
    }
    if s == s_end {
        img[i0] = NBD_RIGHT;
        pts.push(pt);
        return pts;
    }
    let mut i3 = i0;
    let mut prev_s = s ^ 4;
    loop {
        let s_end = s;
        let mut i4 = i3;
        while s < 15 {
            s += 1;
            i4 = at(i3, deltas[s]);
            if img[i4] != 0 {
                break;
            }
        }
        s &= 7;
        if s.wrapping_sub(1) < s_end {
            img[i3] = NBD_RIGHT;
        } else if img[i3] == 1 {
            img[i3] = NBD;
        }
        if s != prev_s {
            pts.push(pt);
            prev_s = s;
        }
        pt.0 += CODE_DELTAS[s].0;
        pt.1 += CODE_DELTAS[s].1;
        if i4 == i0 && i3 == i1 {
            break;
        }
        i3 = i4;
        s = (s + 4) & 7;
    }
    pts
}

/// `cv2.dilate(mask, np.ones((2, 2)))`: each pixel becomes the maximum of itself and its
/// left, upper and upper-left neighbours (the kernel's anchor is its centre, (1, 1)).
pub fn dilate_2x2(mask: &[u8], width: usize, height: usize) -> Vec<u8> {
    let mut out = vec![0u8; mask.len()];
    for y in 0..height {
        for x in 0..width {
            let mut v = mask[y * width + x];
            if x > 0 {
                v = v.max(mask[y * width + x - 1]);
            }
            if y > 0 {
                v = v.max(mask[(y - 1) * width + x]);
                if x > 0 {
                    v = v.max(mask[(y - 1) * width + x - 1]);
                }
            }
            out[y * width + x] = v;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// convex hull

fn sign_i(v: i64) -> i32 {
    (v > 0) as i32 - (v < 0) as i32
}

/// OpenCV's `Sklansky_` on integer points (`array` holds indices into `pts`, sorted).
fn sklansky(
    pts: &[IPoint],
    array: &[usize],
    start: usize,
    end: usize,
    stack: &mut [usize],
    nsign: i32,
    sign2: i32,
) -> usize {
    let incr: isize = if end > start { 1 } else { -1 };
    let p = |i: isize| pts[array[i as usize]];
    let (start_i, end_i) = (start as isize, end as isize);
    let mut pprev = start_i;
    let mut pcur = pprev + incr;
    let mut pnext = pcur + incr;
    let mut stacksize = 3usize;
    if start == end || p(start_i) == p(end_i) {
        stack[0] = start;
        return 1;
    }
    stack[0] = pprev as usize;
    stack[1] = pcur as usize;
    stack[2] = pnext as usize;
    let end_after = end_i + incr;
    while pnext != end_after {
        if p(pcur) == p(pnext) {
            pnext += incr;
            stack[stacksize - 1] = pnext as usize;
            continue;
        }
        let (cx, cury) = p(pcur);
        let (nx, nexty) = p(pnext);
        let by = nexty - cury;
        if sign_i(by) != nsign {
            let (px, py) = p(pprev);
            let (ax, ay) = (cx - px, cury - py);
            let bx = nx - cx;
            let convexity = ay * bx - ax * by;
            if sign_i(convexity) == sign2 && (ax != 0 || ay != 0) {
                pprev = pcur;
                pcur = pnext;
                pnext += incr;
                stack[stacksize] = pnext as usize;
                stacksize += 1;
            } else if pprev == start_i {
                pcur = pnext;
                stack[1] = pcur as usize;
                pnext += incr;
                stack[2] = pnext as usize;
            } else {
                stack[stacksize - 2] = pnext as usize;
                pcur = pprev;
                pprev = stack[stacksize - 4] as isize;
                stacksize -= 1;
            }
        } else {
            pnext += incr;
            stack[stacksize - 1] = pnext as usize;
        }
    }
    stacksize - 1
}

/// `cv2.convexHull(points, clockwise=clockwise)` on integer points: the hull's points in
/// OpenCV's order (including its cyclic shift towards ascending input indices).
pub fn convex_hull(pts: &[IPoint], clockwise: bool) -> Vec<IPoint> {
    let total = pts.len();
    if total == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by(|&a, &b| pts[a].0.cmp(&pts[b].0).then(pts[a].1.cmp(&pts[b].1)).then(a.cmp(&b)));
    let (mut miny, mut maxy) = (0usize, 0usize);
    for i in 1..total {
        let y = pts[order[i]].1;
        if pts[order[miny]].1 > y {
            miny = i;
        }
        if pts[order[maxy]].1 < y {
            maxy = i;
        }
    }
    let mut hull: Vec<usize> = Vec::with_capacity(total);
    if pts[order[0]] == pts[order[total - 1]] {
        hull.push(order[0]);
    } else {
        let mut stack = vec![0usize; total + 2];
        // upper half
        let tl_count = sklansky(pts, &order, 0, maxy, &mut stack, -1, 1);
        let mut tl: Vec<usize> = stack[..tl_count].to_vec();
        let mut stack2 = vec![0usize; total + 2];
        let tr_count = sklansky(pts, &order, total - 1, maxy, &mut stack2, -1, -1);
        let mut tr: Vec<usize> = stack2[..tr_count].to_vec();
        if !clockwise {
            std::mem::swap(&mut tl, &mut tr);
        }
        for &i in tl.iter().take(tl.len().saturating_sub(1)) {
            hull.push(order[i]);
        }
        for i in (1..tr.len()).rev() {
            hull.push(order[tr[i]]);
        }
        let stop_idx: Option<usize> = if tr.len() > 2 {
            Some(tr[1])
        } else if tl.len() > 2 {
            Some(tl[tl.len() - 2])
        } else {
            None
        };
        // lower half
        let bl_count = sklansky(pts, &order, 0, miny, &mut stack, 1, -1);
        let mut bl: Vec<usize> = stack[..bl_count].to_vec();
        let br_count = sklansky(pts, &order, total - 1, miny, &mut stack2, 1, 1);
        let mut br: Vec<usize> = stack2[..br_count].to_vec();
        if clockwise {
            std::mem::swap(&mut bl, &mut br);
        }
        if let Some(stop) = stop_idx {
            let check: Option<usize> = if bl.len() > 2 {
                Some(bl[1])
            } else if bl.len() + br.len() > 2 {
                br.get(2 - bl.len()).copied()
            } else {
                None
            };
            if let Some(c) = check
                && (c == stop || pts[order[c]] == pts[order[stop]])
            {
                bl.truncate(2);
                br.truncate(2);
            }
        }
        for &i in bl.iter().take(bl.len().saturating_sub(1)) {
            hull.push(order[i]);
        }
        for i in (1..br.len()).rev() {
            hull.push(order[br[i]]);
        }
        cyclic_shift_ascending(&mut hull);
    }
    hull.into_iter().map(|i| pts[i]).collect()
}

/// OpenCV's attempt to make the hull indices an ascending or descending run by rotation.
fn cyclic_shift_ascending(hull: &mut [usize]) {
    let nout = hull.len();
    if nout < 3 {
        return;
    }
    let (mut min_idx, mut max_idx, mut lt) = (0usize, 0usize, 0usize);
    for i in 1..nout {
        let idx = hull[i];
        lt += usize::from(hull[i - 1] < idx);
        if lt > 1 && lt + 2 <= i {
            break;
        }
        if idx < hull[min_idx] {
            min_idx = i;
        }
        if idx > hull[max_idx] {
            max_idx = i;
        }
    }
    let mmdist = max_idx.abs_diff(min_idx);
    if (mmdist == 1 || mmdist == nout - 1) && (lt <= 1 || lt + 2 >= nout) {
        let ascending = (max_idx + 1) % nout == min_idx;
        let i0 = if ascending { min_idx } else { max_idx };
        if i0 > 0 {
            let mut tmp = Vec::with_capacity(nout);
            let mut j = i0;
            let mut complete = true;
            for i in 0..nout {
                let curr = hull[j];
                tmp.push(curr);
                let next_j = if j + 1 < nout { j + 1 } else { 0 };
                if i < nout - 1 && (ascending != (curr < hull[next_j])) {
                    complete = false;
                    break;
                }
                j = next_j;
            }
            if complete {
                hull.copy_from_slice(&tmp);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// minimum-area rectangle

/// `cv2.minAreaRect`'s result: centre, size (width, height) and angle in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotatedRect {
    /// Centre.
    pub center: FPoint,
    /// Width and height.
    pub size: [f32; 2],
    /// Angle in degrees.
    pub angle: f32,
}

/// OpenCV's `rotatingCalipers` in `CALIPERS_MINAREARECT` mode: corner, and the two side
/// vectors of the smallest rectangle around the convex polygon `points`.
fn rotating_calipers(points: &[FPoint]) -> [FPoint; 3] {
    let n = points.len();
    let mut vect = vec![[0f32; 2]; n];
    let mut inv_len = vec![0f32; n];
    let (mut left, mut bottom, mut right, mut top) = (0usize, 0usize, 0usize, 0usize);
    let mut pt0 = points[0];
    let (mut left_x, mut right_x, mut top_y, mut bottom_y) = (pt0[0], pt0[0], pt0[1], pt0[1]);
    for i in 0..n {
        if pt0[0] < left_x {
            left_x = pt0[0];
            left = i;
        }
        if pt0[0] > right_x {
            right_x = pt0[0];
            right = i;
        }
        if pt0[1] > top_y {
            top_y = pt0[1];
            top = i;
        }
        if pt0[1] < bottom_y {
            bottom_y = pt0[1];
            bottom = i;
        }
        let pt = points[if i + 1 < n { i + 1 } else { 0 }];
        let dx = f64::from(pt[0] - pt0[0]);
        let dy = f64::from(pt[1] - pt0[1]);
        vect[i] = [dx as f32, dy as f32];
        inv_len[i] = (1.0 / (dx * dx + dy * dy).sqrt()) as f32;
        pt0 = pt;
    }
    let mut orientation = 0f32;
    {
        let (mut ax, mut ay) = (f64::from(vect[n - 1][0]), f64::from(vect[n - 1][1]));
        for v in &vect {
            let (bx, by) = (f64::from(v[0]), f64::from(v[1]));
            let convexity = ax * by - ay * bx;
            if convexity != 0.0 {
                orientation = if convexity > 0.0 { 1.0 } else { -1.0 };
                break;
            }
            ax = bx;
            ay = by;
        }
    }
    let mut base_a = orientation;
    let mut base_b = 0f32;
    let mut seq = [bottom, right, top, left];
    let mut minarea = f32::MAX;
    let mut best: (usize, f32, f32, f32, f32, usize) = (0, 0.0, 0.0, 0.0, 0.0, 0);
    for _ in 0..n {
        let dp = [
            base_a * vect[seq[0]][0] + base_b * vect[seq[0]][1],
            -base_b * vect[seq[1]][0] + base_a * vect[seq[1]][1],
            -base_a * vect[seq[2]][0] - base_b * vect[seq[2]][1],
            base_b * vect[seq[3]][0] - base_a * vect[seq[3]][1],
        ];
        let mut maxcos = dp[0] * inv_len[seq[0]];
        let mut main = 0usize;
        for i in 1..4 {
            let c = dp[i] * inv_len[seq[i]];
            if c > maxcos {
                main = i;
                maxcos = c;
            }
        }
        let pindex = seq[main];
        let lead_x = vect[pindex][0] * inv_len[pindex];
        let lead_y = vect[pindex][1] * inv_len[pindex];
        (base_a, base_b) = match main {
            0 => (lead_x, lead_y),
            1 => (lead_y, -lead_x),
            2 => (-lead_x, -lead_y),
            _ => (-lead_y, lead_x),
        };
        seq[main] += 1;
        if seq[main] == n {
            seq[main] = 0;
        }
        let dx = points[seq[1]][0] - points[seq[3]][0];
        let dy = points[seq[1]][1] - points[seq[3]][1];
        let width = dx * base_a + dy * base_b;
        let dx = points[seq[2]][0] - points[seq[0]][0];
        let dy = points[seq[2]][1] - points[seq[0]][1];
        let height = -dx * base_b + dy * base_a;
        let area = width * height;
        if area <= minarea {
            minarea = area;
            best = (seq[3], base_a, width, base_b, height, seq[0]);
        }
    }
    let (li, a1, width, b1, height, bi) = best;
    let (a2, b2) = (-b1, a1);
    let c1 = a1 * points[li][0] + points[li][1] * b1;
    let c2 = a2 * points[bi][0] + points[bi][1] * b2;
    let idet = 1.0 / (a1 * b2 - a2 * b1);
    let px = (c1 * b2 - c2 * b1) * idet;
    let py = (a1 * c2 - a2 * c1) * idet;
    [[px, py], [a1 * width, b1 * width], [a2 * height, b2 * height]]
}

/// `cv2.minAreaRect(points)` as opencv-python 5.0 returns it: the hull taken counter-clockwise
/// and the angle brought into [-90, 0) by quarter turns (each swapping width and height).
pub fn min_area_rect(points: &[IPoint]) -> RotatedRect {
    let hull: Vec<FPoint> = convex_hull(points, false).iter().map(|p| [p.0 as f32, p.1 as f32]).collect();
    let n = hull.len();
    let mut r = RotatedRect { center: [0.0, 0.0], size: [0.0, 0.0], angle: 0.0 };
    let angle_rad: f64;
    if n > 2 {
        let out = rotating_calipers(&hull);
        r.center = [out[0][0] + (out[1][0] + out[2][0]) * 0.5, out[0][1] + (out[1][1] + out[2][1]) * 0.5];
        let len = |v: FPoint| (f64::from(v[0]) * f64::from(v[0]) + f64::from(v[1]) * f64::from(v[1])).sqrt() as f32;
        r.size = [len(out[1]), len(out[2])];
        angle_rad = f64::from(out[1][1]).atan2(f64::from(out[1][0]));
    } else if n == 2 {
        r.center = [(hull[0][0] + hull[1][0]) * 0.5, (hull[0][1] + hull[1][1]) * 0.5];
        let dx = f64::from(hull[1][0] - hull[0][0]);
        let dy = f64::from(hull[1][1] - hull[0][1]);
        r.size = [(dx * dx + dy * dy).sqrt() as f32, 0.0];
        angle_rad = dy.atan2(dx);
    } else {
        if n == 1 {
            r.center = hull[0];
        }
        angle_rad = 0.0;
    }
    // opencv 5 keeps the angle in double until it is in [-90, 0)
    let mut deg = angle_rad * 180.0 / std::f64::consts::PI;
    while deg >= 0.0 {
        deg -= 90.0;
        r.size.swap(0, 1);
    }
    while deg < -90.0 {
        deg += 90.0;
        r.size.swap(0, 1);
    }
    r.angle = deg as f32;
    r
}

/// `cv2.boxPoints(rect)`.
pub fn box_points(r: &RotatedRect) -> [FPoint; 4] {
    let angle = f64::from(r.angle) * std::f64::consts::PI / 180.0;
    let b = angle.cos() as f32 * 0.5;
    let a = angle.sin() as f32 * 0.5;
    let [cx, cy] = r.center;
    let [w, h] = r.size;
    let p0 = [cx - a * h - b * w, cy + b * h - a * w];
    let p1 = [cx + a * h - b * w, cy - b * h - a * w];
    let p2 = [cx + a * h + b * w, cy - b * h + a * w];
    let p3 = [cx - a * h + b * w, cy + b * h + a * w];
    [p0, p1, p2, p3]
}

/// RapidOCR's `get_mini_boxes`: the minimum-area rectangle's corners ordered top-left,
/// top-right, bottom-right, bottom-left, and its shorter side.
pub fn mini_box(points: &[IPoint]) -> ([FPoint; 4], f32) {
    let rect = min_area_rect(points);
    let mut p = box_points(&rect).to_vec();
    // Python's sorted() is stable.
    p.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap_or(std::cmp::Ordering::Equal));
    let (i1, i4) = if p[1][1] > p[0][1] { (0, 1) } else { (1, 0) };
    let (i2, i3) = if p[3][1] > p[2][1] { (2, 3) } else { (3, 2) };
    ([p[i1], p[i2], p[i3], p[i4]], rect.size[0].min(rect.size[1]))
}

// ---------------------------------------------------------------------------------------
// polygon fill (cv2.fillPoly with LINE_8, shift 0)

const XY_SHIFT: i64 = 16;
const XY_ONE: i64 = 1 << XY_SHIFT;

/// `cv::clipLine` for an image of `w` × `h`; false when the segment misses it.
fn clip_line(w: i64, h: i64, p1: &mut IPoint, p2: &mut IPoint) -> bool {
    let (right, bottom) = (w - 1, h - 1);
    if w <= 0 || h <= 0 {
        return false;
    }
    let code = |p: &IPoint| {
        i32::from(p.0 < 0) + i32::from(p.0 > right) * 2 + i32::from(p.1 < 0) * 4 + i32::from(p.1 > bottom) * 8
    };
    let (mut c1, mut c2) = (code(p1), code(p2));
    if (c1 & c2) == 0 && (c1 | c2) != 0 {
        if c1 & 12 != 0 {
            let a = if c1 < 8 { 0 } else { bottom };
            p1.0 += ((a - p1.1) as f64 * (p2.0 - p1.0) as f64 / (p2.1 - p1.1) as f64) as i64;
            p1.1 = a;
            c1 = i32::from(p1.0 < 0) + i32::from(p1.0 > right) * 2;
        }
        if c2 & 12 != 0 {
            let a = if c2 < 8 { 0 } else { bottom };
            p2.0 += ((a - p2.1) as f64 * (p2.0 - p1.0) as f64 / (p2.1 - p1.1) as f64) as i64;
            p2.1 = a;
            c2 = i32::from(p2.0 < 0) + i32::from(p2.0 > right) * 2;
        }
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 != 0 {
                let a = if c1 == 1 { 0 } else { right };
                p1.1 += ((a - p1.0) as f64 * (p2.1 - p1.1) as f64 / (p2.0 - p1.0) as f64) as i64;
                p1.0 = a;
                c1 = 0;
            }
            if c2 != 0 {
                let a = if c2 == 1 { 0 } else { right };
                p2.1 += ((a - p2.0) as f64 * (p2.1 - p1.1) as f64 / (p2.0 - p1.0) as f64) as i64;
                p2.0 = a;
                c2 = 0;
            }
        }
    }
    (c1 | c2) == 0
}

/// OpenCV's 8-connected `Line` (a `LineIterator` from left to right) into a mask.
fn draw_line(mask: &mut [u8], w: usize, h: usize, mut p1: IPoint, mut p2: IPoint) {
    let (wi, hi) = (w as i64, h as i64);
    let inside = |p: &IPoint| p.0 >= 0 && p.0 < wi && p.1 >= 0 && p.1 < hi;
    if (!inside(&p1) || !inside(&p2)) && !clip_line(wi, hi, &mut p1, &mut p2) {
        return;
    }
    let (mut dx, mut dy) = (p2.0 - p1.0, p2.1 - p1.1);
    let (mut delta_x, mut delta_y) = (1i64, 1i64);
    if dx < 0 {
        dx = -dx;
        dy = -dy;
        std::mem::swap(&mut p1, &mut p2);
    }
    if dy < 0 {
        dy = -dy;
        delta_y = -1;
    }
    let vert = dy > dx;
    if vert {
        std::mem::swap(&mut dx, &mut dy);
        std::mem::swap(&mut delta_x, &mut delta_y);
    }
    let mut err = dx - (dy + dy);
    let plus_delta = dx + dx;
    let minus_delta = -(dy + dy);
    let (mut minus_shift, mut plus_shift, mut minus_step, mut plus_step) = (delta_x, 0i64, 0i64, delta_y);
    if vert {
        std::mem::swap(&mut plus_step, &mut plus_shift);
        std::mem::swap(&mut minus_step, &mut minus_shift);
    }
    let mut p = p1;
    for _ in 0..=dx {
        if inside(&p) {
            mask[p.1 as usize * w + p.0 as usize] = 1;
        }
        let m = if err < 0 { -1i64 } else { 0 };
        err += minus_delta + (plus_delta & m);
        p.0 += minus_shift + (plus_shift & m);
        p.1 += minus_step + (plus_step & m);
    }
}

#[derive(Clone, Copy)]
struct Edge {
    y0: i64,
    y1: i64,
    x: i64,
    dx: i64,
}

/// `cv2.fillPoly(mask, [poly], 1)` (8-connected outline plus OpenCV's scanline fill). Exact for
/// polygons inside the mask; where an edge leaves the mask, OpenCV 5 clips the outline in a way
/// not reproduced here, and a pixel or two along that edge can differ (this only nudges the
/// mean in `box_score_fast` for boxes touching the map's border).
pub fn fill_poly(mask: &mut [u8], w: usize, h: usize, poly: &[IPoint]) {
    let n = poly.len();
    if n == 0 {
        return;
    }
    let mut edges: Vec<Edge> = Vec::with_capacity(n);
    let mut pt0 = poly[n - 1];
    for &pt1 in poly {
        draw_line(mask, w, h, pt0, pt1);
        let (x0, x1) = (pt0.0 << XY_SHIFT, pt1.0 << XY_SHIFT);
        if pt0.1 != pt1.1 {
            let e = if pt0.1 < pt1.1 {
                Edge { y0: pt0.1, y1: pt1.1, x: x0, dx: 0 }
            } else {
                Edge { y0: pt1.1, y1: pt0.1, x: x1, dx: 0 }
            };
            edges.push(Edge { dx: (x1 - x0) / (pt1.1 - pt0.1), ..e });
        }
        pt0 = pt1;
    }
    fill_edges(mask, w, h, edges);
}

/// OpenCV's `FillEdgeCollection`.
fn fill_edges(mask: &mut [u8], w: usize, h: usize, mut edges: Vec<Edge>) {
    let total = edges.len();
    if total < 2 {
        return;
    }
    let (mut y_min, mut y_max) = (i64::MAX, i64::MIN);
    let (mut x_min, mut x_max) = (i64::MAX, i64::MIN);
    for e in &edges {
        let x1 = e.x + (e.y1 - e.y0) * e.dx;
        y_min = y_min.min(e.y0);
        y_max = y_max.max(e.y1);
        x_min = x_min.min(e.x).min(x1);
        x_max = x_max.max(e.x).max(x1);
    }
    if y_max < 0 || y_min >= h as i64 || x_max < 0 || x_min >= (w as i64) << XY_SHIFT {
        return;
    }
    edges.sort_by(|a, b| a.y0.cmp(&b.y0).then(a.x.cmp(&b.x)).then(a.dx.cmp(&b.dx)));
    let y_max = y_max.min(h as i64);
    // Active edges, kept sorted by x (OpenCV's linked list with a bubble sort per line).
    let mut active: Vec<Edge> = Vec::new();
    let mut next = 0usize;
    let mut y = edges[0].y0;
    while y < y_max {
        active.retain(|e| e.y1 != y);
        while next < total && edges[next].y0 == y {
            let e = edges[next];
            let pos = active.iter().position(|a| e.x <= a.x).unwrap_or(active.len());
            active.insert(pos, e);
            next += 1;
        }
        if y >= 0 {
            let row = &mut mask[y as usize * w..(y as usize + 1) * w];
            for pair in active.chunks_exact_mut(2) {
                let (l, r) = if pair[0].x > pair[1].x { (pair[1].x, pair[0].x) } else { (pair[0].x, pair[1].x) };
                let x1 = (l + XY_ONE - 1) >> XY_SHIFT;
                let x2 = r >> XY_SHIFT;
                if x1 < w as i64 && x2 >= 0 {
                    let (a, b) = (x1.max(0) as usize, x2.min(w as i64 - 1));
                    if b >= a as i64 {
                        row[a..=b as usize].fill(1);
                    }
                }
                pair[0].x += pair[0].dx;
                pair[1].x += pair[1].dx;
            }
        } else {
            for pair in active.chunks_exact_mut(2) {
                pair[0].x += pair[0].dx;
                pair[1].x += pair[1].dx;
            }
        }
        active.sort_by_key(|a| a.x);
        if active.is_empty() && next >= total {
            break;
        }
        y += 1;
    }
}

// ---------------------------------------------------------------------------------------
// polygon offset (Clipper 6.4.2 `ClipperOffset`, round joins, closed polygon)

fn clipper_round(v: f64) -> i64 {
    if v < 0.0 { (v - 0.5) as i64 } else { (v + 0.5) as i64 }
}

fn unit_normal(p1: IPoint, p2: IPoint) -> (f64, f64) {
    if p1 == p2 {
        return (0.0, 0.0);
    }
    let dx = (p2.0 - p1.0) as f64;
    let dy = (p2.1 - p1.1) as f64;
    let f = 1.0 / (dx * dx + dy * dy).sqrt();
    (dy * f, -dx * f)
}

fn clipper_area(poly: &[IPoint]) -> f64 {
    let n = poly.len();
    if n < 3 {
        return 0.0;
    }
    let mut a = 0.0;
    let mut j = n - 1;
    for i in 0..n {
        a += (poly[j].0 as f64 + poly[i].0 as f64) * (poly[j].1 as f64 - poly[i].1 as f64);
        j = i;
    }
    -a * 0.5
}

/// The vertices of `ClipperOffset.Execute(delta)` for one closed polygon with round joins
/// (arc tolerance 0.25), before Clipper's union clean-up (which for these convex inputs only
/// drops collinear points, so the convex hull is the same). Empty when the path has fewer than
/// three distinct points (Clipper then returns nothing).
pub fn offset_round(path: &[IPoint], delta: f64) -> Vec<IPoint> {
    // AddPath: drop a closing duplicate and consecutive duplicates.
    let mut high = path.len();
    if high == 0 {
        return Vec::new();
    }
    while high > 1 && path[0] == path[high - 1] {
        high -= 1;
    }
    let mut src: Vec<IPoint> = vec![path[0]];
    for &p in &path[1..high] {
        if src.last() != Some(&p) {
            src.push(p);
        }
    }
    if src.len() < 3 {
        return Vec::new();
    }
    // FixOrientations: Clipper wants the outer polygon with a non-negative area.
    if clipper_area(&src) < 0.0 {
        src.reverse();
    }
    if delta.abs() < 1e-20 {
        return src;
    }
    const ARC_TOLERANCE: f64 = 0.25;
    let y = if ARC_TOLERANCE > delta.abs() * ARC_TOLERANCE { delta.abs() * ARC_TOLERANCE } else { ARC_TOLERANCE };
    let mut steps = std::f64::consts::PI / (1.0 - y / delta.abs()).acos();
    if steps > delta.abs() * std::f64::consts::PI {
        steps = delta.abs() * std::f64::consts::PI;
    }
    let two_pi = std::f64::consts::PI * 2.0;
    let mut m_sin = (two_pi / steps).sin();
    let m_cos = (two_pi / steps).cos();
    let steps_per_rad = steps / two_pi;
    if delta < 0.0 {
        m_sin = -m_sin;
    }
    let len = src.len();
    let normals: Vec<(f64, f64)> = (0..len).map(|j| unit_normal(src[j], src[(j + 1) % len])).collect();
    let mut out = Vec::new();
    let mut k = len - 1;
    for j in 0..len {
        let (nk, nj) = (normals[k], normals[j]);
        let p = src[j];
        let at = |n: (f64, f64)| (clipper_round(p.0 as f64 + n.0 * delta), clipper_round(p.1 as f64 + n.1 * delta));
        let mut sin_a = nk.0 * nj.1 - nj.0 * nk.1;
        if (sin_a * delta).abs() < 1.0 {
            let cos_a = nk.0 * nj.0 + nj.1 * nk.1;
            if cos_a > 0.0 {
                out.push(at(nk));
                continue; // Clipper returns here without moving k
            }
        } else {
            sin_a = sin_a.clamp(-1.0, 1.0);
        }
        if sin_a * delta < 0.0 {
            out.push(at(nk));
            out.push(p);
            out.push(at(nj));
        } else {
            let a = sin_a.atan2(nk.0 * nj.0 + nk.1 * nj.1);
            let n_steps = (clipper_round(steps_per_rad * a.abs()) as i32).max(1);
            let (mut x, mut yv) = nk;
            for _ in 0..n_steps {
                out.push(at((x, yv)));
                let x2 = x;
                x = x * m_cos - m_sin * yv;
                yv = x2 * m_sin + yv * m_cos;
            }
            out.push(at(nj));
        }
        k = j;
    }
    out
}

/// RapidOCR's `unclip`: offsets the box outwards by `area × ratio / perimeter` (shapely's
/// area and length on the float box; pyclipper truncates the coordinates to integers).
pub fn unclip(box_: &[FPoint; 4], ratio: f64) -> Vec<IPoint> {
    // GEOS: ring area by the shoelace formula relative to the first point; length = perimeter.
    let pts: Vec<(f64, f64)> = box_.iter().map(|p| (f64::from(p[0]), f64::from(p[1]))).collect();
    let ring: Vec<(f64, f64)> = pts.iter().copied().chain(std::iter::once(pts[0])).collect();
    let x0 = ring[0].0;
    let mut sum = 0.0;
    for i in 1..ring.len() - 1 {
        sum += (ring[i].0 - x0) * (ring[i - 1].1 - ring[i + 1].1);
    }
    let area = (sum / 2.0).abs();
    let length: f64 = ring.windows(2).map(|w| ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt()).sum();
    if length <= 0.0 {
        return Vec::new();
    }
    let distance = area * ratio / length;
    let path: Vec<IPoint> = box_.iter().map(|p| (p[0] as i64, p[1] as i64)).collect();
    offset_round(&path, distance)
}

/// RapidOCR's `order_points_clockwise`: top-left, top-right, bottom-right, bottom-left by
/// sorting on x, then on y within the left and the right pair.
pub fn order_points_clockwise(pts: &[FPoint; 4]) -> [FPoint; 4] {
    let mut xs: Vec<FPoint> = pts.to_vec();
    xs.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap_or(std::cmp::Ordering::Equal));
    let mut left = [xs[0], xs[1]];
    let mut right = [xs[2], xs[3]];
    left.sort_by(|a, b| a[1].partial_cmp(&b[1]).unwrap_or(std::cmp::Ordering::Equal));
    right.sort_by(|a, b| a[1].partial_cmp(&b[1]).unwrap_or(std::cmp::Ordering::Equal));
    [left[0], right[0], right[1], left[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_from(rows: &[&str]) -> (Vec<u8>, usize, usize) {
        let h = rows.len();
        let w = rows[0].len();
        let m = rows.iter().flat_map(|r| r.bytes().map(|b| u8::from(b == b'#'))).collect();
        (m, w, h)
    }

    #[test]
    fn a_rectangle_has_one_contour_of_four_corners() {
        let (m, w, h) = mask_from(&["......", ".####.", ".####.", "......"]);
        let c = find_contours(&m, w, h);
        assert_eq!(c.len(), 1);
        let mut pts = c[0].clone();
        pts.sort();
        assert_eq!(pts, vec![(1, 1), (1, 2), (4, 1), (4, 2)]);
    }

    #[test]
    fn a_ring_has_an_outer_border_and_a_hole() {
        let (m, w, h) = mask_from(&["#####", "#...#", "#...#", "#####"]);
        let c = find_contours(&m, w, h);
        assert_eq!(c.len(), 2, "{c:?}");
        let r = min_area_rect(&c[1]);
        assert_eq!(r.size[0] * r.size[1], 12.0);
    }

    #[test]
    fn single_pixels_are_contours_too() {
        let (m, w, h) = mask_from(&["#..", "..#"]);
        assert_eq!(find_contours(&m, w, h), vec![vec![(2, 1)], vec![(0, 0)]]);
    }

    #[test]
    fn dilation_grows_right_and_down() {
        let (m, w, h) = mask_from(&["...", ".#.", "..."]);
        let d = dilate_2x2(&m, w, h);
        assert_eq!(d, vec![0, 0, 0, 0, 1, 1, 0, 1, 1]);
    }

    #[test]
    fn hull_of_a_square_with_inner_points() {
        let pts = vec![(0, 0), (2, 1), (4, 0), (4, 4), (1, 2), (0, 4)];
        let mut h = convex_hull(&pts, true);
        h.sort();
        assert_eq!(h, vec![(0, 0), (0, 4), (4, 0), (4, 4)]);
    }

    #[test]
    fn min_area_rect_of_a_rotated_square() {
        let pts = vec![(5, 0), (10, 5), (5, 10), (0, 5)];
        let r = min_area_rect(&pts);
        // cv2.minAreaRect: ((5.0, 5.000000476837158), (7.071068286895752, 7.071068286895752), -45.0)
        assert_eq!(r.center, [5.0, 5.000_000_5]);
        assert_eq!(r.size, [7.071_068_3, 7.071_068_3]);
        assert_eq!(r.angle, -45.0);
        let (b, side) = mini_box(&pts);
        assert!((side - 50f32.sqrt()).abs() < 1e-4);
        // top-left is the leftmost corner (float noise as in cv2.boxPoints)
        assert!(b[0][0].abs() < 1e-5 && (b[0][1] - 5.0).abs() < 1e-5, "{b:?}");
    }

    #[test]
    fn fill_poly_covers_the_rectangle_inclusive() {
        let (w, h) = (6, 5);
        let mut m = vec![0u8; w * h];
        fill_poly(&mut m, w, h, &[(1, 1), (4, 1), (4, 3), (1, 3)]);
        assert_eq!(m.iter().map(|v| u32::from(*v)).sum::<u32>(), 12);
        assert_eq!(m[w + 1], 1);
        assert_eq!(m[3 * w + 4], 1);
        assert_eq!(m[0], 0);
    }

    #[test]
    fn offset_of_a_rectangle_matches_pyclipper() {
        // pyclipper 1.4.0: PyclipperOffset().AddPath(box, JT_ROUND, ET_CLOSEDPOLYGON); Execute(3.3)
        let out = offset_round(&[(10, 10), (50, 10), (50, 20), (10, 20)], 3.3);
        let mut got = out.clone();
        got.sort();
        got.dedup();
        let mut want = vec![
            (52, 8),
            (53, 10),
            (53, 20),
            (52, 22),
            (50, 23),
            (10, 23),
            (8, 22),
            (7, 20),
            (7, 10),
            (8, 8),
            (10, 7),
            (50, 7),
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn points_are_ordered_clockwise() {
        let o = order_points_clockwise(&[[10.0, 20.0], [50.0, 18.0], [9.0, 2.0], [51.0, 1.0]]);
        assert_eq!(o, [[9.0, 2.0], [51.0, 1.0], [50.0, 18.0], [10.0, 20.0]]);
    }
}
