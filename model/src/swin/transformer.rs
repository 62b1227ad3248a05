use burn::prelude::*;

use super::patch_embed::{PatchEmbed, PatchEmbedConfig};
use super::stage::{SwinStage, SwinStageConfig};
use crate::layer_norm::{LayerNorm, LayerNormConfig};

/// Configuration of a [`SwinTransformer`] (the feature extractor, without classification head).
#[derive(Config, Debug)]
pub struct SwinConfig {
    /// Side of the square input images, in pixels.
    pub img_size: usize,
    /// Side of the square patches, in pixels.
    pub patch_size: usize,
    /// Number of image channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Size of the patch embeddings (features of the first stage).
    pub embed_dim: usize,
    /// Number of blocks of each stage.
    pub depths: Vec<usize>,
    /// Number of attention heads of each stage.
    pub num_heads: Vec<usize>,
    /// Side of the attention windows.
    pub window_size: usize,
    /// Ratio of the MLP hidden size to the token features.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Stochastic depth rate of the last block; it rises linearly from 0 over all blocks.
    #[config(default = 0.1)]
    pub drop_path_rate: f64,
}

impl SwinConfig {
    /// Swin-T: patch 4, embedding 96, depths 2-2-6-2, heads 3-6-12-24, window 7, 224 px,
    /// drop path 0.1; 768 output features. Matches `swin_tiny_patch4_window7_224.pth`.
    pub fn tiny() -> Self {
        Self::new(224, 4, 96, vec![2, 2, 6, 2], vec![3, 6, 12, 24], 7)
    }

    /// A very small Swin for tests and tiny models: 32 px, patch 2, embedding 16, depths
    /// 2-2-2-2, heads 2-4-8-16, window 4; 128 output features. Its stages work on 16x16 and
    /// 8x8 maps (shifted windows), 4x4 (window = map, no shift) and 2x2 (window clamped to 2).
    pub fn micro() -> Self {
        Self::new(32, 2, 16, vec![2, 2, 2, 2], vec![2, 4, 8, 16], 4)
    }

    /// Number of output features: `embed_dim * 2^(stages - 1)`.
    pub fn num_features(&self) -> usize {
        self.embed_dim << (self.depths.len() - 1)
    }

    /// Stochastic depth rate of every block, in order (`linspace(0, drop_path_rate, blocks)`).
    pub fn drop_path_rates(&self) -> Vec<f64> {
        let total: usize = self.depths.iter().sum();
        (0..total)
            .map(|index| match total {
                1 => 0.0,
                _ => self.drop_path_rate * index as f64 / (total - 1) as f64,
            })
            .collect()
    }

    /// Initializes a [`SwinTransformer`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SwinTransformer<B> {
        assert_eq!(
            self.depths.len(),
            self.num_heads.len(),
            "one head count per stage"
        );
        assert_eq!(
            self.img_size % self.patch_size,
            0,
            "image size must be a multiple of the patch size"
        );
        let patches = self.img_size / self.patch_size;
        let mut rates = self.drop_path_rates().into_iter();
        let num_stages = self.depths.len();
        let stages = (0..num_stages)
            .map(|index| {
                let side = patches >> index;
                SwinStageConfig::new(
                    self.embed_dim << index,
                    self.num_heads[index],
                    [side, side],
                    self.window_size,
                    self.mlp_ratio,
                    rates.by_ref().take(self.depths[index]).collect(),
                    index + 1 < num_stages,
                )
                .init(device)
            })
            .collect();
        SwinTransformer {
            patch_embed: PatchEmbedConfig::new(self.patch_size, self.embed_dim)
                .with_in_channels(self.in_channels)
                .init(device),
            stages,
            norm: LayerNormConfig::new(self.num_features()).init(device),
            img_size: self.img_size,
        }
    }
}

/// Swin Transformer feature extractor in the layout of the official Microsoft implementation
/// (no absolute position embedding, patch norm on): patch embedding, stages, final LayerNorm
/// and average pooling over the tokens.
#[derive(Module, Debug)]
pub struct SwinTransformer<B: Backend> {
    /// Patch embedding.
    pub patch_embed: PatchEmbed<B>,
    /// The stages (`layers` in the official code).
    pub stages: Vec<SwinStage<B>>,
    /// Final LayerNorm.
    pub norm: LayerNorm<B>,
    img_size: usize,
}

impl<B: Backend> SwinTransformer<B> {
    /// Extracts one feature vector per image.
    ///
    /// # Shapes
    /// - images: `[batch, channels, img_size, img_size]`
    /// - output: `[batch, num_features]`
    pub fn forward_images(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let [batch, _, height, width] = images.dims();
        assert!(
            height == self.img_size && width == self.img_size,
            "expected {0}x{0} images, got {height}x{width}",
            self.img_size
        );
        let tokens = self.patch_embed.forward(images);
        let tokens = self
            .stages
            .iter()
            .fold(tokens, |tokens, stage| stage.forward(tokens));
        let [_, _, features] = tokens.dims();
        self.norm
            .forward(tokens)
            .mean_dim(1)
            .reshape([batch, features])
    }

    /// Extracts one feature vector per frame of each video.
    ///
    /// # Shapes
    /// - frames: `[batch, frames, channels, img_size, img_size]`
    /// - output: `[batch, frames, num_features]`
    pub fn forward(&self, frames: Tensor<B, 5>) -> Tensor<B, 3> {
        let [batch, num_frames, channels, height, width] = frames.dims();
        let features =
            self.forward_images(frames.reshape([batch * num_frames, channels, height, width]));
        let [_, num_features] = features.dims();
        features.reshape([batch, num_frames, num_features])
    }
}
