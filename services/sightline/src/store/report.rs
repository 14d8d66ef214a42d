//! `report.html` of `sightline store`: a page a store manager reads. People in view and the
//! flow over time (inline SVG), the heat map on the camera's view (`heatmap.png` next to the
//! page), dwell per zone (a histogram each), visitor composition (a table and bars), and the
//! files for BI tools. No script, no network: it opens from the folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sightline_tracking::report::Report;

use super::run::Summary;
use crate::report::annotate::esc;

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
.kpi{display:inline-block;margin:0 18px 8px 0;padding:8px 14px;background:#f3f5f8;border-radius:6px}\
.kpi b{display:block;font-size:22px}table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}\
th:first-child,td:first-child{text-align:left}.warn{color:#a40}svg text{font:11px system-ui,sans-serif}\
img.heat{max-width:100%;border:1px solid #ccc}.zones{display:flex;flex-wrap:wrap;gap:18px}";

/// The page.
pub fn html(report: &Report, summary: &Summary) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=utf-8><title>Store: {cam}</title><style>{CSS}</style></head><body>\
         <h1>Camera {cam}</h1><p>{secs:.0} s of footage, {frames} frames analysed at {fps:.1} per second.</p>",
        cam = esc(&report.camera),
        secs = report.t_end,
        frames = summary.frames,
        fps = if report.t_end > 0.0 { summary.frames as f64 / report.t_end } else { 0.0 },
    );
    for e in &summary.errors {
        let _ = write!(h, "<p class=warn>Warning: {} (the frames before it are included).</p>", esc(e));
    }
    let peak = report.frames.iter().map(|f| f.people).fold(0.0, f64::max);
    let mean = if report.frames.is_empty() {
        0.0
    } else {
        report.frames.iter().map(|f| f.people).sum::<f64>() / report.frames.len() as f64
    };
    for (label, value) in [
        ("entries", summary.entries.to_string()),
        ("exits", summary.exits.to_string()),
        ("people in view (mean)", format!("{mean:.1}")),
        ("people in view (peak)", format!("{peak:.0}")),
        ("tracked people", summary.tracks.to_string()),
        ("zone visits", summary.visits.to_string()),
    ] {
        let _ = write!(h, "<span class=kpi><b>{value}</b>{label}</span>");
    }

    h.push_str("<h2>People in view and flow over time</h2>");
    h.push_str(&timeline_svg(report));
    h.push_str(
        "<h2>Where people stand and walk</h2><p>Foot points of every tracked person, each frame; warmer is busier.</p>\
                <img class=heat src=heatmap.png alt=\"heat map on the camera view\">",
    );

    h.push_str("<h2>Dwell per zone</h2>");
    if report.dwell.is_empty() {
        h.push_str("<p>No zone visits (the camera file defines no zones, or nobody entered one).</p>");
    } else {
        let mut by_zone: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for d in &report.dwell {
            by_zone.entry(d.zone.as_str()).or_default().push(d.seconds);
        }
        h.push_str("<div class=zones>");
        for (zone, secs) in &by_zone {
            let mut sorted = secs.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            let _ = write!(
                h,
                "<div><b>{}</b>: {} visits, median {median:.1} s, longest {:.1} s{}</div>",
                esc(zone),
                secs.len(),
                sorted.last().copied().unwrap_or(0.0),
                histogram_svg(&sorted)
            );
        }
        h.push_str("</div>");
    }

    h.push_str("<h2>Visitors</h2>");
    let mut bands: BTreeMap<(String, String), u64> = BTreeMap::new();
    for c in &report.composition {
        let gender = c.gender.map_or("unknown", |g| g.as_str()).to_owned();
        *bands.entry((c.age_band.as_str().to_owned(), gender)).or_default() += c.visitors;
    }
    if bands.is_empty() {
        h.push_str("<p>No tracked visitors.</p>");
    } else {
        let total: u64 = bands.values().sum();
        let unknown: u64 = bands.iter().filter(|((a, g), _)| a == "unknown" || g == "unknown").map(|(_, v)| v).sum();
        let _ = write!(
            h,
            "<p>{total} visitors; {unknown} without a usable face (too small at this camera's distance, turned away, \
             or the same person as another track), counted as unknown rather than guessed.</p>\
             <table><tr><th>age band</th><th>gender</th><th>visitors</th><th></th></tr>"
        );
        let max = bands.values().copied().max().unwrap_or(1).max(1);
        for ((band, gender), n) in &bands {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{n}</td><td><svg width=200 height=12><rect width={:.0} height=12 fill=#4a7fb5></rect></svg></td></tr>",
                esc(band),
                esc(gender),
                200.0 * *n as f64 / max as f64
            );
        }
        h.push_str("</table>");
    }

    h.push_str(
        "<h2>Files</h2><ul><li><a href=counts.csv>counts.csv</a> per interval: people mean and peak, entries, exits</li>\
         <li><a href=crossings.csv>crossings.csv</a> every passage: time, track, line, direction</li>\
         <li><a href=dwell.csv>dwell.csv</a> every zone visit: track, zone, enter, exit, seconds</li>\
         <li><a href=composition.csv>composition.csv</a> visitors per interval, age band and gender</li>\
         <li><a href=heatmap.csv>heatmap.csv</a>, <a href=heatmap.png>heatmap.png</a>, \
         <a href=frames.csv>frames.csv</a>, <a href=occupancy.csv>occupancy.csv</a>, <a href=tracks.json>tracks.json</a></li></ul>\
         </body></html>",
    );
    h
}

/// People in view per frame (line) with entries (up) and exits (down) per interval (bars).
fn timeline_svg(report: &Report) -> String {
    let (w, hgt, pad) = (1000.0f64, 220.0f64, 36.0f64);
    let t_end = report.t_end.max(1e-6);
    let peak = report.frames.iter().map(|f| f.people).fold(1.0, f64::max);
    let flow_max = report.counts.iter().map(|c| c.entries.max(c.exits) as f64).fold(1.0, f64::max);
    let x = |t: f64| pad + (w - 2.0 * pad) * t / t_end;
    let y = |v: f64| hgt - pad - (hgt - 2.0 * pad) * v / peak;
    let mut s =
        format!("<svg width=\"100%\" viewBox=\"0 0 {w} {hgt}\" role=img aria-label=\"people in view over time\">");
    let base = hgt - pad;
    let _ = write!(s, "<line x1={pad} y1={base} x2={} y2={base} stroke=#999 />", w - pad);
    for c in &report.counts {
        let (x0, x1) = (x(c.t_start), x(c.t_end.min(t_end)));
        let bw = ((x1 - x0) / 2.0 - 2.0).max(1.0);
        let eh = 40.0 * c.entries as f64 / flow_max;
        let xh = 40.0 * c.exits as f64 / flow_max;
        let _ = write!(
            s,
            "<rect x={x0:.1} y={:.1} width={bw:.1} height={eh:.1} fill=#5a5><title>{} entries</title></rect>\
             <rect x={:.1} y={:.1} width={bw:.1} height={xh:.1} fill=#c74><title>{} exits</title></rect>",
            base - eh,
            c.entries,
            x0 + bw + 2.0,
            base - xh,
            c.exits
        );
    }
    let points: Vec<String> = report.frames.iter().map(|f| format!("{:.1},{:.1}", x(f.t), y(f.people))).collect();
    let _ = write!(s, "<polyline fill=none stroke=#2a5d9f stroke-width=1.5 points=\"{}\" />", points.join(" "));
    let _ = write!(
        s,
        "<text x={pad} y=14>people in view (peak {peak:.0}); bars: entries (green) and exits (red) per {:.0} s</text>\
         <text x={pad} y={} >0 s</text><text x={} y={} text-anchor=end>{t_end:.0} s</text></svg>",
        report.interval_s,
        hgt - 12.0,
        w - pad,
        hgt - 12.0
    );
    s
}

/// A histogram of dwell seconds (10 bins).
fn histogram_svg(sorted: &[f64]) -> String {
    let (w, h) = (300.0f64, 90.0f64);
    let max = sorted.last().copied().unwrap_or(0.0).max(1e-6);
    let mut bins = [0usize; 10];
    for v in sorted {
        bins[((v / max * 10.0) as usize).min(9)] += 1;
    }
    let top = bins.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut s = format!("<br><svg width={w} height={}>", h + 14.0);
    for (i, n) in bins.iter().enumerate() {
        let bh = (h - 4.0) * *n as f64 / top;
        let _ = write!(
            s,
            "<rect x={:.1} y={:.1} width=27 height={bh:.1} fill=#4a7fb5><title>{n} visits</title></rect>",
            i as f64 * 30.0,
            h - bh
        );
    }
    let _ = write!(
        s,
        "<text x=0 y={}>0 s</text><text x={w} y={} text-anchor=end>{max:.0} s</text></svg>",
        h + 12.0,
        h + 12.0
    );
    s
}
