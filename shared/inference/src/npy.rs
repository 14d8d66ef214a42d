//! A minimal reader for the `.npy` files of the test fixtures
//! (numpy format 1.0/2.0, C order, little-endian `<f4`, `|u1`, `<i8`).

use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use crate::error::{InferenceError, Result};

/// A decoded `.npy` array.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyArray {
    F32(ArrayD<f32>),
    U8(ArrayD<u8>),
    I64(ArrayD<i64>),
}

impl NpyArray {
    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            NpyArray::F32(a) => a.shape(),
            NpyArray::U8(a) => a.shape(),
            NpyArray::I64(a) => a.shape(),
        }
    }
}

fn err(path: &str, reason: impl Into<String>) -> InferenceError {
    InferenceError::Npy { path: path.to_string(), reason: reason.into() }
}

/// Parses `.npy` bytes; `origin` names them in errors.
pub fn parse_npy(bytes: &[u8], origin: &str) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err(origin, "not an .npy file"));
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err(origin, "truncated header"));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(err(origin, format!("unsupported format version {v}"))),
    };
    let header = bytes.get(start..start + hlen).ok_or_else(|| err(origin, "truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err(origin, "header is not UTF-8"))?;
    let field = |key: &str| -> Result<&str> {
        let at = header.find(&format!("'{key}'")).ok_or_else(|| err(origin, format!("header lacks {key}")))?;
        let rest = &header[at + key.len() + 2..];
        let colon = rest.find(':').ok_or_else(|| err(origin, "bad header"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr.strip_prefix('\'').and_then(|s| s.split('\'').next()).ok_or_else(|| err(origin, "bad descr"))?;
    if field("fortran_order")?.starts_with("True") {
        return Err(err(origin, "Fortran order is not supported"));
    }
    let shape_src = field("shape")?;
    let close = shape_src.find(')').ok_or_else(|| err(origin, "bad shape"))?;
    let shape: Vec<usize> = shape_src[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err(origin, format!("bad dimension {s:?}"))))
        .collect::<Result<_>>()?;
    let count: usize = shape.iter().product();
    let data = &bytes[start + hlen..];
    let need = |size: usize| -> Result<&[u8]> {
        data.get(..count * size).ok_or_else(|| {
            err(origin, format!("data has {} bytes, shape {shape:?} needs {}", data.len(), count * size))
        })
    };
    let dim = IxDyn(&shape);
    let shaped = |e: ndarray::ShapeError| err(origin, e.to_string());
    match descr {
        "<f4" => {
            let v = need(4)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            Ok(NpyArray::F32(ArrayD::from_shape_vec(dim, v).map_err(shaped)?))
        }
        "|u1" | "<u1" => Ok(NpyArray::U8(ArrayD::from_shape_vec(dim, need(1)?.to_vec()).map_err(shaped)?)),
        "<i8" => {
            let v = need(8)?
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            Ok(NpyArray::I64(ArrayD::from_shape_vec(dim, v).map_err(shaped)?))
        }
        other => Err(err(origin, format!("unsupported dtype {other}"))),
    }
}

/// Reads an `.npy` file.
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| InferenceError::io(path, e))?;
    parse_npy(&bytes, &path.display().to_string())
}

/// Reads a float32 `.npy` file.
pub fn read_npy_f32(path: impl AsRef<Path>) -> Result<ArrayD<f32>> {
    let path = path.as_ref();
    match read_npy(path)? {
        NpyArray::F32(a) => Ok(a),
        _ => Err(err(&path.display().to_string(), "expected float32")),
    }
}

/// Reads a uint8 `.npy` file.
pub fn read_npy_u8(path: impl AsRef<Path>) -> Result<ArrayD<u8>> {
    let path = path.as_ref();
    match read_npy(path)? {
        NpyArray::U8(a) => Ok(a),
        _ => Err(err(&path.display().to_string(), "expected uint8")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn parses_f32_u8_and_scalars() {
        let data: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0, 1.0, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = parse_npy(&npy("<f4", "(2, 3)", &data), "t").expect("f32");
        assert_eq!(a.shape(), &[2, 3]);
        if let NpyArray::F32(a) = a {
            assert_eq!(a[[0, 2]], 3.25);
        }
        let b = parse_npy(&npy("|u1", "(3,)", &[7, 8, 9]), "t").expect("u8");
        assert_eq!(b, NpyArray::U8(ArrayD::from_shape_vec(IxDyn(&[3]), vec![7, 8, 9]).expect("shape")));
        let s = parse_npy(&npy("<f4", "()", &1.0f32.to_le_bytes()), "t").expect("scalar");
        assert_eq!(s.shape(), &[] as &[usize]);
        assert!(parse_npy(&npy("<f8", "(1,)", &[0; 8]), "t").is_err());
        assert!(parse_npy(&npy("<f4", "(4,)", &[0; 8]), "t").is_err());
        assert!(parse_npy(b"garbage", "t").is_err());
    }
}
