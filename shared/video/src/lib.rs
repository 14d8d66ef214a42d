//! Video in for the store analytics: sampled RGB frames with their timestamps, from a video
//! file (H.264, MPEG-4 and whatever else Debian's FFmpeg decodes, in AVI, MP4 or MKV) or from
//! a folder of JPEG/PNG frames.
//!
//! Video files are decoded by the `ffmpeg` program (Debian's package) as a subprocess: it
//! decodes, samples with its `fps` filter and writes raw RGB frames to a pipe, which
//! [`Frames`] reads one frame at a time (memory stays one frame, whatever the video's length).
//! An in-process binding (`ffmpeg-next` over the same libav* libraries) decodes with the same
//! code; the subprocess only adds the copy through the pipe, which `docs/store.md` measures, and
//! it keeps a C decoder's crash out of the worker's process. `ffprobe` reads the stream's size,
//! rate and duration first, so that a frame's size is known and bounded before decoding.
//!
//! Decoding errors keep what decoded before them: the iterator yields every frame FFmpeg wrote,
//! then one [`VideoError::Corrupt`] naming how many frames came and FFmpeg's own message.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::thread::JoinHandle;

use image::RgbImage;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest frame decoded (8K UHD): a larger stream is refused before decoding.
pub const MAX_PIXELS: u64 = 7680 * 4320;

/// The default sampling rate (frames per second) of the store analytics.
pub const DEFAULT_FPS: f64 = 5.0;

/// What can go wrong reading video.
#[derive(Debug, Error)]
pub enum VideoError {
    /// `ffmpeg` or `ffprobe` is not installed.
    #[error("{0} not found: install FFmpeg (Debian: apt-get install ffmpeg)")]
    MissingTool(&'static str),
    /// Reading the file or folder failed.
    #[error("read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds no decodable video stream.
    #[error("{path}: not a video: {reason}")]
    NotVideo {
        /// The path.
        path: PathBuf,
        /// What FFmpeg said.
        reason: String,
    },
    /// The stream's frames are larger than [`MAX_PIXELS`].
    #[error("{path}: {width}x{height} frames exceed the {MAX_PIXELS}-pixel limit")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// Decoding stopped or skipped data part-way; the frames before were delivered.
    #[error("{path}: corrupt or truncated video after {frames} frame(s): {message}")]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// Frames delivered before the error was reported.
        frames: u64,
        /// FFmpeg's message (its last lines).
        message: String,
    },
    /// A frame of a folder could not be decoded.
    #[error("{path}: {reason}")]
    BadFrame {
        /// The frame's path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A sampling rate that is not a positive number.
    #[error("sampling rate must be positive, got {0}")]
    BadRate(f64),
}

/// A video stream's properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The stream's frame rate (average; 0 when unknown).
    pub fps: f64,
    /// Duration in seconds, when the container says.
    pub duration_s: Option<f64>,
    /// The codec's short name (`h264`, `mpeg4`, ...).
    pub codec: String,
}

/// One sampled frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Index among the sampled frames, from 0.
    pub index: u64,
    /// Seconds from the start of the source.
    pub t: f64,
    /// The pixels.
    pub image: RgbImage,
}

fn tool_error(tool: &'static str, path: &Path, e: std::io::Error) -> VideoError {
    if e.kind() == std::io::ErrorKind::NotFound {
        VideoError::MissingTool(tool)
    } else {
        VideoError::Io { path: path.to_owned(), source: e }
    }
}

/// `"num/den"` or a plain number as frames per second (0 when unknown).
fn parse_rate(s: &str) -> f64 {
    match s.split_once('/') {
        Some((n, d)) => match (n.trim().parse::<f64>(), d.trim().parse::<f64>()) {
            (Ok(n), Ok(d)) if d > 0.0 => n / d,
            _ => 0.0,
        },
        None => s.trim().parse().unwrap_or(0.0),
    }
}

/// Reads the first video stream's properties with `ffprobe`.
pub fn probe(path: &Path) -> Result<VideoInfo, VideoError> {
    if !path.is_file() {
        return Err(VideoError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("stream=width,height,avg_frame_rate,r_frame_rate,codec_name,duration:format=duration")
        .args(["-of", "json"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_error("ffprobe", path, e))?;
    let not_video = |reason: String| VideoError::NotVideo { path: path.to_owned(), reason };
    if !out.status.success() {
        return Err(not_video(last_lines(&String::from_utf8_lossy(&out.stderr), 3)));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| not_video(format!("ffprobe output: {e}")))?;
    let stream = v["streams"].get(0).ok_or_else(|| not_video("no video stream".into()))?;
    let dim = |k: &str| stream[k].as_u64().and_then(|x| u32::try_from(x).ok()).filter(|&x| x > 0);
    let (Some(width), Some(height)) = (dim("width"), dim("height")) else {
        return Err(not_video("the video stream has no frame size".into()));
    };
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(VideoError::TooLarge { path: path.to_owned(), width, height });
    }
    let rate = |k: &str| stream[k].as_str().map(parse_rate).unwrap_or(0.0);
    let fps = if rate("avg_frame_rate") > 0.0 { rate("avg_frame_rate") } else { rate("r_frame_rate") };
    let secs = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok()).filter(|d| *d > 0.0);
    let duration_s = secs(&stream["duration"]).or_else(|| secs(&v["format"]["duration"]));
    let codec = stream["codec_name"].as_str().unwrap_or("unknown").to_owned();
    Ok(VideoInfo { width, height, fps, duration_s, codec })
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("; ")
}

/// Which part of a video to decode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Seconds from the start of the file.
    pub start_s: f64,
    /// Seconds to decode (to the end when `None`).
    pub duration_s: Option<f64>,
}

impl Window {
    /// The whole file.
    pub const ALL: Window = Window { start_s: 0.0, duration_s: None };
}

/// Sampled frames of a video file, decoded by an `ffmpeg` subprocess, one at a time.
pub struct Frames {
    path: PathBuf,
    child: Option<Child>,
    stdout: Option<BufReader<std::process::ChildStdout>>,
    stderr: Option<JoinHandle<String>>,
    info: VideoInfo,
    fps: f64,
    start_s: f64,
    next: u64,
    done: bool,
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames").field("path", &self.path).field("fps", &self.fps).field("next", &self.next).finish()
    }
}

impl Frames {
    /// Starts decoding `path` sampled at `fps` frames per second within `window`.
    pub fn open(path: &Path, fps: f64, window: Window) -> Result<Self, VideoError> {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(VideoError::BadRate(fps));
        }
        let info = probe(path)?;
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-hide_banner", "-v", "error"]);
        if window.start_s > 0.0 {
            cmd.args(["-ss", &format!("{:.6}", window.start_s)]);
        }
        cmd.arg("-i").arg(path);
        if let Some(d) = window.duration_s {
            cmd.args(["-t", &format!("{d:.6}")]);
        }
        // `fps` emits the frame nearest each output tick t = k / fps (k = 0, 1, ...); `-an` and
        // `-sn` skip the other streams.
        cmd.args(["-an", "-sn", "-vf", &format!("fps={fps}"), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| tool_error("ffmpeg", path, e))?;
        let stdout = child.stdout.take().map(|s| BufReader::with_capacity(1 << 20, s));
        let stderr = child.stderr.take().map(spawn_collect);
        Ok(Self {
            path: path.to_owned(),
            child: Some(child),
            stdout,
            stderr,
            info,
            fps,
            start_s: window.start_s.max(0.0),
            next: 0,
            done: false,
        })
    }

    /// The stream's properties.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The sampling rate.
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// Ends the subprocess and reports how it ended: `Some(error)` when FFmpeg failed or
    /// complained.
    fn finish(&mut self) -> Option<VideoError> {
        self.done = true;
        self.stdout = None;
        let status = self.child.take().and_then(|mut c| c.wait().ok());
        let message = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let failed = status.is_some_and(|s| !s.success());
        if failed || !message.trim().is_empty() {
            let message = if message.trim().is_empty() {
                format!("ffmpeg exited with {}", status.map_or_else(|| "?".to_owned(), |s| s.to_string()))
            } else {
                last_lines(&message, 3)
            };
            return Some(VideoError::Corrupt { path: self.path.clone(), frames: self.next, message });
        }
        None
    }
}

fn spawn_collect(mut stderr: ChildStderr) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        // Bounded: a broken stream can make FFmpeg print an error per packet.
        let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut s);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        s
    })
}

impl Iterator for Frames {
    type Item = Result<Frame, VideoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (w, h) = (self.info.width, self.info.height);
        let mut buf = vec![0u8; w as usize * h as usize * 3];
        let read = match self.stdout.as_mut() {
            Some(out) => out.read_exact(&mut buf),
            None => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
        };
        match read {
            Ok(()) => {
                let image = RgbImage::from_raw(w, h, buf)?;
                let frame = Frame { index: self.next, t: self.start_s + self.next as f64 / self.fps, image };
                self.next += 1;
                Some(Ok(frame))
            }
            // End of the stream (a partial last frame means FFmpeg died mid-frame: finish says so).
            Err(_) => self.finish().map(Err),
        }
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The image files of a frame folder, in name order (JPEG and PNG by extension).
pub fn frame_files(dir: &Path) -> Result<Vec<PathBuf>, VideoError> {
    let io = |e| VideoError::Io { path: dir.to_owned(), source: e };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The frames of a folder recorded at `source_fps`, sampled at `fps` (every frame when
/// `fps >= source_fps`): `(index among the sampled frames, t, path)`, where frame `i` of the
/// folder is at `t = i / source_fps`.
pub fn sample_folder(files: &[PathBuf], source_fps: f64, fps: f64) -> Result<Vec<(u64, f64, PathBuf)>, VideoError> {
    for r in [source_fps, fps] {
        if !(r.is_finite() && r > 0.0) {
            return Err(VideoError::BadRate(r));
        }
    }
    let mut out = Vec::new();
    let mut next_tick = 0.0f64;
    let half = 0.5 / source_fps;
    for (i, path) in files.iter().enumerate() {
        let t = i as f64 / source_fps;
        // The frame nearest each tick k / fps, as FFmpeg's fps filter picks.
        if t + half > next_tick {
            out.push((out.len() as u64, t, path.clone()));
            while next_tick < t + half {
                next_tick += 1.0 / fps;
            }
        }
    }
    Ok(out)
}

/// Decodes one frame file of a folder, under the image limits of `sightline-imaging`.
pub fn read_frame(path: &Path) -> Result<RgbImage, VideoError> {
    let bytes = std::fs::read(path).map_err(|e| VideoError::Io { path: path.to_owned(), source: e })?;
    let name = path.file_name().and_then(|n| n.to_str());
    // The image checks every stage makes: format from the bytes, size limits from the header
    // before decoding, truncation.
    let (_, img) = sightline_imaging::decode(&bytes, name, &sightline_imaging::Limits::default())
        .map_err(|e| VideoError::BadFrame { path: path.to_owned(), reason: e.to_string() })?;
    Ok(img.to_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert!((parse_rate("30000/1001") - 29.97).abs() < 0.01);
        assert_eq!(parse_rate("10/1"), 10.0);
        assert_eq!(parse_rate("0/0"), 0.0);
        assert_eq!(parse_rate("25"), 25.0);
    }

    #[test]
    fn folder_sampling_takes_the_frame_nearest_each_tick() {
        let files: Vec<PathBuf> = (0..20).map(|i| PathBuf::from(format!("f{i:03}.jpg"))).collect();
        // 10 fps sampled at 5: every second frame, t = 0, 0.2, ...
        let s = sample_folder(&files, 10.0, 5.0).unwrap_or_default();
        assert_eq!(s.len(), 10);
        assert_eq!(s[1].2, PathBuf::from("f002.jpg"));
        assert!((s[3].1 - 0.6).abs() < 1e-9);
        assert_eq!(s[3].0, 3);
        // Sampling faster than the source keeps every frame once.
        assert_eq!(sample_folder(&files, 4.0, 5.0).unwrap_or_default().len(), 20);
        // 25 fps sampled at 5: every fifth frame.
        let s = sample_folder(&files, 25.0, 5.0).unwrap_or_default();
        assert_eq!(
            s.iter().map(|x| x.2.clone()).collect::<Vec<_>>(),
            vec![
                PathBuf::from("f000.jpg"),
                PathBuf::from("f005.jpg"),
                PathBuf::from("f010.jpg"),
                PathBuf::from("f015.jpg")
            ]
        );
        assert!(matches!(sample_folder(&files, 0.0, 5.0), Err(VideoError::BadRate(_))));
    }

    #[test]
    fn missing_file_and_non_video_are_clear_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("nope.mp4");
        assert!(matches!(probe(&missing), Err(VideoError::Io { .. })));
        let text = dir.path().join("notes.avi");
        std::fs::write(&text, b"this is not a video at all").expect("write");
        match probe(&text) {
            Err(VideoError::NotVideo { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("expected NotVideo, got {other:?}"),
        }
    }
}
