use burn::module::{Initializer, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

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
        let [batch_windows, num_tokens, d_model] = windows.dims();
        let head_dim = d_model / self.n_heads;
        // Queries, keys and values are column blocks of the joint projection; each is split
        // into heads as `[windows, heads, tokens, head_dim]` (a strided view, which matmul
        // takes as it is).
        let qkv = self.qkv.forward(windows);
        let part = |index: usize| -> Tensor<B, 4> {
            qkv.clone()
                .narrow(2, index * d_model, d_model)
                .reshape([batch_windows, num_tokens, self.n_heads, head_dim])
                .swap_dims(1, 2)
        };
        let (query, key, value) = (part(0), part(1), part(2));

        let scores = query
            .mul_scalar((head_dim as f64).powf(-0.5))
            .matmul(key.swap_dims(2, 3));
        let probs = softmax(self.add_score_bias(scores, mask), 3);
        // Heads are put side by side one by one: cheaper than a 4-d transposing copy.
        let heads = (0..self.n_heads)
            .map(|head| {
                probs
                    .clone()
                    .narrow(1, head, 1)
                    .matmul(value.clone().narrow(1, head, 1))
                    .reshape([batch_windows, num_tokens, head_dim])
            })
            .collect();
        self.proj.forward(Tensor::cat(heads, 2))
    }

    /// Adds the relative position bias, and the shifted windows' mask if any, to the scores
    /// `[batch_windows, n_heads, tokens, tokens]`. The two are summed on the small
    /// `[windows, n_heads, tokens, tokens]` block first, so that the large scores tensor gets
    /// one addition of a whole row broadcast over the batch.
    fn add_score_bias(&self, scores: Tensor<B, 4>, mask: Option<Tensor<B, 3>>) -> Tensor<B, 4> {
        let [batch_windows, heads, num_tokens, _] = scores.dims();
        let bias = self
            .relative_position_bias_table
            .val()
            .select(
                0,
                self.relative_position_index
                    .clone()
                    .reshape([num_tokens * num_tokens]),
            )
            .reshape([num_tokens, num_tokens, heads])
            .permute([2, 0, 1])
            .unsqueeze_dim::<4>(0);
        let block = match mask {
            Some(mask) => bias + mask.unsqueeze_dim::<4>(1),
            None => bias,
        };
        let windows = block.dims()[0];
        let per_batch = windows * heads * num_tokens * num_tokens;
        let scores =
            scores.reshape([batch_windows / windows, per_batch]) + block.reshape([1, per_batch]);
        scores.reshape([batch_windows, heads, num_tokens, num_tokens])
    }
}
