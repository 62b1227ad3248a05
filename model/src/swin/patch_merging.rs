use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::kernels;
use crate::layer_norm::{LayerNorm, LayerNormConfig};

/// Configuration to create a [`PatchMerging`] block.
#[derive(Config, Debug)]
pub struct PatchMergingConfig {
    /// Size of the input token features (`C`).
    pub d_model: usize,
    /// Height and width of the input token map (both even).
    pub input_resolution: [usize; 2],
}

/// Downsampling between Swin stages: each 2x2 group of tokens is concatenated into one token of
/// `4C` features, normalized, and projected to `2C` features without bias.
///
/// The concatenation order is the official one: (even row, even col), (odd row, even col),
/// (even row, odd col), (odd row, odd col).
#[derive(Module, Debug)]
pub struct PatchMerging<B: Backend> {
    /// LayerNorm over the `4C` concatenated features.
    pub norm: LayerNorm<B>,
    /// Projection `4C -> 2C`, without bias.
    pub reduction: Linear<B>,
    input_resolution: [usize; 2],
}

impl PatchMergingConfig {
    /// Initializes a [`PatchMerging`] block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> PatchMerging<B> {
        let [height, width] = self.input_resolution;
        assert!(
            height % 2 == 0 && width % 2 == 0,
            "patch merging needs an even token map, got {height}x{width}"
        );
        PatchMerging {
            norm: LayerNormConfig::new(4 * self.d_model).init(device),
            reduction: LinearConfig::new(4 * self.d_model, 2 * self.d_model)
                .with_bias(false)
                .init(device),
            input_resolution: self.input_resolution,
        }
    }
}

impl<B: Backend> PatchMerging<B> {
    /// Halves the resolution of a row-major token map and doubles its features.
    ///
    /// # Shapes
    /// - tokens: `[batch, height * width, C]`
    /// - output: `[batch, (height / 2) * (width / 2), 2C]`
    pub fn forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, _, channels] = tokens.dims();
        let [height, width] = self.input_resolution;
        // [b, h/2, row parity, w/2, col parity, c] -> [b, h/2, w/2, col parity, row parity, c]:
        // flattening the last three axes yields the official order x0, x1, x2, x3.
        let merged = tokens
            .reshape([batch, height / 2, 2, width / 2, 2, channels])
            .permute([0, 1, 3, 4, 2, 5])
            .reshape([batch, (height / 2) * (width / 2), 4 * channels]);
        kernels::linear(&self.reduction, self.norm.forward(merged))
    }
}
