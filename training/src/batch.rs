//! The bridge from data to model: a [`VideoBatch`] as the tensors the models take, and frames
//! through the visual backbone.

use anyhow::Result;
use burn::prelude::*;
use vidcls_datasets::batcher::{VideoBatch, VisualBatch};
use vidcls_datasets::frames::CROP_SIZE;
use vidcls_datasets::visual::VisualSample;
use vidcls_model::{SwinTransformer, VideoClassifier, VisualInput};

/// The model inputs of a batch of videos.
#[derive(Debug, Clone)]
pub struct ModelInputs<B: Backend> {
    /// Token ids, `[batch, text_len]`.
    pub input_ids: Tensor<B, 2, Int>,
    /// Text mask (1 = token), `[batch, text_len]`.
    pub text_mask: Tensor<B, 2>,
    /// Frames or features.
    pub visual: VisualInput<B>,
    /// Frame mask (1 = real frame), `[batch, frames]`.
    pub frame_mask: Tensor<B, 2>,
    /// Level-2 classes, `[batch]`, for a labeled split.
    pub labels: Option<Tensor<B, 1, Int>>,
}

impl<B: Backend> From<VideoBatch<B>> for ModelInputs<B> {
    fn from(batch: VideoBatch<B>) -> Self {
        ModelInputs {
            input_ids: batch.input_ids,
            text_mask: batch.attention_mask.float(),
            visual: match batch.visual {
                VisualBatch::Frames(frames) => VisualInput::Frames(frames),
                VisualBatch::Features(features) => VisualInput::Features(features),
            },
            frame_mask: batch.frame_mask.float(),
            labels: batch.labels,
        }
    }
}

/// The class logits of a batch, `[batch, classes]` (with the frame mask, as the reference
/// classifies).
pub fn classify<B: Backend>(model: &VideoClassifier<B>, inputs: ModelInputs<B>) -> Tensor<B, 2> {
    model.forward(
        inputs.input_ids,
        inputs.text_mask,
        inputs.visual,
        Some(inputs.frame_mask),
    )
}

/// The backbone features of the real frames of each sample (frames at the side the samples
/// hold), `[frames * features]` per sample, computed in forward passes of at most
/// `batch_size` frames.
pub fn swin_features<B: Backend>(
    swin: &SwinTransformer<B>,
    samples: &[VisualSample],
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<Vec<f32>>> {
    let frames: Vec<&[f32]> = samples
        .iter()
        .flat_map(|sample| {
            (0..sample.frame_mask.len())
                .filter(|&slot| sample.frame_mask[slot] == 1)
                .map(|slot| sample.slot(slot))
        })
        .collect();
    let side = samples
        .iter()
        .find_map(|sample| sample.frame_side)
        .unwrap_or(CROP_SIZE);
    let mut features = Vec::new();
    for batch in frames.chunks(batch_size.max(1)) {
        let values: Vec<f32> = batch.concat();
        let images = Tensor::<B, 4>::from_data(
            TensorData::new(values, [batch.len(), 3, side, side]),
            device,
        );
        let output = swin.forward_images(images).into_data().convert::<f32>();
        features.extend(
            output
                .into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("reading the backbone's output: {e:?}"))?,
        );
    }
    let width = features.len() / frames.len().max(1);
    let mut rows = features.chunks(width.max(1));
    Ok(samples
        .iter()
        .map(|sample| {
            let real = sample.frame_mask.iter().filter(|&&m| m == 1).count();
            rows.by_ref().take(real).flatten().copied().collect()
        })
        .collect())
}
