//! The bridge from data to model: a [`VideoBatch`] as the tensors the models take.

use burn::prelude::*;
use vidcls_datasets::batcher::{VideoBatch, VisualBatch};
use vidcls_model::{VideoClassifier, VisualInput};

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
