use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;

use crate::kernels;

use super::bert_linear;

/// Score added to masked positions by [`additive_attention_mask`].
const MASKED_SCORE: f64 = -10000.0;

/// Turns a `1 = attend, 0 = padding` mask into the additive mask of BERT, `(1 - mask) * -10000`,
/// shaped to broadcast over heads and query positions.
///
/// # Shapes
/// - mask: `[batch, seq_len]`
/// - output: `[batch, 1, 1, seq_len]`
pub fn additive_attention_mask<B: Backend>(mask: Tensor<B, 2>) -> Tensor<B, 4> {
    let [batch, seq_len] = mask.dims();
    mask.neg()
        .add_scalar(1.0)
        .mul_scalar(MASKED_SCORE)
        .reshape([batch, 1, 1, seq_len])
}

/// Configuration to create a [`MultiHeadAttention`] block.
#[derive(Config, Debug)]
pub struct MultiHeadAttentionConfig {
    /// Size of the hidden states (queries, keys, values and output).
    pub hidden_size: usize,
    /// Number of attention heads.
    pub num_heads: usize,
    /// Dropout of the attention probabilities.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Standard deviation of the random initialization.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

/// Multi-head scaled dot-product attention with separate query/key/value projections and an
/// additive mask (`BertSelfAttention` / `LxmertAttention` in `transformers`); no output
/// projection (see [`super::ResidualOutput`]).
///
/// Queries come from `hidden`, keys and values from `context` (the same tensor for
/// self-attention).
#[derive(Module, Debug)]
pub struct MultiHeadAttention<B: Backend> {
    /// Query projection.
    pub query: Linear<B>,
    /// Key projection.
    pub key: Linear<B>,
    /// Value projection.
    pub value: Linear<B>,
    /// Dropout of the attention probabilities.
    pub dropout: Dropout,
    num_heads: usize,
}

impl MultiHeadAttentionConfig {
    /// Initializes a [`MultiHeadAttention`] block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MultiHeadAttention<B> {
        assert_eq!(
            self.hidden_size % self.num_heads,
            0,
            "hidden size must be divisible by the number of heads"
        );
        let projection = || {
            bert_linear(
                self.hidden_size,
                self.hidden_size,
                self.initializer_range,
                device,
            )
        };
        MultiHeadAttention {
            query: projection(),
            key: projection(),
            value: projection(),
            dropout: DropoutConfig::new(self.dropout).init(),
            num_heads: self.num_heads,
        }
    }
}

impl<B: Backend> MultiHeadAttention<B> {
    /// Attends from every position of `hidden` to the positions of `context`.
    ///
    /// # Shapes
    /// - hidden: `[batch, query_len, hidden_size]`
    /// - context: `[batch, context_len, hidden_size]`
    /// - mask: additive, broadcastable to `[batch, heads, query_len, context_len]`
    ///   (see [`additive_attention_mask`])
    /// - output: `[batch, query_len, hidden_size]`
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        context: Tensor<B, 3>,
        mask: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 3> {
        let [_, _, hidden_size] = hidden.dims();
        let head_dim = hidden_size / self.num_heads;
        let input = kernels::AttentionInput {
            query: kernels::linear(&self.query, hidden),
            key: kernels::linear(&self.key, context.clone()),
            value: kernels::linear(&self.value, context),
            heads: self.num_heads,
            scale: 1.0 / (head_dim as f32).sqrt(),
            bias: mask,
        };
        kernels::attention(input, Some(&self.dropout))
    }
}
