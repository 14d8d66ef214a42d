//! Renders a synthetic store-camera sequence with known truth ([`sightline_evals::store_synth`]).
//!
//! ```sh
//! cargo run -p sightline-evals --release --example store_synth -- --seed 1 --out /tmp/synth
//!     [--people 12] [--duration 60] [--fps 5] [--data ../shared/data] [--sheet sheet.png]
//!     [--pool pool.png]
//! ```
//! Writes `OUT/frames/000000.jpg...` (JPEG quality 90), `OUT/camera.toml` (the entrance line
//! and the shelf zone) and `OUT/truth.json` (per person: path, box per frame, age, gender,
//! face; the crossings; the dwell; people in view per frame). `--sheet` also writes a contact
//! sheet of eight frames spread over the sequence, with the line, the zone and the truth boxes;
//! `--pool` a sheet of every body and face the renderer may draw.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use image::{Rgb, RgbImage, imageops};
use sightline_evals::store_synth::{Assets, Direction, Scenario, Sequence, render};

/// Renders a synthetic store-camera sequence with known truth.
#[derive(Parser, Debug)]
struct Args {
    /// Decides everything random.
    #[arg(long, env = "SYNTH_SEED", default_value_t = 1)]
    seed: u64,
    /// Output folder.
    #[arg(long, env = "SYNTH_OUT")]
    out: PathBuf,
    /// People.
    #[arg(long, env = "SYNTH_PEOPLE", default_value_t = 12)]
    people: usize,
    /// Seconds.
    #[arg(long, env = "SYNTH_DURATION", default_value_t = 60.0)]
    duration: f64,
    /// Frames per second.
    #[arg(long, env = "SYNTH_FPS", default_value_t = 5.0)]
    fps: f64,
    /// The evaluation data (default: the repository's ../shared/data).
    #[arg(long, env = "SYNTH_DATA")]
    data: Option<PathBuf>,
    /// Also write a contact sheet of eight frames (PNG).
    #[arg(long, env = "SYNTH_SHEET")]
    sheet: Option<PathBuf>,
    /// Also write a sheet of every body and face in the pool (PNG), to review the selection.
    #[arg(long, env = "SYNTH_POOL")]
    pool: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut scenario = Scenario::new(args.seed);
    scenario.people = args.people;
    scenario.duration_s = args.duration;
    scenario.fps = args.fps;
    if let Some(data) = args.data {
        scenario.data_dir = data;
    }
    if let Some(pool) = &args.pool {
        let assets = Assets::load(&scenario.data_dir, scenario.width, scenario.height, scenario.min_age)
            .context("load the assets")?;
        pool_sheet(&assets).save(pool).with_context(|| format!("write {}", pool.display()))?;
        println!("pool: {} bodies, {} faces", assets.sprites.len(), assets.faces.len());
        for s in &assets.sprites {
            print!("{} ", s.id);
        }
        println!();
    }
    let start = Instant::now();
    let seq = render(&scenario).context("render the scenario")?;
    let rendered = start.elapsed().as_secs_f64();
    seq.write(&args.out).with_context(|| format!("write {}", args.out.display()))?;
    let written = start.elapsed().as_secs_f64() - rendered;
    if let Some(sheet) = &args.sheet {
        contact_sheet(&seq).save(sheet).with_context(|| format!("write {}", sheet.display()))?;
    }

    let t = &seq.truth;
    println!(
        "seed {}: {} frames, {} people, rendered in {rendered:.1} s, written in {written:.1} s to {}",
        args.seed,
        seq.frames.len(),
        t.persons.len(),
        args.out.display()
    );
    for p in &t.persons {
        let (first, last) = (p.waypoints.first(), p.waypoints.last());
        let span = first.zip(last).map(|(a, b)| format!("{:5.1}-{:5.1} s", a.t, b.t)).unwrap_or_default();
        let min_vis = p
            .boxes
            .iter()
            .filter(|b| b.in_frame(scenario.width, scenario.height) == 1.0)
            .map(|b| b.visible)
            .fold(1.0, f64::min);
        println!(
            "  person {:2} {:12} {span}  {:2} {:6}  sprite {:7}  min visible in frame {:.2}  face {}",
            p.id,
            format!("{:?}", p.role),
            p.age,
            p.gender,
            p.sprite,
            min_vis,
            p.face
        );
    }
    let count = |d: Direction| t.crossings.iter().filter(|c| c.direction == d).count();
    println!("crossings: {} in, {} out", count(Direction::In), count(Direction::Out));
    for c in &t.crossings {
        println!("  t {:5.2} s  person {:2}  {:?}", c.t, c.person, c.direction);
    }
    println!("dwell in {}:", scenario.zone.name);
    for d in &t.dwell {
        println!("  person {:2}  {:5.1}-{:5.1} s  {:5.1} s", d.person, d.enter_t, d.exit_t, d.seconds);
    }
    let max_view = t.in_view.iter().map(|v| v.count).max().unwrap_or(0);
    let mean_view = t.in_view.iter().map(|v| v.count as f64).sum::<f64>() / t.in_view.len().max(1) as f64;
    println!("in view: mean {mean_view:.2}, max {max_view}");
    Ok(())
}

/// Eight frames spread over the sequence, half size, in a 4x2 grid, with the line (red), the
/// zone (yellow) and the truth boxes of the people at least half in the frame (green).
fn contact_sheet(seq: &Sequence) -> RgbImage {
    let s = &seq.truth.scenario;
    let n = seq.frames.len();
    let picks: Vec<usize> = (0..8).map(|k| (k * n.saturating_sub(1)) / 7).collect();
    let (cw, ch) = (s.width / 2, s.height / 2);
    let mut sheet = RgbImage::new(cw * 4, ch * 2);
    for (k, &i) in picks.iter().enumerate() {
        let Some(frame) = seq.frames.get(i) else { continue };
        let mut img = frame.image.clone();
        draw_segment(&mut img, s.line.a, s.line.b, Rgb([255, 40, 40]));
        let poly = &s.zone.polygon;
        for j in 0..poly.len() {
            draw_segment(&mut img, poly[j], poly[(j + 1) % poly.len()], Rgb([255, 220, 0]));
        }
        for p in &seq.truth.persons {
            for b in p.boxes.iter().filter(|b| b.frame == i && b.in_frame(s.width, s.height) >= 0.5) {
                let (x0, y0, x1, y1) = (b.x, b.y, b.x + b.w, b.y + b.h);
                for (a, c) in [([x0, y0], [x1, y0]), ([x1, y0], [x1, y1]), ([x1, y1], [x0, y1]), ([x0, y1], [x0, y0])] {
                    draw_segment(&mut img, a, c, Rgb([40, 220, 40]));
                }
            }
        }
        let small = imageops::resize(&img, cw, ch, imageops::FilterType::Triangle);
        imageops::replace(&mut sheet, &small, i64::from((k as u32 % 4) * cw), i64::from((k as u32 / 4) * ch));
    }
    sheet
}

/// The bodies, up to 240 px tall on grey in rows of 10 (in load order), then the faces at 64 px.
fn pool_sheet(assets: &Assets) -> RgbImage {
    let (cell_w, cell_h, cols) = (160u32, 250u32, 10u32);
    let body_rows = (assets.sprites.len() as u32).div_ceil(cols);
    let face_rows = (assets.faces.len() as u32).div_ceil(cols * 2);
    let mut sheet = RgbImage::from_pixel(cell_w * cols, cell_h * body_rows + 70 * face_rows, Rgb([128, 128, 128]));
    for (k, s) in assets.sprites.iter().enumerate() {
        let (w, h) = s.image.dimensions();
        let scale = (240.0 / f64::from(h)).min(f64::from(cell_w - 4) / f64::from(w));
        let (nw, nh) = ((f64::from(w) * scale) as u32, (f64::from(h) * scale) as u32);
        let small = imageops::resize(&s.image, nw.max(1), nh.max(1), imageops::FilterType::Triangle);
        let (x0, y0) = ((k as u32 % cols) * cell_w + 2, (k as u32 / cols) * cell_h + 5);
        for (x, y, p) in small.enumerate_pixels() {
            let a = u16::from(p[3]);
            let d = sheet.get_pixel_mut(x0 + x, y0 + y);
            for c in 0..3 {
                d[c] = ((u16::from(p[c]) * a + u16::from(d[c]) * (255 - a)) / 255) as u8;
            }
        }
    }
    for (k, f) in assets.faces.iter().enumerate() {
        let small = imageops::resize(&f.image, 64, 64, imageops::FilterType::Triangle);
        let (x0, y0) = ((k as u32 % (cols * 2)) * 55, cell_h * body_rows + (k as u32 / (cols * 2)) * 70);
        for (x, y, p) in small.enumerate_pixels() {
            let a = u16::from(p[3]);
            if x0 + x < sheet.width() && y0 + y < sheet.height() {
                let d = sheet.get_pixel_mut(x0 + x, y0 + y);
                for c in 0..3 {
                    d[c] = ((u16::from(p[c]) * a + u16::from(d[c]) * (255 - a)) / 255) as u8;
                }
            }
        }
    }
    sheet
}

/// A 2-px line, clipped to the image.
fn draw_segment(img: &mut RgbImage, a: [f64; 2], b: [f64; 2], colour: Rgb<u8>) {
    let steps = ((b[0] - a[0]).abs().max((b[1] - a[1]).abs()).ceil() as usize).max(1);
    for k in 0..=steps {
        let u = k as f64 / steps as f64;
        let (x, y) = (a[0] + u * (b[0] - a[0]), a[1] + u * (b[1] - a[1]));
        for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)] {
            let (px, py) = ((x + dx).round(), (y + dy).round());
            if px >= 0.0 && py >= 0.0 && px < f64::from(img.width()) && py < f64::from(img.height()) {
                img.put_pixel(px as u32, py as u32, colour);
            }
        }
    }
}
