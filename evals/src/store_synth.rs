//! Synthetic store-camera sequences with known ground truth, for the in-store analytics
//! (people counting across an entrance line, dwell in zones, visitor age and gender).
//!
//! Real people are pasted over a real empty scene: COCO persons cut out with their polygon
//! masks walk scripted paths over the median background of `people/vtest.avi`, each wearing a
//! UTKFace chip over the head, so the age and gender of every visitor are known. Everything is
//! decided by [`Scenario::seed`]: the same scenario renders the same frames, byte for byte.
//!
//! # The truth
//! - **Foot point**: the bottom centre of a person's box; the box is the drawn cut-out (body and
//!   face), placed so that its foot point is the scripted path position rounded to the pixel.
//! - **Crossing** ([`crossings`]): the foot point goes from one side of the line to the other
//!   through the segment (the step between two frames meets the segment, ends included) and
//!   then stays on the new side for at least [`CROSSING_HOLD_S`] (the first and the last frame
//!   on the new side are that far apart). A person who steps over and comes back sooner is not
//!   counted, in either direction; a person whose track ends sooner is not counted either. A
//!   foot point exactly on the line counts as still on its previous side. Going around an end
//!   of the segment changes the side without a crossing. The crossing's time is where the step
//!   meets the line (linear interpolation between the two frames); its direction is `in` when
//!   the new side holds [`Line::inside`].
//! - **Dwell** ([`dwell_intervals`]): each run of consecutive frames with the foot point inside
//!   the zone polygon; it enters at the first of those frames and exits at the next frame (one
//!   frame period after the last when the track ends inside), so seconds = frames / fps.
//! - **In view**: persons whose box lies at least half inside the frame.
//! - **Visible fraction**: the share of a person's opaque pixels (alpha ≥ 1/2) that are inside
//!   the frame and not covered by a nearer person's opaque pixels. Nearer = larger foot y.
//!
//! # The scenario
//! The scripts assume the default layout: a roughly horizontal entrance line with the store
//! (`inside`) above it, the street below and off the bottom of the frame, and the zone above
//! the line. The first twelve people play, in this order: in, out, turn-back, parallel walker,
//! loiterer, an occluding pair, a walk-through, in, out, turn-back, loiterer; more people get
//! roles drawn from the seed. Positions, speeds (40-120 px/s), start times, sprites and faces
//! vary with the seed.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage, Rgba, RgbaImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sightline_clustering::dpc::SplitMix64;

/// How long (seconds) the foot point must stay on the new side for a crossing to count.
pub const CROSSING_HOLD_S: f64 = 1.0;

/// Sprites taller than this (pixels) are scaled down once when loaded.
const SPRITE_MAX_H: u32 = 320;

/// Faces are drawn this wide (pixels) on the farthest and the nearest people.
const FACE_W: (f64, f64) = (36.0, 48.0);

/// Foot y (pixels) of the bottom entries and exits: far enough below the frame that a person
/// starts and ends mostly out of view.
const BELOW: f64 = 250.0;

/// Horizontal distance beyond the frame's sides of the side entries and exits.
const BESIDE: f64 = 110.0;

/// A counting line: a segment and the side that is the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The line's name.
    pub name: String,
    /// One end (pixels).
    pub a: [f64; 2],
    /// The other end.
    pub b: [f64; 2],
    /// A point on the inside: moving to its side is `in`.
    pub inside: [f64; 2],
}

/// A zone: a polygon of foot points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// The zone's name.
    pub name: String,
    /// The vertices (pixels), in order.
    pub polygon: Vec<[f64; 2]>,
}

/// Perspective: a person's height in pixels as a linear function of the foot point's y.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perspective {
    /// A far foot y.
    pub far_y: f64,
    /// The height of a person standing at `far_y`.
    pub far_height: f64,
    /// A near foot y.
    pub near_y: f64,
    /// The height of a person standing at `near_y`.
    pub near_height: f64,
}

impl Perspective {
    /// The height (pixels) of a person whose foot point is at `y`, never under half the far
    /// height.
    pub fn height_at(&self, y: f64) -> f64 {
        let k = (y - self.far_y) / (self.near_y - self.far_y);
        (self.far_height + k * (self.near_height - self.far_height)).max(self.far_height / 2.0)
    }
}

/// What to render: the seed, the timing, the camera's geometry and where the data lies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Decides everything random.
    pub seed: u64,
    /// Frames per second.
    pub fps: f64,
    /// Length (seconds); frame `i` is at `i / fps`, for every such time before the end.
    pub duration_s: f64,
    /// People.
    pub people: usize,
    /// Frame width (pixels).
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The entrance line.
    pub line: Line,
    /// The loitering zone.
    pub zone: Zone,
    /// Person sizes.
    pub perspective: Perspective,
    /// Faces of younger people are not used: the bodies are adults'.
    pub min_age: u32,
    /// The evaluation data (`people/`, `faces/attributes/`).
    pub data_dir: PathBuf,
}

impl Scenario {
    /// The default scenario for a seed: 12 people, 60 s at 5 fps, 768x576, the line from
    /// (150, 380) to (620, 380) with the store above it, a shelf zone above the line on the
    /// right.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            fps: 5.0,
            duration_s: 60.0,
            people: 12,
            width: 768,
            height: 576,
            line: Line { name: "entrance".into(), a: [150.0, 380.0], b: [620.0, 380.0], inside: [385.0, 200.0] },
            zone: Zone {
                name: "shelf".into(),
                polygon: vec![[500.0, 210.0], [690.0, 210.0], [690.0, 300.0], [500.0, 300.0]],
            },
            perspective: Perspective { far_y: 170.0, far_height: 160.0, near_y: 576.0, near_height: 280.0 },
            min_age: 14,
            data_dir: Self::default_data_dir(),
        }
    }

    /// The repository's evaluation data: `../shared/data` beside the workspace.
    pub fn default_data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
    }

    /// The number of frames.
    pub fn frame_count(&self) -> usize {
        let n = (self.duration_s * self.fps - 1e-9).ceil();
        if n > 0.0 { n as usize } else { 0 }
    }

    /// The camera description (line and zone) in the analytics' TOML format.
    pub fn camera_toml(&self) -> String {
        let l = &self.line;
        let side = if cross(l.a, l.b, l.inside) < 0.0 { "left" } else { "right" };
        let pt = |p: [f64; 2]| format!("[{:.1}, {:.1}]", p[0], p[1]);
        let polygon: Vec<String> = self.zone.polygon.iter().map(|&p| pt(p)).collect();
        format!(
            "name = \"synthetic\"\nfps = {:.1}\n\n[[lines]]\nname = \"{}\"\na = {}\nb = {}\n\
             # the store's side, as seen on screen walking from a to b (y down)\n\
             in_side = \"{side}\"\n# a point on the store's side: moving to its side is \"in\"\n\
             inside = {}\n\n[[zones]]\nname = \"{}\"\npolygon = [{}]\n",
            self.fps,
            l.name,
            pt(l.a),
            pt(l.b),
            pt(l.inside),
            self.zone.name,
            polygon.join(", ")
        )
    }
}

/// What a person was scripted to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Comes from the street, crosses the line into the store, leaves by a side.
    CrossIn,
    /// Comes from a side of the store, crosses the line out to the street.
    CrossOut,
    /// Walks up to the line, steps over it by 3-8 px, stands under half a second, turns back.
    TurnBack,
    /// Walks along the line, 25-60 px from it, without crossing; enters and leaves the frame.
    Parallel,
    /// Walks into the zone, wanders and stands in it for at least 12-25 s (drawn), leaves.
    Loiter,
    /// One of a pair walking past each other (or side by side) at nearby depths.
    Occluding,
    /// Enters by one edge and leaves by another without crossing the line.
    Walkthrough,
}

/// A path vertex: where the foot point is at time `t`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Waypoint {
    /// Seconds.
    pub t: f64,
    /// Pixels.
    pub x: f64,
    /// Pixels.
    pub y: f64,
}

/// A person's box in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PersonBox {
    /// Frame index.
    pub frame: usize,
    /// Seconds.
    pub t: f64,
    /// Left (pixels; may lie outside the frame).
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
    /// Share of the person's opaque pixels that are drawn (in the frame, not occluded).
    pub visible: f64,
}

impl PersonBox {
    /// The foot point: the bottom centre.
    pub fn foot(&self) -> [f64; 2] {
        [self.x + self.w / 2.0, self.y + self.h]
    }

    /// The share of the box's area inside a `width` x `height` frame.
    pub fn in_frame(&self, width: u32, height: u32) -> f64 {
        let ix = (self.x + self.w).min(f64::from(width)) - self.x.max(0.0);
        let iy = (self.y + self.h).min(f64::from(height)) - self.y.max(0.0);
        if ix <= 0.0 || iy <= 0.0 { 0.0 } else { ix * iy / (self.w * self.h) }
    }
}

/// One person's script and truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonTruth {
    /// Id (0-based, in script order).
    pub id: u32,
    /// What the script does.
    pub role: Role,
    /// The foot point's path; the person exists from the first waypoint's time to the last's.
    pub waypoints: Vec<Waypoint>,
    /// The body: the COCO annotation id of the cut-out.
    pub sprite: u64,
    /// Whether the body is mirrored.
    pub mirrored: bool,
    /// The face chip's file name (`faces/attributes/`).
    pub face: String,
    /// The face's age (years).
    pub age: u32,
    /// The face's gender (`male` or `female`).
    pub gender: String,
    /// The box in every frame in which the person exists.
    pub boxes: Vec<PersonBox>,
}

/// The direction of a crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// To the side of [`Line::inside`].
    In,
    /// Away from it.
    Out,
}

/// A counted crossing of the line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// When the foot point met the line (seconds).
    pub t: f64,
    /// The person's id.
    pub person: u32,
    /// The line's name.
    pub line: String,
    /// Which way.
    pub direction: Direction,
}

/// A stay of a foot point in a zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dwell {
    /// The person's id.
    pub person: u32,
    /// The zone's name.
    pub zone: String,
    /// The first frame time inside.
    pub enter_t: f64,
    /// The first frame time outside again (see the module's truth rule).
    pub exit_t: f64,
    /// `exit_t - enter_t`.
    pub seconds: f64,
}

/// How many people are in view in a frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InView {
    /// Frame index.
    pub frame: usize,
    /// Seconds.
    pub t: f64,
    /// Persons whose box is at least half inside the frame.
    pub count: usize,
}

/// The ground truth of a rendered sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// What was rendered.
    pub scenario: Scenario,
    /// Every person, by id.
    pub persons: Vec<PersonTruth>,
    /// The counted crossings, by time.
    pub crossings: Vec<Crossing>,
    /// The stays in the zone, by person then time.
    pub dwell: Vec<Dwell>,
    /// People in view, per frame.
    pub in_view: Vec<InView>,
}

/// One rendered frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame {
    /// Index from 0.
    pub index: usize,
    /// Seconds.
    pub t: f64,
    /// The pixels (not serialised: the frames are written as JPEG files).
    #[serde(skip)]
    pub image: RgbImage,
}

/// A rendered sequence: its frames and their truth.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sequence {
    /// The truth, with the scenario.
    pub truth: Truth,
    /// The frames, in order.
    pub frames: Vec<Frame>,
}

impl Sequence {
    /// Writes `dir/frames/000000.jpg...` (JPEG quality 90), `dir/camera.toml` and
    /// `dir/truth.json`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let frames = dir.join("frames");
        std::fs::create_dir_all(&frames).with_context(|| format!("create {}", frames.display()))?;
        self.frames.par_iter().try_for_each(|f| {
            let path = frames.join(format!("{:06}.jpg", f.index));
            let file = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
            let mut out = BufWriter::new(file);
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode_image(&f.image)
                .with_context(|| format!("encode {}", path.display()))?;
            out.flush().with_context(|| format!("write {}", path.display()))
        })?;
        let camera = dir.join("camera.toml");
        std::fs::write(&camera, self.truth.scenario.camera_toml())
            .with_context(|| format!("write {}", camera.display()))?;
        let truth = dir.join("truth.json");
        let json = serde_json::to_vec_pretty(&self.truth).context("serialise the truth")?;
        std::fs::write(&truth, json).with_context(|| format!("write {}", truth.display()))
    }

    /// A hash of every frame's pixels, to compare renderings.
    pub fn frames_hash(&self) -> u64 {
        let mut h = DefaultHasher::new();
        for f in &self.frames {
            f.image.as_raw().hash(&mut h);
        }
        h.finish()
    }
}

/// A cut-out person.
#[derive(Debug, Clone)]
pub struct Sprite {
    /// Its COCO annotation id.
    pub id: u64,
    /// The pixels, cropped to the mask, alpha = the (feathered) mask.
    pub image: RgbaImage,
    /// The centre of the head as a fraction of the width (the opaque pixels of the top rows).
    pub head_x: f64,
}

/// A face chip and its labels.
#[derive(Debug, Clone)]
pub struct FaceChip {
    /// File name.
    pub file: String,
    /// Age (years).
    pub age: u32,
    /// `male` or `female`.
    pub gender: String,
    /// The chip with a soft elliptical alpha.
    pub image: RgbaImage,
}

/// The pictures a scenario is drawn with.
#[derive(Debug, Clone)]
pub struct Assets {
    /// The empty scene, the size of the frames.
    pub background: RgbImage,
    /// The bodies.
    pub sprites: Vec<Sprite>,
    /// The faces.
    pub faces: Vec<FaceChip>,
}

impl Assets {
    /// Loads the background (median of `people/vtest.avi`, via `ffmpeg`), the COCO people that
    /// are standing, whole and large enough, and the face chips of people at least `min_age`
    /// old.
    pub fn load(data_dir: &Path, width: u32, height: u32, min_age: u32) -> anyhow::Result<Self> {
        let people = data_dir.join("people");
        let background = median_background(&people.join("vtest.avi"), width, height)?;
        let sprites = load_sprites(&people)?;
        let faces = load_faces(&data_dir.join("faces/attributes"), min_age)?;
        if sprites.is_empty() || faces.is_empty() {
            bail!("no usable people ({}) or faces ({}) under {}", sprites.len(), faces.len(), data_dir.display());
        }
        Ok(Self { background, sprites, faces })
    }

    /// Drawn assets with no files: a patterned floor, blob people and striped faces (for tests).
    pub fn synthetic(width: u32, height: u32) -> Self {
        let background = RgbImage::from_fn(width, height, |x, y| {
            let tile = ((x / 32 + y / 32) % 2) as u8 * 20;
            Rgb([90 + tile, 100 + (y * 60 / height.max(1)) as u8, 110 + (x * 40 / width.max(1)) as u8])
        });
        let sprites = (0..5u64)
            .map(|k| {
                let (w, h) = (70 + 6 * k as u32, 240);
                let image = RgbaImage::from_fn(w, h, |x, y| {
                    let (cx, fx, fy) = (w as f64 / 2.0, x as f64 + 0.5, y as f64 + 0.5);
                    let head = ((fx - cx) / 16.0).powi(2) + ((fy - 22.0) / 20.0).powi(2) < 1.0;
                    let body = ((fx - cx) / (cx - 1.0)).powi(2) + ((fy - 140.0) / 98.0).powi(2) < 1.0;
                    let a = if head || body { 255 } else { 0 };
                    Rgba([40 + 40 * k as u8, 200 - 30 * k as u8, 60 + (y % 50) as u8, a])
                });
                Sprite { id: 1000 + k, image, head_x: 0.5 }
            })
            .collect();
        let faces = (0..4u32)
            .map(|k| {
                let chip =
                    RgbImage::from_fn(200, 200, |x, y| Rgb([200 - (y / 4) as u8, 150 + (k * 20) as u8, (x / 2) as u8]));
                FaceChip {
                    file: format!("synthetic{k}.jpg"),
                    age: 20 + 15 * k,
                    gender: if k % 2 == 0 { "female".into() } else { "male".into() },
                    image: face_alpha(&chip),
                }
            })
            .collect();
        Self { background, sprites, faces }
    }
}

/// Loads the assets of `scenario.data_dir` and renders the scenario.
pub fn render(scenario: &Scenario) -> anyhow::Result<Sequence> {
    let assets = Assets::load(&scenario.data_dir, scenario.width, scenario.height, scenario.min_age)?;
    Ok(render_with(scenario, &assets))
}

/// Renders a scenario with given assets. Deterministic for a scenario and assets, whatever
/// the thread count.
pub fn render_with(scenario: &Scenario, assets: &Assets) -> Sequence {
    let mut rng = SplitMix64(scenario.seed ^ 0x5EED_5707_E5C3_A11E);
    let plans = plan(scenario, &mut rng);
    let mut sprite_order: Vec<usize> = (0..assets.sprites.len()).collect();
    rng.shuffle(&mut sprite_order);
    let mut face_order: Vec<usize> = (0..assets.faces.len()).collect();
    rng.shuffle(&mut face_order);
    let actors: Vec<Actor> = plans
        .into_iter()
        .enumerate()
        .map(|(i, (role, path))| {
            let sprite = &assets.sprites[sprite_order[i % sprite_order.len()]];
            let mirrored = rng.uniform() < 0.5;
            let image = if mirrored { imageops::flip_horizontal(&sprite.image) } else { sprite.image.clone() };
            let head_x = if mirrored { 1.0 - sprite.head_x } else { sprite.head_x };
            Actor { role, path, sprite: sprite.id, mirrored, image, head_x, face: face_order[i % face_order.len()] }
        })
        .collect();

    let drawn: Vec<(Frame, Vec<(usize, PersonBox)>)> =
        (0..scenario.frame_count()).into_par_iter().map(|index| draw_frame(scenario, assets, &actors, index)).collect();

    let mut persons: Vec<PersonTruth> = actors
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let face = &assets.faces[a.face];
            PersonTruth {
                id: i as u32,
                role: a.role,
                waypoints: a.path.clone(),
                sprite: a.sprite,
                mirrored: a.mirrored,
                face: face.file.clone(),
                age: face.age,
                gender: face.gender.clone(),
                boxes: Vec::new(),
            }
        })
        .collect();
    let mut in_view = Vec::with_capacity(drawn.len());
    let mut frames = Vec::with_capacity(drawn.len());
    for (frame, boxes) in drawn {
        let count = boxes.iter().filter(|(_, b)| b.in_frame(scenario.width, scenario.height) >= 0.5).count();
        in_view.push(InView { frame: frame.index, t: frame.t, count });
        for (i, b) in boxes {
            persons[i].boxes.push(b);
        }
        frames.push(frame);
    }

    let mut all_crossings = Vec::new();
    let mut dwell = Vec::new();
    for p in &persons {
        let feet: Vec<(f64, [f64; 2])> = p.boxes.iter().map(|b| (b.t, b.foot())).collect();
        for (t, direction) in crossings(&scenario.line, &feet) {
            all_crossings.push(Crossing { t, person: p.id, line: scenario.line.name.clone(), direction });
        }
        for (enter_t, exit_t) in dwell_intervals(&scenario.zone, &feet, 1.0 / scenario.fps) {
            dwell.push(Dwell {
                person: p.id,
                zone: scenario.zone.name.clone(),
                enter_t,
                exit_t,
                seconds: exit_t - enter_t,
            });
        }
    }
    all_crossings.sort_by(|a, b| a.t.total_cmp(&b.t).then(a.person.cmp(&b.person)));
    Sequence { truth: Truth { scenario: scenario.clone(), persons, crossings: all_crossings, dwell, in_view }, frames }
}

/// The counted crossings of a track of foot points `(t, [x, y])` in time order, as
/// `(t, direction)`: the rule of the module's documentation.
pub fn crossings(line: &Line, track: &[(f64, [f64; 2])]) -> Vec<(f64, Direction)> {
    let sides = carried_sides(line, track);
    let Some(&first) = sides.iter().find(|&&s| s != 0) else { return Vec::new() };
    let inside = side(line, line.inside);
    let mut out = Vec::new();
    let mut settled = first;
    // The step that entered the side the foot point is now on, when that is not `settled`:
    // (first index on the new side, whether the step met the segment, when it met the line).
    let mut pending: Option<(usize, bool, f64)> = None;
    for i in 1..track.len() {
        let s = sides[i];
        if s != sides[i - 1] {
            pending = if s == settled {
                None
            } else {
                let (p, q) = (track[i - 1], track[i]);
                Some((i, meets_segment(line, p.1, q.1), line_time(line, p, q)))
            };
        }
        if let Some((j, through, t)) = pending
            && track[i].0 - track[j].0 >= CROSSING_HOLD_S - 1e-9
        {
            settled = s;
            pending = None;
            if through {
                out.push((t, if s == inside { Direction::In } else { Direction::Out }));
            }
        }
    }
    out
}

/// The stays of a track of foot points `(t, [x, y])` in a zone, as `(enter_t, exit_t)`;
/// `frame_s` is the frame period, the stay's end when the track ends inside.
pub fn dwell_intervals(zone: &Zone, track: &[(f64, [f64; 2])], frame_s: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut enter: Option<f64> = None;
    for &(t, p) in track {
        match (in_polygon(&zone.polygon, p), enter) {
            (true, None) => enter = Some(t),
            (false, Some(e)) => {
                out.push((e, t));
                enter = None;
            }
            _ => {}
        }
    }
    if let (Some(e), Some(&(t, _))) = (enter, track.last()) {
        out.push((e, t + frame_s));
    }
    out
}

/// Whether `p` lies inside the polygon (even-odd rule).
pub fn in_polygon(polygon: &[[f64; 2]], p: [f64; 2]) -> bool {
    let mut inside = false;
    let n = polygon.len();
    for i in 0..n {
        let (a, b) = (polygon[i], polygon[(i + 1) % n]);
        if (a[1] > p[1]) != (b[1] > p[1]) && p[0] < a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]) {
            inside = !inside;
        }
    }
    inside
}

/// The side of the line's infinite extension a point is on: -1, 0 (on it) or 1.
fn side(line: &Line, p: [f64; 2]) -> i8 {
    let c = cross(line.a, line.b, p);
    if c > 0.0 {
        1
    } else if c < 0.0 {
        -1
    } else {
        0
    }
}

/// The sides of a track, a point on the line taking its predecessor's side (the first nonzero
/// side before the first nonzero one).
fn carried_sides(line: &Line, track: &[(f64, [f64; 2])]) -> Vec<i8> {
    let mut sides: Vec<i8> = track.iter().map(|&(_, p)| side(line, p)).collect();
    let first = sides.iter().copied().find(|&s| s != 0).unwrap_or(0);
    let mut prev = first;
    for s in &mut sides {
        if *s == 0 {
            *s = prev;
        }
        prev = *s;
    }
    sides
}

/// `(b - a) x (p - a)`: negative when `p` is on the screen's left of `a -> b` (y down).
fn cross(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

/// Whether the step `p -> q` meets the segment (touching included).
fn meets_segment(line: &Line, p: [f64; 2], q: [f64; 2]) -> bool {
    let (d1, d2) = (cross(line.a, line.b, p), cross(line.a, line.b, q));
    let (d3, d4) = (cross(p, q, line.a), cross(p, q, line.b));
    if d1 * d2 > 0.0 || d3 * d4 > 0.0 {
        return false;
    }
    if d1 == 0.0 && d2 == 0.0 {
        // Collinear: the projections must overlap.
        let along =
            |v: [f64; 2]| (v[0] - line.a[0]) * (line.b[0] - line.a[0]) + (v[1] - line.a[1]) * (line.b[1] - line.a[1]);
        let len = along(line.b);
        let (lo, hi) = (along(p).min(along(q)), along(p).max(along(q)));
        return hi >= 0.0 && lo <= len;
    }
    true
}

/// When the step `(tp, p) -> (tq, q)` meets the line's extension (linear in time).
fn line_time(line: &Line, (tp, p): (f64, [f64; 2]), (tq, q): (f64, [f64; 2])) -> f64 {
    let (cp, cq) = (cross(line.a, line.b, p), cross(line.a, line.b, q));
    if cp == cq { tp } else { tp + (cp / (cp - cq)).clamp(0.0, 1.0) * (tq - tp) }
}

/// A person as drawn: the script and the pictures.
struct Actor {
    role: Role,
    path: Vec<Waypoint>,
    sprite: u64,
    mirrored: bool,
    image: RgbaImage,
    head_x: f64,
    face: usize,
}

/// The foot point at time `t`, if the path exists then.
fn position(path: &[Waypoint], t: f64) -> Option<[f64; 2]> {
    let (first, last) = (path.first()?, path.last()?);
    if t < first.t || t > last.t {
        return None;
    }
    let k = path.windows(2).position(|w| t <= w[1].t).unwrap_or(path.len().saturating_sub(2));
    let (a, b) = (path[k], path.get(k + 1).copied().unwrap_or(path[k]));
    let u = if b.t > a.t { (t - a.t) / (b.t - a.t) } else { 0.0 };
    Some([a.x + u * (b.x - a.x), a.y + u * (b.y - a.y)])
}

/// Draws frame `index`: the background, then the people far to near. Returns the frame and
/// each present person's (index, box).
fn draw_frame(
    scenario: &Scenario,
    assets: &Assets,
    actors: &[Actor],
    index: usize,
) -> (Frame, Vec<(usize, PersonBox)>) {
    let t = index as f64 / scenario.fps;
    let (w, h) = (scenario.width, scenario.height);
    let mut image = if assets.background.dimensions() == (w, h) {
        assets.background.clone()
    } else {
        imageops::resize(&assets.background, w, h, FilterType::Triangle)
    };
    let mut present: Vec<(usize, [f64; 2])> =
        actors.iter().enumerate().filter_map(|(i, a)| position(&a.path, t).map(|p| (i, p))).collect();
    present.sort_by(|a, b| a.1[1].total_cmp(&b.1[1]).then(a.0.cmp(&b.0)));

    let mut owner = vec![u16::MAX; (w * h) as usize];
    let mut placed = Vec::with_capacity(present.len());
    for (slot, &(i, foot)) in present.iter().enumerate() {
        let actor = &actors[i];
        let target_h = scenario.perspective.height_at(foot[1]).round().max(8.0) as u32;
        let person = person_image(actor, &assets.faces[actor.face].image, target_h);
        let (pw, ph) = person.dimensions();
        let x0 = (foot[0] - f64::from(pw) / 2.0).round() as i64;
        let y0 = (foot[1] - f64::from(ph)).round() as i64;
        let mut opaque = 0usize;
        for (px, py, &Rgba([r, g, b, a])) in person.enumerate_pixels() {
            if a >= 128 {
                opaque += 1;
            }
            let (x, y) = (x0 + i64::from(px), y0 + i64::from(py));
            if a == 0 || x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
                continue;
            }
            let (x, y) = (x as u32, y as u32);
            let dst = image.get_pixel_mut(x, y);
            let k = f32::from(a) / 255.0;
            for (d, s) in dst.0.iter_mut().zip([r, g, b]) {
                *d = (f32::from(*d) * (1.0 - k) + f32::from(s) * k).round() as u8;
            }
            if a >= 128 {
                owner[(y * w + x) as usize] = slot as u16;
            }
        }
        placed.push((i, x0, y0, pw, ph, opaque));
    }
    let mut seen = vec![0usize; present.len()];
    for &o in &owner {
        if let Some(c) = seen.get_mut(usize::from(o)) {
            *c += 1;
        }
    }
    let boxes = placed
        .into_iter()
        .enumerate()
        .map(|(slot, (i, x0, y0, pw, ph, opaque))| {
            let visible = if opaque == 0 { 0.0 } else { seen[slot] as f64 / opaque as f64 };
            let b =
                PersonBox { frame: index, t, x: x0 as f64, y: y0 as f64, w: f64::from(pw), h: f64::from(ph), visible };
            (i, b)
        })
        .collect();
    (Frame { index, t, image }, boxes)
}

/// A person `height` px tall: the body scaled, the face pasted over the head. The canvas grows
/// where the face sticks out of the body's box.
fn person_image(actor: &Actor, face: &RgbaImage, height: u32) -> RgbaImage {
    let (sw0, sh0) = actor.image.dimensions();
    let bw = ((f64::from(sw0) * f64::from(height) / f64::from(sh0)).round() as u32).max(1);
    let body = imageops::resize(&actor.image, bw, height, FilterType::Triangle);
    let k = ((f64::from(height) - 160.0) / 120.0).clamp(0.0, 1.0);
    let fw = (FACE_W.0 + k * (FACE_W.1 - FACE_W.0)).round() as u32;
    let face = imageops::resize(face, fw, fw, FilterType::Triangle);
    // The face's top at 2% of the height: the chips are tight crops, so it covers the head
    // from the hairline down.
    let fx = (actor.head_x * f64::from(bw) - f64::from(fw) / 2.0).round() as i64;
    let fy = (0.02 * f64::from(height)).round() as i64;
    let left = fx.min(0);
    let right = (fx + i64::from(fw)).max(i64::from(bw));
    let mut canvas = RgbaImage::new((right - left) as u32, height);
    over(&mut canvas, &body, -left, 0);
    over(&mut canvas, &face, fx - left, fy);
    canvas
}

/// Draws `src` over `dst` at (x, y), alpha compositing (straight alpha).
fn over(dst: &mut RgbaImage, src: &RgbaImage, x: i64, y: i64) {
    for (sx, sy, s) in src.enumerate_pixels() {
        let (dx, dy) = (x + i64::from(sx), y + i64::from(sy));
        if s[3] == 0 || dx < 0 || dy < 0 || dx >= i64::from(dst.width()) || dy >= i64::from(dst.height()) {
            continue;
        }
        let d = dst.get_pixel_mut(dx as u32, dy as u32);
        let (sa, da) = (f32::from(s[3]) / 255.0, f32::from(d[3]) / 255.0);
        let oa = sa + da * (1.0 - sa);
        for c in 0..3 {
            let v = (f32::from(s[c]) * sa + f32::from(d[c]) * da * (1.0 - sa)) / oa;
            d[c] = v.round() as u8;
        }
        d[3] = (oa * 255.0).round() as u8;
    }
}

/// A face chip with a soft elliptical alpha (opaque in the middle, fading out at the edge).
fn face_alpha(chip: &RgbImage) -> RgbaImage {
    let (w, h) = chip.dimensions();
    RgbaImage::from_fn(w, h, |x, y| {
        let dx = (f64::from(x) + 0.5 - f64::from(w) / 2.0) / (0.44 * f64::from(w));
        let dy = (f64::from(y) + 0.5 - 0.52 * f64::from(h)) / (0.49 * f64::from(h));
        let r = (dx * dx + dy * dy).sqrt();
        let a = ((1.0 - r) / 0.2).clamp(0.0, 1.0);
        let a = a * a * (3.0 - 2.0 * a);
        let Rgb([r, g, b]) = *chip.get_pixel(x, y);
        Rgba([r, g, b, (a * 255.0).round() as u8])
    })
}

/// The per-pixel median of ~24 frames spread over the video: the scene without its people.
fn median_background(video: &Path, width: u32, height: u32) -> anyhow::Result<RgbImage> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args(["-vf", &format!("fps=0.3,scale={width}:{height}"), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .output()
        .with_context(|| format!("run ffmpeg on {} (is FFmpeg installed?)", video.display()))?;
    if !out.status.success() {
        bail!("ffmpeg failed on {}: {}", video.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let size = (width * height * 3) as usize;
    let frames: Vec<&[u8]> = out.stdout.chunks_exact(size).collect();
    if frames.is_empty() {
        bail!("ffmpeg decoded no frame of {}", video.display());
    }
    let median: Vec<u8> = (0..size)
        .into_par_iter()
        .map_init(
            || Vec::with_capacity(frames.len()),
            |v, i| {
                v.clear();
                v.extend(frames.iter().map(|f| f[i]));
                v.sort_unstable();
                v[v.len() / 2]
            },
        )
        .collect();
    RgbImage::from_raw(width, height, median).context("assemble the background")
}

#[derive(Deserialize)]
struct Coco {
    images: Vec<CocoImage>,
    annotations: Vec<CocoAnnotation>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
    width: f64,
    height: f64,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    id: u64,
    image_id: u64,
    bbox: [f64; 4],
    #[serde(default)]
    iscrowd: u8,
    area: f64,
    segmentation: serde_json::Value,
}

/// The COCO people of `people/persons.coco.json` that were reviewed on the pool sheet (the
/// example's `--pool`) as standing or walking and whole down to the shins at least. The rule of
/// [`usable`] alone also lets through people sitting, bending, or cut at the waist by a table:
/// a mask does not say which. With a data set that holds none of these, the rule alone applies.
const REVIEWED_STANDING: [u64; 10] = [185913, 190379, 255090, 462476, 507302, 518212, 530163, 533096, 545132, 548968];

/// The COCO people worth pasting: not a crowd, polygon masks, at least 80 px tall, 2 to 5 times
/// taller than wide (standing), clear of the photo's borders by 2 px (not cut by the frame) and
/// filling at least 30% of their box (not a sliver left by an occluder).
fn usable(a: &CocoAnnotation, img: &CocoImage) -> bool {
    let [x, y, w, h] = a.bbox;
    a.iscrowd == 0
        && a.segmentation.is_array()
        && h >= 80.0
        && (2.0..=5.0).contains(&(h / w))
        && x >= 2.0
        && y >= 2.0
        && x + w <= img.width - 2.0
        && y + h <= img.height - 2.0
        && a.area >= 0.3 * w * h
}

/// Cuts out the usable COCO people of `people/persons.coco.json` (the reviewed ones where
/// present), in annotation id order.
fn load_sprites(people: &Path) -> anyhow::Result<Vec<Sprite>> {
    let path = people.join("persons.coco.json");
    let text = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    let coco: Coco = serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))?;
    let mut anns: Vec<&CocoAnnotation> =
        coco.annotations.iter().filter(|a| coco.images.iter().any(|i| i.id == a.image_id && usable(a, i))).collect();
    anns.sort_by_key(|a| a.id);
    if anns.iter().any(|a| REVIEWED_STANDING.contains(&a.id)) {
        anns.retain(|a| REVIEWED_STANDING.contains(&a.id));
    }
    anns.par_iter()
        .map(|a| {
            let img = coco.images.iter().find(|i| i.id == a.image_id).context("find the annotation's image")?;
            let file = people.join("images").join(&img.file_name);
            let photo = image::open(&file).with_context(|| format!("decode {}", file.display()))?.to_rgb8();
            let polygons: Vec<Vec<f64>> = serde_json::from_value(a.segmentation.clone())
                .with_context(|| format!("read the polygons of annotation {}", a.id))?;
            Ok(cut_out(a.id, &photo, &polygons, a.bbox))
        })
        .collect()
}

/// The person inside `polygons` (COCO: `[x1, y1, x2, y2, ...]` each) as a sprite cropped to
/// the box, with a feathered alpha, no taller than [`SPRITE_MAX_H`].
fn cut_out(id: u64, photo: &RgbImage, polygons: &[Vec<f64>], bbox: [f64; 4]) -> Sprite {
    let (pw, ph) = photo.dimensions();
    let x0 = (bbox[0].floor().max(0.0) as u32).min(pw.saturating_sub(1));
    let y0 = (bbox[1].floor().max(0.0) as u32).min(ph.saturating_sub(1));
    let x1 = ((bbox[0] + bbox[2]).ceil() as u32).clamp(x0 + 1, pw);
    let y1 = ((bbox[1] + bbox[3]).ceil() as u32).clamp(y0 + 1, ph);
    let (w, h) = (x1 - x0, y1 - y0);
    let mut mask = vec![0u8; (w * h) as usize];
    for poly in polygons {
        let pts: Vec<[f64; 2]> = poly.chunks_exact(2).map(|c| [c[0] - f64::from(x0), c[1] - f64::from(y0)]).collect();
        fill_polygon(&pts, w, h, &mut mask);
    }
    // Feather: a 3x3 box blur of the mask.
    let at = |x: i64, y: i64| -> u32 {
        if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
            0
        } else {
            u32::from(mask[(y as u32 * w + x as u32) as usize])
        }
    };
    let mut image = RgbaImage::from_fn(w, h, |x, y| {
        let (xi, yi) = (i64::from(x), i64::from(y));
        let sum: u32 =
            (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (dx, dy))).map(|(dx, dy)| at(xi + dx, yi + dy)).sum();
        let Rgb([r, g, b]) = *photo.get_pixel(x0 + x, y0 + y);
        Rgba([r, g, b, (sum * 255 / 9) as u8])
    });
    if h > SPRITE_MAX_H {
        let nw = ((f64::from(w) * f64::from(SPRITE_MAX_H) / f64::from(h)).round() as u32).max(1);
        image = imageops::resize(&image, nw, SPRITE_MAX_H, FilterType::Triangle);
    }
    let head_x = head_centre(&image);
    Sprite { id, image, head_x }
}

/// Sets to 1 the pixels whose centres lie inside the polygon (even-odd scanline fill).
fn fill_polygon(pts: &[[f64; 2]], w: u32, h: u32, mask: &mut [u8]) {
    if pts.len() < 3 {
        return;
    }
    let mut xs = Vec::new();
    for y in 0..h {
        let cy = f64::from(y) + 0.5;
        xs.clear();
        for i in 0..pts.len() {
            let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
            if (a[1] > cy) != (b[1] > cy) {
                xs.push(a[0] + (cy - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
            }
        }
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks_exact(2) {
            // Pixels whose centre x + 0.5 lies in [pair[0], pair[1]).
            let from = (pair[0] - 0.5).ceil().max(0.0) as u32;
            let to = ((pair[1] - 0.5).ceil().max(0.0) as u32).min(w);
            for x in from..to {
                mask[(y * w + x) as usize] = 1;
            }
        }
    }
}

/// The centre of the head as a fraction of the width: the mean x of the opaque pixels of the
/// top 12% of the rows.
fn head_centre(img: &RgbaImage) -> f64 {
    let rows = ((f64::from(img.height()) * 0.12).ceil() as u32).max(1);
    let (mut sum, mut n) = (0.0, 0.0);
    for y in 0..rows.min(img.height()) {
        for x in 0..img.width() {
            if img.get_pixel(x, y)[3] >= 128 {
                sum += f64::from(x) + 0.5;
                n += 1.0;
            }
        }
    }
    if n == 0.0 { 0.5 } else { sum / n / f64::from(img.width()) }
}

/// The face chips of `truth.csv` (`file,age,gender`) of people at least `min_age` old, in file
/// order.
fn load_faces(dir: &Path, min_age: u32) -> anyhow::Result<Vec<FaceChip>> {
    let mut rows = crate::read_csv(&dir.join("truth.csv"))?;
    rows.sort();
    let rows: Vec<(String, u32, String)> = rows
        .into_iter()
        .map(|r| match r.as_slice() {
            [file, age, gender] => Ok((
                file.clone(),
                age.trim().parse::<u32>().with_context(|| format!("parse the age of {file}"))?,
                gender.trim().to_owned(),
            )),
            _ => bail!("truth.csv: expected file,age,gender, got {r:?}"),
        })
        .collect::<anyhow::Result<_>>()?;
    rows.into_par_iter()
        .filter(|(_, age, _)| *age >= min_age)
        .map(|(file, age, gender)| {
            let path = dir.join(&file);
            let chip = image::open(&path).with_context(|| format!("decode {}", path.display()))?.to_rgb8();
            Ok(FaceChip { file, age, gender, image: face_alpha(&chip) })
        })
        .collect()
}

/// A path under construction.
struct Walk(Vec<Waypoint>);

impl Walk {
    fn at(t: f64, p: [f64; 2]) -> Self {
        Self(vec![Waypoint { t, x: p[0], y: p[1] }])
    }

    fn last(&self) -> Waypoint {
        self.0[self.0.len() - 1]
    }

    /// Walks straight to `p` at `speed` px/s.
    fn to(mut self, p: [f64; 2], speed: f64) -> Self {
        let l = self.last();
        let d = ((p[0] - l.x).powi(2) + (p[1] - l.y).powi(2)).sqrt();
        self.0.push(Waypoint { t: l.t + d / speed, x: p[0], y: p[1] });
        self
    }

    /// Stands still for `s` seconds.
    fn pause(mut self, s: f64) -> Self {
        let l = self.last();
        self.0.push(Waypoint { t: l.t + s, ..l });
        self
    }
}

/// Uniform in [lo, hi).
fn range(rng: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
    lo + rng.uniform() * (hi - lo)
}

/// -1 or 1.
fn sign(rng: &mut SplitMix64) -> f64 {
    if rng.uniform() < 0.5 { -1.0 } else { 1.0 }
}

/// The scenario's geometry, for the scripts.
struct Layout<'a> {
    s: &'a Scenario,
    /// Unit normal of the line, towards the inside.
    n: [f64; 2],
}

impl Layout<'_> {
    /// The point at fraction `u` along the line, `d` px towards the inside (negative: outside).
    fn on_line(&self, u: f64, d: f64) -> [f64; 2] {
        let (a, b) = (self.s.line.a, self.s.line.b);
        [a[0] + u * (b[0] - a[0]) + d * self.n[0], a[1] + u * (b[1] - a[1]) + d * self.n[1]]
    }

    /// The point at fraction `u` along the line, below the bottom of the frame.
    fn street(&self, u: f64) -> [f64; 2] {
        let p = self.on_line(u, 0.0);
        [p[0], f64::from(self.s.height) + BELOW]
    }

    /// A point beyond the left (`-1`) or right (`1`) side of the frame at height `y`.
    fn beside(&self, side: f64, y: f64) -> [f64; 2] {
        if side < 0.0 { [-BESIDE, y] } else { [f64::from(self.s.width) + BESIDE, y] }
    }

    /// A y of the store's floor, between the top of the frame's usable area and the line.
    fn store_y(&self, rng: &mut SplitMix64) -> f64 {
        let top = self.s.perspective.far_y + 25.0;
        let line_y = self.s.line.a[1].min(self.s.line.b[1]);
        range(rng, top, (line_y - 70.0).max(top + 1.0))
    }

    /// A y of the street, between the line and the bottom of the frame.
    fn street_y(&self, rng: &mut SplitMix64) -> f64 {
        let line_y = self.s.line.a[1].max(self.s.line.b[1]);
        range(rng, line_y + 45.0, (f64::from(self.s.height) - 30.0).max(line_y + 46.0))
    }

    /// A point inside the zone, `margin` px clear of its edges along x and y.
    fn in_zone(&self, rng: &mut SplitMix64, margin: f64) -> [f64; 2] {
        let poly = &self.s.zone.polygon;
        let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
        for p in poly {
            lo = [lo[0].min(p[0]), lo[1].min(p[1])];
            hi = [hi[0].max(p[0]), hi[1].max(p[1])];
        }
        let mut last = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
        for _ in 0..100 {
            let p = [range(rng, lo[0], hi[0]), range(rng, lo[1], hi[1])];
            last = p;
            let clear = [[0.0, 0.0], [margin, 0.0], [-margin, 0.0], [0.0, margin], [0.0, -margin]]
                .iter()
                .all(|d| in_polygon(poly, [p[0] + d[0], p[1] + d[1]]));
            if clear {
                return p;
            }
        }
        last
    }
}

/// The people's roles and paths, each shifted to start at a random time such that it ends
/// before the scenario does (when it can).
fn plan(s: &Scenario, rng: &mut SplitMix64) -> Vec<(Role, Vec<Waypoint>)> {
    use Role::*;
    let (a, b) = (s.line.a, s.line.b);
    let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt().max(1e-9);
    let mut n = [-(b[1] - a[1]) / len, (b[0] - a[0]) / len];
    if cross(a, b, s.line.inside) * cross(a, b, [a[0] + n[0], a[1] + n[1]]) < 0.0 {
        n = [-n[0], -n[1]];
    }
    let layout = Layout { s, n };
    const FIRST: [Role; 12] = [
        CrossIn,
        CrossOut,
        TurnBack,
        Parallel,
        Loiter,
        Occluding,
        Occluding,
        Walkthrough,
        CrossIn,
        CrossOut,
        TurnBack,
        Loiter,
    ];
    const MORE: [Role; 7] = [CrossIn, CrossOut, TurnBack, Parallel, Loiter, Occluding, Walkthrough];
    let mut out = Vec::with_capacity(s.people);
    while out.len() < s.people {
        let role = FIRST.get(out.len()).copied().unwrap_or_else(|| MORE[(rng.next_u64() % MORE.len() as u64) as usize]);
        let role = if role == Occluding && out.len() + 1 >= s.people { Parallel } else { role };
        let walks = script(&layout, role, rng);
        let end = walks.iter().map(|w| w.last().t).fold(0.0, f64::max);
        let shift = range(rng, 0.0, (s.duration_s - end).max(0.0));
        for w in walks {
            let path = w.0.into_iter().map(|p| Waypoint { t: p.t + shift, ..p }).collect();
            out.push((role, path));
        }
    }
    out.truncate(s.people);
    out
}

/// The walks (one, or two for a pair) of a role, starting near time 0.
fn script(g: &Layout, role: Role, rng: &mut SplitMix64) -> Vec<Walk> {
    let v = range(rng, 40.0, 120.0);
    let start = range(rng, 0.0, 1.0);
    let w = f64::from(g.s.width);
    match role {
        Role::CrossIn | Role::CrossOut => {
            let street = g.street(range(rng, 0.1, 0.9));
            let over = g.on_line(range(rng, 0.1, 0.9), range(rng, 40.0, 80.0));
            let store = g.beside(sign(rng), g.store_y(rng));
            let walk = if role == Role::CrossIn {
                Walk::at(start, street).to(over, v).to(store, v)
            } else {
                Walk::at(start, store).to(over, v).to(street, v)
            };
            vec![walk]
        }
        Role::TurnBack => {
            // From the street (or the store), up to the line, 3-8 px over it, a pause, back;
            // under 0.9 s on the far side at 40 px/s or more.
            let from_street = rng.uniform() < 0.5;
            let dir = if from_street { 1.0 } else { -1.0 };
            let u = range(rng, 0.15, 0.85);
            let slow = range(rng, 40.0, 60.0);
            let origin = if from_street { g.street(range(rng, 0.1, 0.9)) } else { g.beside(sign(rng), g.store_y(rng)) };
            let near = g.on_line(u, -dir * range(rng, 40.0, 80.0));
            let over = g.on_line(u, dir * range(rng, 3.0, 8.0));
            let back = g.on_line((u + range(rng, -0.08, 0.08)).clamp(0.05, 0.95), -dir * range(rng, 40.0, 80.0));
            let away = if from_street {
                if rng.uniform() < 0.5 { g.street(range(rng, 0.1, 0.9)) } else { g.beside(sign(rng), g.street_y(rng)) }
            } else {
                g.beside(sign(rng), g.store_y(rng))
            };
            vec![
                Walk::at(start, origin)
                    .to(near, v)
                    .to(over, slow)
                    .pause(range(rng, 0.3, 0.45))
                    .to(back, slow)
                    .to(away, v),
            ]
        }
        Role::Parallel => {
            let d = sign(rng) * range(rng, 25.0, 60.0);
            let (u0, u1) = if rng.uniform() < 0.5 { (-0.7, 1.7) } else { (1.7, -0.7) };
            let mid = g.on_line(range(rng, 0.3, 0.7), d + range(rng, -6.0, 6.0));
            vec![Walk::at(start, g.on_line(u0, d)).to(mid, v).to(g.on_line(u1, d), v)]
        }
        Role::Loiter => {
            // Enter by the side nearer the zone, wander between points of the zone with pauses
            // for at least 12-25 s, leave by the same side.
            let zx = g.s.zone.polygon.iter().map(|p| p[0]).sum::<f64>() / g.s.zone.polygon.len().max(1) as f64;
            let edge = if zx > w / 2.0 { 1.0 } else { -1.0 };
            let stay = range(rng, 12.0, 25.0);
            let mut walk = Walk::at(start, g.beside(edge, g.store_y(rng))).to(g.in_zone(rng, 12.0), v);
            let arrived = walk.last().t;
            while walk.last().t - arrived < stay {
                walk = walk.pause(range(rng, 1.0, 4.0)).to(g.in_zone(rng, 12.0), range(rng, 15.0, 35.0));
            }
            vec![walk.to(g.beside(edge, g.store_y(rng)), v)]
        }
        Role::Occluding => {
            // Two people at depths 18-35 px apart on the same side of the line: walking past
            // each other (meeting at x_m), or side by side.
            let (y_far, dy) = if rng.uniform() < 0.5 {
                let y = g.store_y(rng);
                (y.min(g.s.line.a[1].min(g.s.line.b[1]) - 75.0), range(rng, 18.0, 35.0))
            } else {
                (g.street_y(rng).min(f64::from(g.s.height) - 80.0), range(rng, 18.0, 35.0))
            };
            let flip = sign(rng);
            let x = |x: f64| if flip > 0.0 { x } else { w - x };
            let (l, r) = (-BESIDE, w + BESIDE);
            if rng.uniform() < 0.6 {
                let v2 = range(rng, 40.0, 120.0);
                let xm = range(rng, 0.33 * w, 0.67 * w);
                let (ta, tb) = ((xm - l) / v, (r - xm) / v2);
                let tm = start + ta.max(tb);
                let far = Walk::at(tm - ta, [x(l), y_far]).to([x(xm), y_far], v).to([x(r), y_far], v);
                let near = Walk::at(tm - tb, [x(r), y_far + dy]).to([x(xm), y_far + dy], v2).to([x(l), y_far + dy], v2);
                vec![far, near]
            } else {
                let gap = range(rng, 10.0, 35.0);
                let far = Walk::at(start, [x(l), y_far]).to([x(r), y_far], v);
                let near = Walk::at(start, [x(l - gap), y_far + dy]).to([x(r - gap), y_far + dy], v);
                vec![far, near]
            }
        }
        Role::Walkthrough => {
            let side = sign(rng);
            let walk = match rng.next_u64() % 3 {
                // Across the store.
                0 => Walk::at(start, g.beside(side, g.store_y(rng)))
                    .to([range(rng, 0.3 * w, 0.7 * w), g.store_y(rng)], v)
                    .to(g.beside(-side, g.store_y(rng)), v),
                // Along the street.
                1 => Walk::at(start, g.beside(side, g.street_y(rng)))
                    .to([range(rng, 0.3 * w, 0.7 * w), g.street_y(rng)], v)
                    .to(g.beside(-side, g.street_y(rng)), v),
                // Up from under the camera and away along the street.
                _ => Walk::at(start, g.street(range(rng, 0.2, 0.8)))
                    .to([range(rng, 0.3 * w, 0.7 * w), g.street_y(rng)], v)
                    .to(g.beside(side, g.street_y(rng)), v),
            };
            vec![walk]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(seed: u64) -> Scenario {
        Scenario { duration_s: 60.0, fps: 5.0, ..Scenario::new(seed) }
    }

    fn feet(p: &PersonTruth) -> Vec<(f64, [f64; 2])> {
        p.boxes.iter().map(|b| (b.t, b.foot())).collect()
    }

    /// The crossings by a different route: split the track into runs of one side, keep the
    /// runs that last the hold (and the first), and count each change of kept side whose
    /// entering step meets the segment.
    fn brute_force(line: &Line, track: &[(f64, [f64; 2])]) -> Vec<(f64, Direction)> {
        let sides = carried_sides(line, track);
        let mut runs: Vec<(i8, usize, usize)> = Vec::new();
        for (i, &s) in sides.iter().enumerate() {
            match runs.last_mut() {
                Some(r) if r.0 == s => r.2 = i,
                _ => runs.push((s, i, i)),
            }
        }
        let inside = side(line, line.inside);
        let mut out = Vec::new();
        let mut kept: Option<i8> = None;
        for (k, &(s, from, to)) in runs.iter().enumerate() {
            if s == 0 {
                continue;
            }
            let lasts = k == 0 || track[to].0 - track[from].0 >= CROSSING_HOLD_S - 1e-9;
            if !lasts {
                continue;
            }
            if let Some(prev) = kept
                && prev != s
                && meets_segment(line, track[from - 1].1, track[from].1)
            {
                let dir = if s == inside { Direction::In } else { Direction::Out };
                out.push((line_time(line, track[from - 1], track[from]), dir));
            }
            kept = Some(s);
        }
        out
    }

    #[test]
    fn rendering_is_deterministic_for_a_seed() {
        let assets = Assets::synthetic(768, 576);
        let s = Scenario { duration_s: 30.0, fps: 2.0, ..scenario(7) };
        let one = render_with(&s, &assets);
        let two = render_with(&s, &assets);
        assert_eq!(one.frames.len(), 60);
        assert_eq!(one.frames_hash(), two.frames_hash());
        assert_eq!(one.truth, two.truth);
        let other = render_with(&Scenario { seed: 8, ..s }, &assets);
        assert_ne!(one.frames_hash(), other.frames_hash());
        let json = serde_json::to_string(&one.truth).expect("serialise the truth");
        let back: Truth = serde_json::from_str(&json).expect("parse the truth");
        // serde_json parses floats to within an ulp (exactly only with `float_roundtrip`).
        assert_eq!((back.persons.len(), back.crossings.len()), (one.truth.persons.len(), one.truth.crossings.len()));
        assert_eq!(back.persons[2].boxes.len(), one.truth.persons[2].boxes.len());
        assert!((back.persons[0].waypoints[1].x - one.truth.persons[0].waypoints[1].x).abs() < 1e-9);
        let seq: serde_json::Value = serde_json::to_value(&one).expect("serialise the sequence");
        assert_eq!(seq["frames"][3]["t"], 1.5);
    }

    #[test]
    fn truth_crossings_match_a_brute_force_recount() {
        let assets = Assets::synthetic(768, 576);
        for seed in 0..4 {
            let seq = render_with(&scenario(seed), &assets);
            let t = &seq.truth;
            for p in &t.persons {
                let want = brute_force(&t.scenario.line, &feet(p));
                let got: Vec<(f64, Direction)> =
                    t.crossings.iter().filter(|c| c.person == p.id).map(|c| (c.t, c.direction)).collect();
                assert_eq!(got, want, "seed {seed} person {}", p.id);
                let expected = match p.role {
                    Role::CrossIn => vec![Direction::In],
                    Role::CrossOut => vec![Direction::Out],
                    _ => vec![],
                };
                let dirs: Vec<Direction> = got.iter().map(|c| c.1).collect();
                assert_eq!(dirs, expected, "seed {seed} person {} ({:?})", p.id, p.role);
            }
        }
    }

    #[test]
    fn a_turn_back_is_not_a_crossing() {
        let assets = Assets::synthetic(768, 576);
        let mut seen_over = 0;
        for seed in 0..4 {
            let seq = render_with(&scenario(seed), &assets);
            let t = &seq.truth;
            for p in t.persons.iter().filter(|p| p.role == Role::TurnBack) {
                assert!(t.crossings.iter().all(|c| c.person != p.id), "seed {seed} person {}", p.id);
                // It did step over: some frame has the foot point on the other side.
                let sides: Vec<i8> = feet(p).iter().map(|f| side(&t.scenario.line, f.1)).collect();
                if sides.contains(&1) && sides.contains(&-1) {
                    seen_over += 1;
                }
            }
        }
        assert!(seen_over >= 6, "turn-backs seen over the line: {seen_over}");
    }

    #[test]
    fn a_step_over_that_stays_counts_and_one_that_returns_does_not() {
        let line = Scenario::new(0).line;
        let track = |ys: &[f64]| -> Vec<(f64, [f64; 2])> {
            ys.iter().enumerate().map(|(i, &y)| (i as f64 * 0.2, [300.0, y])).collect()
        };
        // Up through the line and on: one `in` at the interpolated time.
        let c = crossings(&line, &track(&[420.0, 400.0, 370.0, 350.0, 330.0, 310.0, 300.0, 290.0]));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1, Direction::In);
        assert!((c[0].0 - 0.2 - 0.2 * 20.0 / 30.0).abs() < 1e-9);
        // Over by 5 px for 0.8 s, then back: nothing either way.
        let c = crossings(
            &line,
            &track(&[420.0, 400.0, 380.0, 375.0, 375.0, 375.0, 375.0, 395.0, 420.0, 440.0, 450.0, 460.0, 470.0, 480.0]),
        );
        assert!(c.is_empty(), "{c:?}");
        // On the line (side carried) and over for exactly 1 s: counted.
        let c = crossings(&line, &track(&[390.0, 380.0, 379.0, 378.0, 377.0, 376.0, 375.0, 374.0]));
        assert_eq!(c, vec![(0.2, Direction::In)]);
        // Around the end of the segment: the side changes, no crossing; back through the
        // segment, out.
        let around = vec![
            (0.0, [100.0, 420.0]),
            (0.5, [100.0, 340.0]),
            (1.0, [100.0, 320.0]),
            (1.5, [100.0, 300.0]),
            (2.0, [300.0, 360.0]),
            (2.5, [300.0, 400.0]),
            (3.0, [300.0, 420.0]),
            (3.5, [300.0, 440.0]),
        ];
        let c = crossings(&line, &around);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1, Direction::Out);
    }

    #[test]
    fn dwell_runs_from_the_first_frame_inside_to_the_first_outside() {
        let zone = Scenario::new(0).zone;
        let xs = [480.0, 510.0, 520.0, 530.0, 720.0, 600.0, 610.0];
        let track: Vec<(f64, [f64; 2])> = xs.iter().enumerate().map(|(i, &x)| (i as f64 * 0.2, [x, 250.0])).collect();
        let d = dwell_intervals(&zone, &track, 0.2);
        assert_eq!(d.len(), 2);
        assert!((d[0].0 - 0.2).abs() < 1e-9 && (d[0].1 - 0.8).abs() < 1e-9);
        assert!((d[1].0 - 1.0).abs() < 1e-9 && (d[1].1 - 1.4).abs() < 1e-9);
    }

    #[test]
    fn the_loiterers_dwell_in_the_zone_and_boxes_keep_the_foot_on_the_path() {
        let assets = Assets::synthetic(768, 576);
        let seq = render_with(&scenario(3), &assets);
        let t = &seq.truth;
        for p in t.persons.iter().filter(|p| p.role == Role::Loiter) {
            let total: f64 = t.dwell.iter().filter(|d| d.person == p.id).map(|d| d.seconds).sum();
            assert!(total >= 12.0, "person {} dwelt {total} s", p.id);
        }
        for p in &t.persons {
            for b in &p.boxes {
                let want = position(&p.waypoints, b.t).expect("a box only while the path exists");
                let foot = b.foot();
                assert!((foot[0] - want[0]).abs() <= 1.0 && (foot[1] - want[1]).abs() <= 0.5, "{foot:?} vs {want:?}");
                assert!((0.0..=1.0).contains(&b.visible));
            }
        }
        // The pair does occlude: some frame shows one of them under 70% visible while in frame.
        let pair: Vec<&PersonTruth> = t.persons.iter().filter(|p| p.role == Role::Occluding).collect();
        assert_eq!(pair.len(), 2);
        let occluded = pair.iter().any(|p| p.boxes.iter().any(|b| b.in_frame(768, 576) == 1.0 && b.visible < 0.7));
        assert!(occluded);
    }

    #[test]
    fn a_polygon_fills_the_pixels_whose_centres_it_holds() {
        let mut mask = vec![0u8; 100];
        fill_polygon(&[[2.0, 2.0], [7.0, 2.0], [7.0, 6.0], [2.0, 6.0]], 10, 10, &mut mask);
        assert_eq!(mask.iter().filter(|&&m| m == 1).count(), 20);
        assert_eq!(mask[2 * 10 + 2], 1);
        assert_eq!(mask[6 * 10 + 2], 0);
    }

    #[test]
    fn the_camera_file_names_the_line_and_its_inside() {
        let toml = Scenario::new(0).camera_toml();
        assert!(toml.contains("a = [150.0, 380.0]"));
        assert!(toml.contains("in_side = \"left\""));
        assert!(toml.contains("inside = [385.0, 200.0]"));
        assert!(toml.contains("polygon = [[500.0, 210.0], [690.0, 210.0], [690.0, 300.0], [500.0, 300.0]]"));
    }
}
