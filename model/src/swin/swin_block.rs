use burn::prelude::*;

use super::drop_path::{DropPath, DropPathConfig};
use super::mlp::{Mlp, MlpConfig};
use super::window::{inverse_order, shifted_window_order};
use super::window_attention::{WindowAttention, WindowAttentionConfig};
use crate::kernels;
use crate::layer_norm::{LayerNorm, LayerNormConfig};

/// Score added between tokens of a shifted window that come from different regions of the map.
const CROSS_REGION_SCORE: f32 = -100.0;

/// Configuration to create a [`SwinBlock`].
#[derive(Config, Debug)]
pub struct SwinBlockConfig {
    /// Size of the token features.
    pub d_model: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// Height and width of the token map the block works on.
    pub input_resolution: [usize; 2],
    /// Side of the attention windows.
    pub window_size: usize,
    /// Cyclic shift of the windows (0 for W-MSA, usually `window_size / 2` for SW-MSA).
    pub shift_size: usize,
    /// Ratio of the MLP hidden size to `d_model`.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Stochastic depth rate of both residual branches.
    #[config(default = 0.0)]
    pub drop_path: f64,
}

/// One Swin Transformer block: (shifted-)window attention and an MLP, each pre-LayerNorm with a
/// residual connection and stochastic depth.
///
/// As in the official implementation, when the token map is not larger than the window, the
/// window becomes the whole map and nothing is shifted.
#[derive(Module, Debug)]
pub struct SwinBlock<B: Backend> {
    /// LayerNorm before the attention.
    pub norm1: LayerNorm<B>,
    /// Window attention.
    pub attention: WindowAttention<B>,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm<B>,
    /// Feed-forward block.
    pub mlp: Mlp<B>,
    /// Stochastic depth of the residual branches.
    pub drop_path: DropPath,
    /// Additive mask of the shifted windows, `[num_windows, window^2, window^2]`; derived from
    /// the configuration, not persisted. `None` when the block is not shifted.
    attention_mask: Option<Tensor<B, 3>>,
    /// Map token of each position of the (shifted) windows, see [`shifted_window_order`];
    /// derived from the configuration, not persisted.
    window_order: Tensor<B, 1, Int>,
    /// Position in the windows of each map token (the inverse of `window_order`).
    token_order: Tensor<B, 1, Int>,
    window_size: usize,
}

impl SwinBlockConfig {
    /// The window size and shift actually used (the official clamping rule applied).
    pub fn effective_window(&self) -> (usize, usize) {
        let smallest_side = self.input_resolution[0].min(self.input_resolution[1]);
        if smallest_side <= self.window_size {
            (smallest_side, 0)
        } else {
            (self.window_size, self.shift_size)
        }
    }

    /// Initializes a [`SwinBlock`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SwinBlock<B> {
        let (window_size, shift_size) = self.effective_window();
        let [height, width] = self.input_resolution;
        assert!(
            shift_size < window_size,
            "shift must be smaller than the window"
        );
        assert!(
            height % window_size == 0 && width % window_size == 0,
            "token map {height}x{width} is not divisible into {window_size}x{window_size} windows"
        );
        let attention_mask = (shift_size > 0).then(|| {
            let num_windows = (height / window_size) * (width / window_size);
            let num_tokens = window_size * window_size;
            Tensor::from_data(
                TensorData::new(
                    shifted_window_mask(self.input_resolution, window_size, shift_size),
                    [num_windows, num_tokens, num_tokens],
                ),
                device,
            )
        });
        let order = shifted_window_order(self.input_resolution, window_size, shift_size);
        let index =
            |order: Vec<i64>| Tensor::from_data(TensorData::new(order, [height * width]), device);
        SwinBlock {
            window_order: index(order.clone()),
            token_order: index(inverse_order(&order)),
            norm1: LayerNormConfig::new(self.d_model).init(device),
            attention: WindowAttentionConfig::new(self.d_model, self.n_heads, window_size)
                .init(device),
            norm2: LayerNormConfig::new(self.d_model).init(device),
            mlp: MlpConfig::new(
                self.d_model,
                (self.d_model as f64 * self.mlp_ratio) as usize,
            )
            .init(device),
            drop_path: DropPathConfig::new(self.drop_path).init(),
            attention_mask,
            window_size,
        }
    }
}

/// Additive attention mask of shifted windows, built like the official implementation: the
/// cyclically shifted map is cut into 3 x 3 regions (`[0, size - window)`,
/// `[size - window, size - shift)`, `[size - shift, size)` on each axis), and two tokens of the
/// same window may attend to each other only when they come from the same region.
///
/// Returns `[num_windows, window^2, window^2]` values flattened row-major.
pub fn shifted_window_mask(resolution: [usize; 2], window: usize, shift: usize) -> Vec<f32> {
    let [height, width] = resolution;
    let region = |position: usize, size: usize| {
        if position < size - window {
            0
        } else if position < size - shift {
            1
        } else {
            2
        }
    };
    let num_tokens = window * window;
    let mut mask = Vec::with_capacity((height / window) * (width / window) * num_tokens.pow(2));
    for window_row in 0..height / window {
        for window_col in 0..width / window {
            let regions: Vec<usize> = (0..num_tokens)
                .map(|token| {
                    3 * region(window_row * window + token / window, height)
                        + region(window_col * window + token % window, width)
                })
                .collect();
            for &query_region in &regions {
                mask.extend(regions.iter().map(|&key_region| {
                    if key_region == query_region {
                        0.0
                    } else {
                        CROSS_REGION_SCORE
                    }
                }));
            }
        }
    }
    mask
}

impl<B: Backend> SwinBlock<B> {
    /// Additive mask of the shifted windows, `[num_windows, window^2, window^2]` (the official
    /// `attn_mask` buffer); `None` when the block is not shifted.
    pub fn attention_mask(&self) -> Option<Tensor<B, 3>> {
        self.attention_mask.clone()
    }

    /// Applies the block to a row-major token map.
    ///
    /// # Shapes
    /// - tokens: `[batch, height * width, d_model]`
    /// - output: `[batch, height * width, d_model]`
    pub fn forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, num_tokens, d_model] = tokens.dims();
        let window_tokens = self.window_size * self.window_size;
        // The cyclic shift up-left (`torch.roll(x, -shift)`) and the window partition are one
        // permutation of the tokens, and so are their inverses.
        let windows = kernels::permute_tokens(
            self.norm1.forward(tokens.clone()),
            self.window_order.clone(),
        )
        .reshape([batch * num_tokens / window_tokens, window_tokens, d_model]);
        let windows = self.attention.forward(windows, self.attention_mask.clone());
        let map = kernels::permute_tokens(
            windows.reshape([batch, num_tokens, d_model]),
            self.token_order.clone(),
        );
        let tokens = tokens + self.drop_path.forward(map);
        self.mlp
            .forward(self.norm2.forward(tokens.clone()), tokens, &self.drop_path)
    }
}
