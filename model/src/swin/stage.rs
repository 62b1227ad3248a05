use burn::prelude::*;

use super::patch_merging::{PatchMerging, PatchMergingConfig};
use super::swin_block::{SwinBlock, SwinBlockConfig};

/// Configuration to create a [`SwinStage`].
#[derive(Config, Debug)]
pub struct SwinStageConfig {
    /// Size of the token features in the stage.
    pub d_model: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// Height and width of the token map of the stage.
    pub input_resolution: [usize; 2],
    /// Side of the attention windows.
    pub window_size: usize,
    /// Ratio of the MLP hidden size to `d_model`.
    pub mlp_ratio: f64,
    /// Stochastic depth rate of each block; its length is the number of blocks.
    pub drop_path: Vec<f64>,
    /// Whether the stage ends with a [`PatchMerging`] downsampling.
    pub downsample: bool,
}

/// A stage of the Swin Transformer (`BasicLayer` in the official code): blocks alternating
/// regular and shifted windows (odd blocks shifted by `window / 2`), then an optional
/// [`PatchMerging`].
#[derive(Module, Debug)]
pub struct SwinStage<B: Backend> {
    /// The Swin blocks.
    pub blocks: Vec<SwinBlock<B>>,
    /// Downsampling at the end of the stage.
    pub downsample: Option<PatchMerging<B>>,
}

impl SwinStageConfig {
    /// Initializes a [`SwinStage`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SwinStage<B> {
        let blocks = self
            .drop_path
            .iter()
            .enumerate()
            .map(|(index, &drop_path)| {
                let shift = if index % 2 == 0 {
                    0
                } else {
                    self.window_size / 2
                };
                SwinBlockConfig::new(
                    self.d_model,
                    self.n_heads,
                    self.input_resolution,
                    self.window_size,
                    shift,
                )
                .with_mlp_ratio(self.mlp_ratio)
                .with_drop_path(drop_path)
                .init(device)
            })
            .collect();
        let downsample = self
            .downsample
            .then(|| PatchMergingConfig::new(self.d_model, self.input_resolution).init(device));
        SwinStage { blocks, downsample }
    }
}

impl<B: Backend> SwinStage<B> {
    /// Applies the stage.
    ///
    /// # Shapes
    /// - tokens: `[batch, height * width, d_model]`
    /// - output: `[batch, height * width, d_model]`, or
    ///   `[batch, (height / 2) * (width / 2), 2 * d_model]` with downsampling
    pub fn forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        let tokens = self
            .blocks
            .iter()
            .fold(tokens, |tokens, block| block.forward(tokens));
        match &self.downsample {
            Some(merging) => merging.forward(tokens),
            None => tokens,
        }
    }
}
