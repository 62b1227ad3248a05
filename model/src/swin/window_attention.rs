use burn::module::{Initializer, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::kernels;

/// Configuration to create a [`WindowAttention`] block.
#[derive(Config, Debug)]
pub struct WindowAttentionConfig {
    /// Size of the token features.
    pub d_model: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// Side of the square attention window, in tokens.
    pub window_size: usize,
    /// Whether the query/key/value projection has a bias.
    #[config(default = true)]
    pub qkv_bias: bool,
}

/// Multi-head self-attention inside square windows with a learned relative position bias
/// (W-MSA / SW-MSA of Swin).
///
/// The bias of the pair `(i, j)` of tokens of a window is
/// `relative_position_bias_table[relative_position_index[i, j]]`, with the index built like the
/// official implementation: `(dy + window - 1) * (2 * window - 1) + (dx + window - 1)` where
/// `(dy, dx)` is the position of `i` minus the position of `j`.
#[derive(Module, Debug)]
pub struct WindowAttention<B: Backend> {
    /// Joint query/key/value projection, `d_model -> 3 * d_model`.
    pub qkv: Linear<B>,
    /// Output projection, `d_model -> d_model`.
    pub proj: Linear<B>,
    /// Learned bias per relative offset and head, `[(2 * window - 1)^2, n_heads]`.
    pub relative_position_bias_table: Param<Tensor<B, 2>>,
    /// Row of the bias table for each `(query, key)` pair of tokens, `[window^2, window^2]`;
    /// derived from the window size, not persisted.
    relative_position_index: Tensor<B, 2, Int>,
    n_heads: usize,
}

impl WindowAttentionConfig {
    /// Initializes a [`WindowAttention`] block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> WindowAttention<B> {
        assert_eq!(
            self.d_model % self.n_heads,
            0,
            "d_model must be divisible by n_heads"
        );
        let span = 2 * self.window_size - 1;
        let num_tokens = self.window_size * self.window_size;
        WindowAttention {
            qkv: LinearConfig::new(self.d_model, 3 * self.d_model)
                .with_bias(self.qkv_bias)
                .init(device),
            proj: LinearConfig::new(self.d_model, self.d_model).init(device),
            relative_position_bias_table: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([span * span, self.n_heads], device),
            relative_position_index: Tensor::from_data(
                TensorData::new(
                    relative_position_index(self.window_size),
                    [num_tokens, num_tokens],
                ),
                device,
            ),
            n_heads: self.n_heads,
        }
    }
}

/// Official Swin relative position index of a `window x window` window, flattened row-major
/// over the `(query token, key token)` pairs.
pub fn relative_position_index(window: usize) -> Vec<i64> {
    let num_tokens = window * window;
    let span = 2 * window - 1;
    (0..num_tokens)
        .flat_map(|i| {
            (0..num_tokens).map(move |j| {
                let dy = i / window + window - 1 - j / window;
                let dx = i % window + window - 1 - j % window;
                (dy * span + dx) as i64
            })
        })
        .collect()
}

impl<B: Backend> WindowAttention<B> {
    /// Row of the bias table for each `(query, key)` pair of window tokens,
    /// `[window^2, window^2]` (the official `relative_position_index` buffer).
    pub fn relative_position_index(&self) -> Tensor<B, 2, Int> {
        self.relative_position_index.clone()
    }

    /// Applies attention within each window.
    ///
    /// `mask` is the additive mask of the shifted windows (0 or -100), one per window of an
    /// image; the windows of `windows` are those of consecutive images in that order.
    ///
    /// # Shapes
    /// - windows: `[batch * num_windows, window^2, d_model]`
    /// - mask: `[num_windows, window^2, window^2]`
    /// - output: `[batch * num_windows, window^2, d_model]`
    pub fn forward(&self, windows: Tensor<B, 3>, mask: Option<Tensor<B, 3>>) -> Tensor<B, 3> {
        let [_, num_tokens, d_model] = windows.dims();
        let head_dim = d_model / self.n_heads;
        // Queries, keys and values are column blocks of the joint projection.
        let attended = kernels::joint_attention(
            kernels::linear(&self.qkv, windows),
            self.n_heads,
            (head_dim as f32).powf(-0.5),
            Some(self.score_bias(num_tokens, mask)),
            None,
        );
        kernels::linear(&self.proj, attended)
    }

    /// The relative position bias, plus the shifted windows' mask if any, added to the scores:
    /// `[num_windows, n_heads, tokens, tokens]` with a mask, `[1, n_heads, tokens, tokens]`
    /// without (see [`kernels::attention`] for how it repeats over the images).
    ///
    /// With a mask, both terms of the sum are laid out in full before they are added, each
    /// window's mask repeated over the heads and the bias one row of `heads * tokens²` values
    /// shared by the windows: Flex adds that in one vectorized pass, whereas a sum that
    /// broadcasts both operands walks every value through strided indexing on one thread
    /// (about 1% of a bf16 forward pass of the seed model, with the other cores idle).
    fn score_bias(&self, num_tokens: usize, mask: Option<Tensor<B, 3>>) -> Tensor<B, 4> {
        let scores = num_tokens * num_tokens;
        let heads = self.n_heads;
        // `[1, heads * tokens²]`: the reshape of the permuted view copies it contiguous.
        let bias = self
            .relative_position_bias_table
            .val()
            .select(0, self.relative_position_index.clone().reshape([scores]))
            .reshape([num_tokens, num_tokens, heads])
            .permute([2, 0, 1])
            .reshape([1, heads * scores]);
        match mask {
            Some(mask) => {
                let windows = mask.dims()[0];
                let masks = mask
                    .reshape([windows, 1, scores])
                    .repeat_dim(1, heads)
                    .reshape([windows, heads * scores]);
                (masks + bias).reshape([windows, heads, num_tokens, num_tokens])
            }
            None => bias.reshape([1, heads, num_tokens, num_tokens]),
        }
    }
}
