use crate::layer_norm::{LayerNorm, LayerNormConfig};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

/// Configuration to create a [`PatchEmbed`] block.
#[derive(Config, Debug)]
pub struct PatchEmbedConfig {
    /// Side of the square patches, in pixels.
    pub patch_size: usize,
    /// Number of image channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Size of the patch embeddings.
    pub embed_dim: usize,
}

/// Splits an image into non-overlapping patches and embeds each one (a strided convolution),
/// followed by a LayerNorm ("patch norm").
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// Convolution with kernel and stride `patch_size`.
    pub proj: Conv2d<B>,
    /// LayerNorm over the embeddings.
    pub norm: LayerNorm<B>,
}

impl PatchEmbedConfig {
    /// Initializes a [`PatchEmbed`] block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> PatchEmbed<B> {
        let patch = [self.patch_size, self.patch_size];
        PatchEmbed {
            proj: Conv2dConfig::new([self.in_channels, self.embed_dim], patch)
                .with_stride(patch)
                .init(device),
            norm: LayerNormConfig::new(self.embed_dim).init(device),
        }
    }
}

impl<B: Backend> PatchEmbed<B> {
    /// Embeds the patches of a batch of images, in row-major patch order.
    ///
    /// # Shapes
    /// - images: `[batch, in_channels, height, width]`
    /// - output: `[batch, (height / patch) * (width / patch), embed_dim]`
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let patches: Tensor<B, 3> = self.proj.forward(images).flatten(2, 3);
        self.norm.forward(patches.swap_dims(1, 2))
    }
}
