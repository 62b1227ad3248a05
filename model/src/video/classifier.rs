use burn::nn::{Dropout, Linear};
use burn::prelude::*;

use super::{VideoTextEncoder, VisualInput};
use crate::kernels;

/// The fine-tuning model: [`VideoTextEncoder`], dropout on the pooled output, and a linear
/// classifier.
#[derive(Module, Debug)]
pub struct VideoClassifier<B: Backend> {
    /// Backbone, projection and two-stream encoder.
    pub encoder: VideoTextEncoder<B>,
    /// Dropout on the pooled output.
    pub dropout: Dropout,
    /// Classification layer `hidden -> num_classes`.
    pub classifier: Linear<B>,
}

impl<B: Backend> VideoClassifier<B> {
    /// Class logits of a batch of videos.
    ///
    /// # Shapes
    /// - input_ids, text_mask: `[batch, text_len]`
    /// - visual: see [`VisualInput`]
    /// - frame_mask: `[batch, frames]`
    /// - output: `[batch, num_classes]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        text_mask: Tensor<B, 2>,
        visual: VisualInput<B>,
        frame_mask: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 2> {
        let pooled = self
            .encoder
            .forward(input_ids, text_mask, visual, frame_mask)
            .pooled;
        self.classify(pooled)
    }

    /// Class logits from the pooled output of the encoder (dropout, then the classifier).
    ///
    /// # Shapes
    /// - pooled: `[batch, hidden_size]`
    /// - output: `[batch, num_classes]`
    pub fn classify(&self, pooled: Tensor<B, 2>) -> Tensor<B, 2> {
        self.classifier
            .forward(kernels::dropout(&self.dropout, pooled))
    }
}
