use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::cross_modality::{TwoStreamEncoder, TwoStreamEncoderConfig, TwoStreamOutput};
use crate::swin::{SwinConfig, SwinTransformer};

/// Configuration to create a [`VideoTextEncoder`].
#[derive(Config, Debug)]
pub struct VideoTextEncoderConfig {
    /// The visual backbone.
    pub swin: SwinConfig,
    /// The two-stream encoder.
    pub two_stream: TwoStreamEncoderConfig,
}

/// What the visual stream starts from.
#[derive(Debug, Clone)]
pub enum VisualInput<B: Backend> {
    /// Normalized frames, `[batch, frames, 3, img_size, img_size]`, run through the backbone.
    Frames(Tensor<B, 5>),
    /// Pre-extracted backbone features, `[batch, frames, num_features]`; the backbone is skipped.
    Features(Tensor<B, 3>),
}

/// Visual backbone + `video_dense` projection + [`TwoStreamEncoder`]: the part shared by the
/// classifier and the pre-training model.
#[derive(Module, Debug)]
pub struct VideoTextEncoder<B: Backend> {
    /// Swin Transformer applied to every frame slot.
    pub visual_backbone: SwinTransformer<B>,
    /// Projection of the frame features to the hidden size.
    pub video_dense: Linear<B>,
    /// The two-stream encoder.
    pub two_stream: TwoStreamEncoder<B>,
}

impl VideoTextEncoderConfig {
    /// Initializes a [`VideoTextEncoder`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VideoTextEncoder<B> {
        VideoTextEncoder {
            visual_backbone: self.swin.init(device),
            video_dense: LinearConfig::new(
                self.swin.num_features(),
                self.two_stream.bert.hidden_size,
            )
            .init(device),
            two_stream: self.two_stream.init(device),
        }
    }
}

impl<B: Backend> VideoTextEncoder<B> {
    /// Encodes a batch of videos with their texts.
    ///
    /// Masks use `1` for real tokens / frames and `0` for padding; without `frame_mask` every
    /// frame slot is attended (as the reference does in pre-training).
    ///
    /// # Shapes
    /// - input_ids, text_mask: `[batch, text_len]`
    /// - visual: see [`VisualInput`]
    /// - frame_mask: `[batch, frames]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        text_mask: Tensor<B, 2>,
        visual: VisualInput<B>,
        frame_mask: Option<Tensor<B, 2>>,
    ) -> TwoStreamOutput<B> {
        let visual = self.visual_states(visual);
        self.two_stream
            .forward(input_ids, text_mask, visual, frame_mask)
    }

    /// The visual stream's input to the two-stream encoder: the backbone's features (unless
    /// given) projected by `video_dense`. It does not depend on the text, so a training step
    /// that encodes the same videos with several text perturbations can compute it once.
    ///
    /// # Shapes
    /// - visual: see [`VisualInput`]
    /// - output: `[batch, frames, hidden_size]`
    pub fn visual_states(&self, visual: VisualInput<B>) -> Tensor<B, 3> {
        let features = match visual {
            VisualInput::Frames(frames) => self.visual_backbone.forward(frames),
            VisualInput::Features(features) => features,
        };
        self.video_dense.forward(features)
    }
}
