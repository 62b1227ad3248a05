//! Batching preprocessed videos into the tensors the model takes.

use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;

use crate::dataset::VideoItem;
use crate::frames::{CROP_SIZE, FRAME_VALUES};

/// The visual part of a batch.
#[derive(Debug, Clone)]
pub enum VisualBatch<B: Backend> {
    /// Raw frames `[B, F, 3, 224, 224]`.
    Frames(Tensor<B, 5>),
    /// Pre-extracted features `[B, F, D]`.
    Features(Tensor<B, 3>),
}

/// A batch of videos.
#[derive(Debug, Clone)]
pub struct VideoBatch<B: Backend> {
    /// Frames or features.
    pub visual: VisualBatch<B>,
    /// `[B, F]`, 1 for real frames.
    pub frame_mask: Tensor<B, 2, Int>,
    /// `[B, L]` token ids.
    pub input_ids: Tensor<B, 2, Int>,
    /// `[B, L]`, 1 for real tokens.
    pub attention_mask: Tensor<B, 2, Int>,
    /// `[B]` level-2 class ids, when the split is labeled.
    pub labels: Option<Tensor<B, 1, Int>>,
    /// The video ids, in batch order.
    pub ids: Vec<String>,
    /// Problems met while preprocessing these videos.
    pub issues: Vec<String>,
}

/// Builds [`VideoBatch`]es; texts of unequal length (the `compact` layout) are padded with
/// `pad_id` to the longest in the batch.
#[derive(Debug, Clone, Copy)]
pub struct VideoBatcher {
    pad_id: u32,
}

impl VideoBatcher {
    /// A batcher padding texts with the given `[PAD]` id.
    pub fn new(pad_id: u32) -> Self {
        VideoBatcher { pad_id }
    }
}

impl<B: Backend> Batcher<B, VideoItem, VideoBatch<B>> for VideoBatcher {
    fn batch(&self, items: Vec<VideoItem>, device: &B::Device) -> VideoBatch<B> {
        let batch_size = items.len();
        let frames = items.first().map_or(0, |item| item.visual.frame_mask.len());
        let per_frame = items.first().map_or(0, |item| item.visual.values_per_frame);
        let text_len = items
            .iter()
            .map(|item| item.input_ids.len())
            .max()
            .unwrap_or(0);

        let mut values = Vec::with_capacity(batch_size * frames * per_frame);
        let mut frame_mask = Vec::with_capacity(batch_size * frames);
        let mut input_ids = Vec::with_capacity(batch_size * text_len);
        let mut attention_mask = Vec::with_capacity(batch_size * text_len);
        let mut labels = Vec::with_capacity(batch_size);
        let mut ids = Vec::with_capacity(batch_size);
        let mut issues = Vec::new();
        for item in items {
            values.extend_from_slice(&item.visual.values);
            frame_mask.extend(item.visual.frame_mask.iter().map(|&m| m as i64));
            let padding = text_len - item.input_ids.len();
            input_ids.extend(item.input_ids.iter().map(|&id| id as i64));
            input_ids.extend(std::iter::repeat_n(self.pad_id as i64, padding));
            attention_mask.extend(item.attention_mask.iter().map(|&m| m as i64));
            attention_mask.extend(std::iter::repeat_n(0, padding));
            labels.extend(item.label.map(|label| label as i64));
            ids.push(item.id);
            issues.extend(item.issues);
        }

        let visual_data = |shape: Vec<usize>| TensorData::new(values, shape);
        let visual = if per_frame == FRAME_VALUES {
            VisualBatch::Frames(Tensor::from_data(
                visual_data(vec![batch_size, frames, 3, CROP_SIZE, CROP_SIZE]),
                device,
            ))
        } else {
            VisualBatch::Features(Tensor::from_data(
                visual_data(vec![batch_size, frames, per_frame]),
                device,
            ))
        };
        let int_2d = |data: Vec<i64>, width: usize| {
            Tensor::from_data(TensorData::new(data, [batch_size, width]), device)
        };
        VideoBatch {
            visual,
            frame_mask: int_2d(frame_mask, frames),
            input_ids: int_2d(input_ids, text_len),
            attention_mask: int_2d(attention_mask, text_len),
            labels: (labels.len() == batch_size && batch_size > 0)
                .then(|| Tensor::from_data(TensorData::new(labels, [batch_size]), device)),
            ids,
            issues,
        }
    }
}
