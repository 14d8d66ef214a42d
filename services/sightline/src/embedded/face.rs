//! `sightline face FILE...`: the faces of local images, with person ids consistent across every
//! file of the invocation (the batch form of the face stage's person rule).

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use sightline_face::persons::cluster;
use sightline_face::{Face, FaceArgs, FaceEngine, FaceJson, decode_rgb, face_json};

/// One file's result.
#[derive(Serialize)]
struct FileFaces {
    file: String,
    faces: Vec<FaceJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs the command. Exit code 1 when a file could not be read or decoded (its entry carries
/// `error` and no faces); the other files are still reported.
pub async fn run(paths: Vec<PathBuf>, args: FaceArgs, json: bool, embeddings: bool) -> anyhow::Result<i32> {
    let files = crate::walk::image_inputs(paths)?;
    let person_cfg = args.person_config();
    let analysed: Vec<(PathBuf, Result<Vec<Face>, String>)> = tokio::task::spawn_blocking(move || {
        let engine = FaceEngine::from_env(args.face_sessions, args.engine_config()).context("load the face models")?;
        let limits = args.limits();
        let results = files
            .into_iter()
            .map(|path| {
                let result = std::fs::read(&path)
                    .map_err(|e| format!("read: {e}"))
                    .and_then(|bytes| {
                        decode_rgb(&bytes, path.file_name().and_then(|n| n.to_str()), &limits)
                            .map_err(|e| e.to_string())
                    })
                    .and_then(|img| engine.analyse(&img).map_err(|e| e.to_string()));
                (path, result)
            })
            .collect();
        anyhow::Ok(results)
    })
    .await
    .context("face analysis task")??;

    let all: Vec<(&[f32], bool)> = analysed
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flatten()
        .map(|f| (f.embedding.as_slice(), f.frontal))
        .collect();
    let mut persons = cluster(&all, &person_cfg).into_iter();
    let mut failed = false;
    let out: Vec<FileFaces> = analysed
        .iter()
        .map(|(path, r)| {
            let file = path.display().to_string();
            match r {
                Ok(faces) => FileFaces {
                    file,
                    faces: faces.iter().map(|f| face_json(f, persons.next().flatten(), embeddings)).collect(),
                    error: None,
                },
                Err(e) => {
                    failed = true;
                    FileFaces { file, faces: Vec::new(), error: Some(e.clone()) }
                }
            }
        })
        .collect();
    if json {
        // A JSON array with one file per line: readable, and greppable by file.
        let lines = out.iter().map(serde_json::to_string).collect::<Result<Vec<_>, _>>()?;
        println!("[\n{}\n]", lines.join(",\n"));
    } else {
        print_table(&out);
    }
    Ok(i32::from(failed))
}

fn print_table(out: &[FileFaces]) {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    for f in out {
        match &f.error {
            Some(e) => println!("{}: error: {e}", f.file),
            None => println!("{}: {} face(s)", f.file, f.faces.len()),
        }
        for (i, face) in f.faces.iter().enumerate() {
            let [x, y, w, h] = face.bbox;
            println!(
                "  #{i} box {x:.0},{y:.0} {w:.0}x{h:.0}  score {:.2}  person {}  {} {:.0}y  yaw {} pitch {} roll {}{}",
                face.score,
                face.person.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                match face.gender {
                    sightline_face::Gender::Male => "male",
                    sightline_face::Gender::Female => "female",
                },
                face.age,
                opt(face.yaw),
                opt(face.pitch),
                opt(face.roll),
                if face.frontal { "  frontal" } else { "" },
            );
        }
    }
}
