//! Pre-extracted frame features: one zip per split holding `<id>.npy` per video, a float16 (or
//! float32) array `[num_frames, dim]`. The same frame selection as for raw frames applies.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use half::f16;
use npyz::{DType, NpyFile, TypeChar};

use crate::error::DataError;
use crate::frames::select_frames;
use crate::visual::VisualSample;

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

    /// Loads the selected feature rows of one video into `[max_frames, dim]`.
    ///
    /// A missing entry or a malformed array is recorded in the sample's `issues`.
    pub fn load(&self, video_id: &str, max_frames: usize) -> VisualSample {
        let mut sample = VisualSample::empty_features(max_frames, self.dim);
        let name = format!("{video_id}.npy");
        let bytes = {
            let mut archive = self.archive.lock().unwrap_or_else(|e| e.into_inner());
            archive
                .by_name(&name)
                .map_err(|e| e.to_string())
                .and_then(|mut file| {
                    let mut bytes = Vec::with_capacity(file.size() as usize);
                    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
                    Ok(bytes)
                })
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

/// Parses a `[n, dim]` float16/float32 `.npy`, returning `n` and the values as f32.
fn parse_rows(bytes: &[u8], dim: usize) -> Result<(usize, Vec<f32>), String> {
    let npy = NpyFile::new(bytes).map_err(|e| format!("not a .npy array: {e}"))?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 || shape[1] as usize != dim {
        return Err(format!("expected shape [n, {dim}], found {shape:?}"));
    }
    let n = shape[0] as usize;
    let values = match npy.dtype() {
        DType::Plain(ty) if ty.type_char() == TypeChar::Float && ty.size_field() == 2 => npy
            .into_vec::<f16>()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(f16::to_f32)
            .collect(),
        DType::Plain(ty) if ty.type_char() == TypeChar::Float && ty.size_field() == 4 => {
            npy.into_vec::<f32>().map_err(|e| e.to_string())?
        }
        other => {
            return Err(format!(
                "expected float16 or float32, found {}",
                other.descr()
            ));
        }
    };
    Ok((n, values))
}

#[cfg(test)]
mod tests {
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
}
