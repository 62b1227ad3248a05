//! What the visual side of one video becomes: a `[max_frames, values_per_frame]` block, the
//! frame mask, and the problems met while reading it.

use std::io::{Read, Seek};

/// The visual input of one video (raw frames or pre-extracted features).
#[derive(Debug, Clone, PartialEq)]
pub struct VisualSample {
    /// `max_frames * values_per_frame` values; empty slots are zeros.
    pub values: Vec<f32>,
    /// Values per frame slot (`3*224*224` for frames, 768 for features).
    pub values_per_frame: usize,
    /// 1 for a slot holding a real frame.
    pub frame_mask: Vec<u32>,
    /// Which entries (in sorted order) were selected, one per slot.
    pub frame_indices: Vec<usize>,
    /// Problems met (missing zip, empty zip, undecodable entry), each naming file and video.
    pub issues: Vec<String>,
}

impl VisualSample {
    /// All slots empty.
    pub fn empty(max_frames: usize, values_per_frame: usize) -> Self {
        VisualSample {
            values: vec![0.0; max_frames * values_per_frame],
            values_per_frame,
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
