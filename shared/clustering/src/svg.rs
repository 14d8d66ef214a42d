//! The decision graph as a hand-drawn SVG (no plotting dependency): ρ against δ with the centres
//! marked in their clusters' colours and the automatic rule's γ line, and beside it the largest γ
//! values in decreasing order, where the gap the rule cut at is visible.

use std::fmt::Write as _;

use crate::dpc::Clustering;

/// Most points drawn in the scatter: centres and the largest γ always, the rest an even sample
/// (a million circles would make a 60 MB file that no browser opens).
pub const MAX_POINTS: usize = 20_000;

/// Ranked γ values shown in the right panel.
const RANKED: usize = 60;

const PALETTE: [&str; 12] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79",
    "#637939", "#843c39",
];

/// Colour of cluster `c`.
pub fn cluster_colour(c: u32) -> &'static str {
    PALETTE[c as usize % PALETTE.len()]
}

const W: f64 = 980.0;
const H: f64 = 460.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 400.0;

/// Renders the decision graph of `c` with a title line.
pub fn decision_graph(c: &Clustering, title: &str) -> String {
    let n = c.len();
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(svg, r#"<text x="20" y="22" font-size="15" font-weight="bold">{}</text>"#, escape(title));
    let _ = writeln!(
        svg,
        r##"<text x="20" y="40" fill="#555">{n} points, {} clusters ({} rule, {} candidates, {} merged), {} halo</text>"##,
        c.n_clusters(),
        c.decision.rule,
        c.decision.candidates,
        c.decision.merged,
        c.halo.iter().filter(|h| **h).count()
    );
    scatter(&mut svg, c);
    ranked(&mut svg, c);
    svg.push_str("</svg>\n");
    svg
}

/// Left panel: ρ (x) against δ (y), linear axes.
fn scatter(svg: &mut String, c: &Clustering) {
    let (x0, x1) = (70.0, 560.0);
    let n = c.len();
    let rho_max = c.rho.iter().copied().fold(0.0f32, f32::max).max(f32::MIN_POSITIVE) as f64;
    let delta_max = c.delta.iter().copied().fold(0.0f32, f32::max).max(f32::MIN_POSITIVE) as f64;
    let sx = |v: f64| x0 + (x1 - x0) * v / rho_max;
    let sy = |v: f64| BOTTOM - (BOTTOM - TOP) * v / delta_max;
    axes(svg, x0, x1, rho_max, delta_max, "density ρ", "δ (distance to a denser point)");
    // The γ line: ρ·δ = threshold·ρ_max·δ_max (γ is normalised by both maxima).
    if c.decision.gamma_threshold > 0.0 && c.decision.gamma_threshold.is_finite() {
        let g = f64::from(c.decision.gamma_threshold);
        let mut path = String::new();
        for s in 0..=100 {
            let r = rho_max * (g + (1.0 - g) * f64::from(s) / 100.0);
            let d = g * rho_max * delta_max / r;
            let _ = write!(path, "{}{:.1},{:.1} ", if s == 0 { "M" } else { "L" }, sx(r), sy(d.min(delta_max)));
        }
        let _ = writeln!(svg, r##"<path d="{path}" fill="none" stroke="#999" stroke-dasharray="5,4"/>"##);
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" fill="#777" text-anchor="end">γ = {:.3}</text>"##,
            x1 - 4.0,
            sy(g * delta_max) - 6.0,
            g
        );
    }
    let is_centre: std::collections::HashSet<usize> = c.centres.iter().copied().collect();
    let stride = n.div_ceil(MAX_POINTS).max(1);
    let mut by_gamma: Vec<usize> = (0..n).collect();
    by_gamma.sort_by(|&a, &b| c.gamma[b].total_cmp(&c.gamma[a]));
    let mut shown = vec![false; n];
    for &i in by_gamma.iter().take(MAX_POINTS / 10) {
        shown[i] = true;
    }
    for (i, s) in shown.iter_mut().enumerate() {
        *s |= i % stride == 0 || is_centre.contains(&i);
    }
    for i in (0..n).filter(|&i| shown[i] && !is_centre.contains(&i)) {
        let colour = if c.halo[i] { "#bbb" } else { cluster_colour(c.labels[i]) };
        let _ = writeln!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{colour}" fill-opacity="0.45"/>"#,
            sx(f64::from(c.rho[i])),
            sy(f64::from(c.delta[i]))
        );
    }
    for (id, &p) in c.centres.iter().enumerate() {
        let (cx, cy) = (sx(f64::from(c.rho[p])), sy(f64::from(c.delta[p])));
        let _ = writeln!(
            svg,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="6" fill="{}" stroke="black" stroke-width="1.2"><title>cluster {id}: point {p}</title></circle>"#,
            cluster_colour(id as u32)
        );
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}" font-size="10">{id}</text>"#, cx + 8.0, cy + 4.0);
    }
}

/// Right panel: the largest γ in decreasing order, log scale, centres filled.
fn ranked(svg: &mut String, c: &Clustering) {
    let (x0, x1) = (650.0, 950.0);
    let mut by_gamma: Vec<usize> = (0..c.len()).filter(|&i| c.gamma[i] > 0.0).collect();
    by_gamma.sort_by(|&a, &b| c.gamma[b].total_cmp(&c.gamma[a]));
    by_gamma.truncate(RANKED);
    if by_gamma.is_empty() {
        return;
    }
    let hi = f64::from(c.gamma[by_gamma[0]]).log10().ceil();
    let lo = f64::from(c.gamma[by_gamma[by_gamma.len() - 1]]).log10().floor().min(hi - 1.0);
    let m = by_gamma.len().max(2) as f64;
    let sx = |r: f64| x0 + (x1 - x0) * r / (m - 1.0);
    let sy = |g: f64| BOTTOM - (BOTTOM - TOP) * (g.log10() - lo) / (hi - lo);
    let _ = writeln!(svg, r#"<line x1="{x0}" y1="{BOTTOM}" x2="{x1}" y2="{BOTTOM}" stroke="black"/>"#);
    let _ = writeln!(svg, r#"<line x1="{x0}" y1="{TOP}" x2="{x0}" y2="{BOTTOM}" stroke="black"/>"#);
    let mut e = lo;
    while e <= hi {
        let y = sy(10f64.powf(e));
        let _ = writeln!(svg, r#"<line x1="{}" y1="{y:.1}" x2="{x0}" y2="{y:.1}" stroke="black"/>"#, x0 - 4.0);
        let _ = writeln!(svg, r#"<text x="{}" y="{:.1}" text-anchor="end">1e{e}</text>"#, x0 - 6.0, y + 4.0);
        e += 1.0;
    }
    for r in [1usize, 10, 20, 30, 40, 50, 60].iter().filter(|&&r| r <= by_gamma.len()) {
        let x = sx((*r - 1) as f64);
        let _ = writeln!(svg, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{r}</text>"#, BOTTOM + 16.0);
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">rank by γ = ρ·δ (normalised)</text>"#,
        (x0 + x1) / 2.0,
        BOTTOM + 34.0
    );
    if c.decision.gamma_threshold > 0.0 && f64::from(c.decision.gamma_threshold).log10() >= lo {
        let y = sy(f64::from(c.decision.gamma_threshold));
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#999" stroke-dasharray="5,4"/>"##
        );
    }
    let label_of: std::collections::HashMap<usize, usize> =
        c.centres.iter().enumerate().map(|(id, &p)| (p, id)).collect();
    for (r, &i) in by_gamma.iter().enumerate() {
        let (cx, cy) = (sx(r as f64), sy(f64::from(c.gamma[i])));
        match label_of.get(&i) {
            Some(&id) => {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="4.5" fill="{}" stroke="black"/>"#,
                    cluster_colour(id as u32)
                );
            }
            None => {
                let _ = writeln!(svg, r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="3.5" fill="none" stroke="#777"/>"##);
            }
        }
    }
}

fn axes(svg: &mut String, x0: f64, x1: f64, xmax: f64, ymax: f64, xlabel: &str, ylabel: &str) {
    let _ = writeln!(svg, r#"<line x1="{x0}" y1="{BOTTOM}" x2="{x1}" y2="{BOTTOM}" stroke="black"/>"#);
    let _ = writeln!(svg, r#"<line x1="{x0}" y1="{TOP}" x2="{x0}" y2="{BOTTOM}" stroke="black"/>"#);
    for t in ticks(xmax) {
        let x = x0 + (x1 - x0) * t / xmax;
        let _ = writeln!(svg, r#"<line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{}" stroke="black"/>"#, BOTTOM + 4.0);
        let _ = writeln!(svg, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, BOTTOM + 16.0, num(t));
    }
    for t in ticks(ymax) {
        let y = BOTTOM - (BOTTOM - TOP) * t / ymax;
        let _ = writeln!(svg, r#"<line x1="{}" y1="{y:.1}" x2="{x0}" y2="{y:.1}" stroke="black"/>"#, x0 - 4.0);
        let _ = writeln!(svg, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, x0 - 6.0, y + 4.0, num(t));
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        BOTTOM + 34.0,
        escape(xlabel)
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        (TOP + BOTTOM) / 2.0,
        (TOP + BOTTOM) / 2.0,
        escape(ylabel)
    );
}

/// Round tick values from 0 to `max` (about five, steps of 1, 2 or 5 × 10^e).
pub fn ticks(max: f64) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0];
    }
    let raw = max / 5.0;
    let e = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * e).find(|s| *s >= raw).unwrap_or(10.0 * e);
    (0..).map(|i| f64::from(i) * step).take_while(|v| *v <= max * (1.0 + 1e-9)).collect()
}

fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.37);
        assert_eq!(t.len(), 4);
        assert!((t[3] - 0.3).abs() < 1e-12);
        assert_eq!(ticks(0.0), vec![0.0]);
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(20000.0), "2e4");
    }
}
