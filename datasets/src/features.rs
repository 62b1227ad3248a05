//! Pre-extracted frame features: one zip per split holding `<id>.npy` per video, a float16 (or
//! float32) array `[num_frames, dim]`. The same frame selection as for raw frames applies.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use half::f16;
use npyz::{DType, NpyFile, Order, TypeChar};

use crate::error::DataError;
use crate::frames::select_frames;
use crate::video_id::check_video_id;
use crate::visual::{VisualSample, read_entry};

/// Feature size of the reference's Swin-Tiny features.
pub const FEATURE_DIM: usize = 768;

/// Reads per-video feature arrays from a features zip (opened once, shared by loader threads).
pub struct FeatureReader {
    path: PathBuf,
    archive: Mutex<zip::ZipArchive<BufReader<File>>>,
    dim: usize,
}

impl FeatureReader {
    /// Opens a features zip whose arrays have `dim` columns.
    pub fn open(path: &Path, dim: usize) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
            DataError::io(
                path,
                std::io::Error::other(format!("not a readable zip: {e}")),
            )
        })?;
        Ok(FeatureReader {
            path: path.to_path_buf(),
            archive: Mutex::new(archive),
            dim,
        })
    }

    /// The zip's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Values per feature row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Loads the selected feature rows of one video into `[max_frames, dim]`.
    ///
    /// A missing entry or a malformed array is recorded in the sample's `issues`.
    pub fn load(&self, video_id: &str, max_frames: usize) -> VisualSample {
        let mut sample = VisualSample::empty_features(max_frames, self.dim);
        if let Err(message) = check_video_id(video_id) {
            let path = self.path.display();
            sample.issues.push(format!("{path}: {message}"));
            return sample;
        }
        let name = format!("{video_id}.npy");
        let bytes = {
            let mut archive = self.archive.lock().unwrap_or_else(|e| e.into_inner());
            archive
                .by_name(&name)
                .map_err(|e| e.to_string())
                .and_then(read_entry)
        };
        let rows = bytes.and_then(|bytes| parse_rows(&bytes, self.dim));
        match rows {
            Ok((n, values)) => {
                let selected = select_frames(n, max_frames);
                for (slot, &row) in selected.iter().enumerate() {
                    sample
                        .slot_mut(slot)
                        .copy_from_slice(&values[row * self.dim..(row + 1) * self.dim]);
                    sample.frame_mask[slot] = 1;
                }
                sample.frame_indices = selected;
            }
            Err(message) => sample.issues.push(format!(
                "{}: video {video_id}: entry {name}: {message}",
                self.path.display()
            )),
        }
        sample
    }
}

/// Refuses a `.npy` whose header length field (2 bytes in format 1, 4 in formats 2 and 3)
/// runs past the end of the entry: npyz allocates the claimed length before reading it.
fn check_header_length(bytes: &[u8]) -> Result<(), String> {
    let (start, length) = match bytes.get(6) {
        Some(1) if bytes.len() >= 10 => (10, u64::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        Some(2 | 3) if bytes.len() >= 12 => (
            12,
            u64::from(u32::from_le_bytes([
                bytes[8], bytes[9], bytes[10], bytes[11],
            ])),
        ),
        // npyz reports bad magic numbers, unknown versions and short files.
        _ => return Ok(()),
    };
    if start + length > bytes.len() as u64 {
        return Err(format!(
            "not a .npy array: its header claims {length} bytes but the entry holds {}",
            bytes.len()
        ));
    }
    Ok(())
}

/// Parses a `[n, dim]` float16/float32 `.npy` (C or Fortran order), returning `n` and the
/// values as f32 in row-major order. Arrays without rows, arrays shorter than their header
/// claims and non-finite values are errors.
fn parse_rows(bytes: &[u8], dim: usize) -> Result<(usize, Vec<f32>), String> {
    check_header_length(bytes)?;
    let npy = NpyFile::new(bytes).map_err(|e| format!("not a .npy array: {e}"))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 || shape[1] != dim as u64 {
        return Err(format!("expected shape [n, {dim}], found {shape:?}"));
    }
    if shape[0] == 0 {
        return Err(format!("array of shape {shape:?} has no frames"));
    }
    let item_size = match npy.dtype() {
        DType::Plain(ty)
            if ty.type_char() == TypeChar::Float && [2, 4].contains(&ty.size_field()) =>
        {
            ty.size_field()
        }
        other => {
            return Err(format!(
                "expected float16 or float32, found {}",
                other.descr()
            ));
        }
    };
    // Never trust the header's shape: the data must be there before anything is allocated.
    shape[0]
        .checked_mul(shape[1])
        .and_then(|values| values.checked_mul(item_size))
        .filter(|&claimed| claimed <= bytes.len() as u64)
        .ok_or_else(|| {
            format!(
                "header claims shape {shape:?} but the entry holds only {} bytes",
                bytes.len()
            )
        })?;
    let n = shape[0] as usize;
    let fortran = npy.order() == Order::Fortran;
    let stored: Vec<f32> = if item_size == 2 {
        npy.into_vec::<f16>()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(f16::to_f32)
            .collect()
    } else {
        npy.into_vec::<f32>().map_err(|e| e.to_string())?
    };
    if let Some(position) = stored.iter().position(|value| !value.is_finite()) {
        let (row, column) = if fortran {
            (position % n, position / n)
        } else {
            (position / dim, position % dim)
        };
        return Err(format!(
            "non-finite value {} at frame {row}, column {column}",
            stored[position]
        ));
    }
    let values = if fortran {
        // Column-major: value (row, column) is stored at column * n + row.
        (0..n * dim)
            .map(|index| stored[(index % dim) * n + index / dim])
            .collect()
    } else {
        stored
    };
    Ok((n, values))
}

#[cfg(test)]
#[path = "../../tests/support/npy.rs"]
mod npy_file;

#[cfg(test)]
mod tests {
    use super::npy_file::npy;
    use super::*;
    use npyz::WriterBuilder;
    use std::io::Write;

    fn npy_f16(rows: usize, dim: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, dim as u64])
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        for i in 0..rows * dim {
            writer.push(&f16::from_f32(i as f32 / 8.0)).unwrap();
        }
        writer.finish().unwrap();
        out
    }

    #[test]
    fn header_lengths_beyond_the_entry_are_refused() {
        let mut bytes = npy(2, "<f4", false, "(1, 4)", &[0; 16]);
        assert!(parse_rows(&bytes, 4).is_ok());
        bytes[8..12].copy_from_slice(&0xFEFF_FFFFu32.to_le_bytes());
        let error = parse_rows(&bytes, 4).unwrap_err();
        assert!(error.contains("header claims 4278190079 bytes"), "{error}");
    }

    #[test]
    fn reads_selected_rows_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feats.zip");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        zip.start_file("v1.npy", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&npy_f16(30, 4)).unwrap();
        zip.finish().unwrap();

        let reader = FeatureReader::open(&path, 4).unwrap();
        let sample = reader.load("v1", 8);
        assert!(sample.issues.is_empty(), "{:?}", sample.issues);
        assert_eq!(sample.frame_indices, vec![0, 3, 6, 9, 12, 15, 18, 21]);
        assert_eq!(sample.frame_mask, vec![1; 8]);
        assert_eq!(sample.slot(1), &[1.5, 1.625, 1.75, 1.875]);

        let missing = reader.load("v2", 8);
        assert_eq!(missing.frame_mask, vec![0; 8]);
        assert!(
            missing.issues[0].contains("video v2"),
            "{:?}",
            missing.issues
        );
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn fortran_order_is_read_as_rows() {
        // The array [[0, 1, 2], [10, 11, 12]] stored column by column.
        let data = f32_bytes(&[0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
        let (n, values) = parse_rows(&npy(1, "<f4", true, "(2, 3)", &data), 3).unwrap();
        assert_eq!(n, 2);
        assert_eq!(values, [0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
        let (_, c_order) = parse_rows(&npy(1, "<f4", false, "(2, 3)", &data), 3).unwrap();
        assert_eq!(c_order, [0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    }

    #[test]
    fn empty_short_and_non_finite_arrays_are_refused() {
        let error = |bytes: Vec<u8>| parse_rows(&bytes, 3).unwrap_err();
        assert!(error(npy(1, "<f4", false, "(0, 3)", &[])).contains("no frames"));
        let claimed = error(npy(
            1,
            "<f4",
            false,
            "(1099511627776, 3)",
            &f32_bytes(&[1.0; 6]),
        ));
        assert!(claimed.contains("header claims shape"), "{claimed}");
        let nan = error(npy(
            1,
            "<f4",
            false,
            "(2, 3)",
            &f32_bytes(&[0.0, 1.0, 2.0, 3.0, f32::NAN, 5.0]),
        ));
        assert!(
            nan.contains("non-finite value NaN at frame 1, column 1"),
            "{nan}"
        );
        let inf = error(npy(
            1,
            "<f4",
            true,
            "(2, 3)",
            &f32_bytes(&[0.0, 1.0, 2.0, f32::INFINITY, 4.0, 5.0]),
        ));
        assert!(
            inf.contains("non-finite value inf at frame 1, column 1"),
            "{inf}"
        );
        assert!(
            error(npy(1, "<f8", false, "(2, 3)", &[0; 48])).contains("expected float16 or float32")
        );
    }
}
