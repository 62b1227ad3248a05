//! What the visual side of one video becomes: a `[max_frames, values_per_frame]` block, the
//! frame mask, and the problems met while reading it.

use std::io::{Read, Seek};

/// The visual input of one video (raw frames or pre-extracted features).
#[derive(Debug, Clone, PartialEq)]
pub struct VisualSample {
    /// `max_frames * values_per_frame` values; empty slots are zeros.
    pub values: Vec<f32>,
    /// Values per frame slot (`3*side*side` for frames, 768 for features).
    pub values_per_frame: usize,
    /// The side of the square frames held in the slots (`3 x side x side` values each), or
    /// `None` when the slots hold feature vectors.
    pub frame_side: Option<usize>,
    /// 1 for a slot holding a real frame.
    pub frame_mask: Vec<u32>,
    /// Which entries (in sorted order) were selected, one per slot.
    pub frame_indices: Vec<usize>,
    /// Problems met (missing zip, empty zip, undecodable entry), each naming file and video.
    pub issues: Vec<String>,
}

impl VisualSample {
    /// All slots empty, for frames of `side x side` pixels.
    pub fn empty_frames(max_frames: usize, side: usize) -> Self {
        Self::empty(max_frames, 3 * side * side, Some(side))
    }

    /// All slots empty, for feature vectors of `dim` values.
    pub fn empty_features(max_frames: usize, dim: usize) -> Self {
        Self::empty(max_frames, dim, None)
    }

    fn empty(max_frames: usize, values_per_frame: usize, frame_side: Option<usize>) -> Self {
        VisualSample {
            values: vec![0.0; max_frames * values_per_frame],
            values_per_frame,
            frame_side,
            frame_mask: vec![0; max_frames],
            frame_indices: Vec::new(),
            issues: Vec::new(),
        }
    }

    /// The values of one slot.
    pub fn slot(&self, slot: usize) -> &[f32] {
        &self.values[slot * self.values_per_frame..(slot + 1) * self.values_per_frame]
    }

    /// The values of one slot, to fill.
    pub fn slot_mut(&mut self, slot: usize) -> &mut [f32] {
        &mut self.values[slot * self.values_per_frame..(slot + 1) * self.values_per_frame]
    }

    /// The frames shrunk to `side x side` pixels by averaging `factor x factor` blocks
    /// (`factor = current side / side`, which must divide it); features are left as they are.
    /// Averaging commutes with the per-channel normalisation, so this equals normalising
    /// block-averaged pixels.
    ///
    /// # Panics
    /// If `side` is 0 or does not divide the current side.
    pub fn downscaled(self, side: usize) -> Self {
        let Some(current) = self.frame_side else {
            return self;
        };
        assert!(
            side > 0 && current % side == 0,
            "frames of {current} px cannot be shrunk to {side} px by an integer factor"
        );
        if side == current {
            return self;
        }
        let factor = current / side;
        let scale = 1.0 / (factor * factor) as f32;
        let slots = self.frame_mask.len();
        let mut values = vec![0.0f32; slots * 3 * side * side];
        for (source, target) in self
            .values
            .chunks_exact(current * current)
            .zip(values.chunks_exact_mut(side * side))
        {
            for (row, source_row) in source.chunks_exact(current).enumerate() {
                let target_row = &mut target[(row / factor) * side..][..side];
                for (x, value) in source_row.iter().enumerate() {
                    target_row[x / factor] += value;
                }
            }
            target.iter_mut().for_each(|value| *value *= scale);
        }
        VisualSample {
            values,
            values_per_frame: 3 * side * side,
            frame_side: Some(side),
            ..self
        }
    }

    /// Mean of each slot's values (0 for empty slots), as `inspect` reports them.
    pub fn slot_means(&self) -> Vec<f64> {
        (0..self.frame_mask.len())
            .map(|slot| {
                let values = self.slot(slot);
                values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64
            })
            .collect()
    }
}

/// The most bytes one zip entry (a frame image or a feature array) may inflate to: 256 MiB,
/// far above any real frame or feature array. An entry's claimed size is never trusted.
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;

/// Reads one zip entry, refusing to inflate it beyond [`MAX_ENTRY_BYTES`] whatever its header
/// claims.
pub fn read_entry(entry: impl Read) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_ENTRY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Err(format!(
            "entry inflates beyond {} MiB, the limit for one entry",
            MAX_ENTRY_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// The file entries of a zip sorted by name, as (index in the zip, name); directories skipped.
pub fn sorted_entries<R: Read + Seek>(archive: &zip::ZipArchive<R>) -> Vec<(usize, String)> {
    let mut entries: Vec<(usize, String)> = (0..archive.len())
        .filter_map(|index| {
            let name = archive.name_for_index(index)?;
            (!name.ends_with('/')).then(|| (index, name.to_string()))
        })
        .collect();
    entries.sort_by(|a, b| a.1.cmp(&b.1));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscaling_averages_blocks_per_channel() {
        let mut sample = VisualSample::empty_frames(2, 4);
        sample.frame_mask[0] = 1;
        // Slot 0: value = channel * 100 + y * 4 + x.
        for (i, value) in sample.slot_mut(0).iter_mut().enumerate() {
            let (channel, y, x) = (i / 16, (i / 4) % 4, i % 4);
            *value = (channel * 100 + y * 4 + x) as f32;
        }
        let small = sample.clone().downscaled(2);
        assert_eq!(small.frame_side, Some(2));
        assert_eq!(small.values_per_frame, 12);
        // Block (0, 0) of channel 1: mean of 100, 101, 104, 105.
        assert_eq!(small.slot(0)[4], 102.5);
        assert_eq!(small.slot(0)[..4], [2.5, 4.5, 10.5, 12.5]);
        assert!(small.slot(1).iter().all(|&v| v == 0.0));
        assert_eq!(small.frame_mask, sample.frame_mask);
        assert_eq!(sample.clone().downscaled(4), sample);
        let features = VisualSample::empty_features(2, 6);
        assert_eq!(features.clone().downscaled(2), features);
    }
}
