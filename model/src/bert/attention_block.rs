use burn::prelude::*;

use super::{MultiHeadAttention, MultiHeadAttentionConfig, ResidualOutput, ResidualOutputConfig};

/// Configuration to create an [`AttentionBlock`].
#[derive(Config, Debug)]
pub struct AttentionBlockConfig {
    /// Size of the hidden states.
    pub hidden_size: usize,
    /// Number of attention heads.
    pub num_heads: usize,
    /// Dropout of the attention probabilities.
    #[config(default = 0.1)]
    pub attention_dropout: f64,
    /// Dropout of the output projection.
    #[config(default = 0.1)]
    pub hidden_dropout: f64,
    /// Epsilon of the LayerNorm.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Standard deviation of the random initialization.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

/// Attention sub-layer: multi-head attention, output projection, dropout, residual and
/// LayerNorm (`BertAttention`, `LxmertSelfAttentionLayer`, `LxmertCrossAttentionLayer`).
#[derive(Module, Debug)]
pub struct AttentionBlock<B: Backend> {
    /// The attention proper (`self` / `att` in `transformers`).
    pub attention: MultiHeadAttention<B>,
    /// Output projection with residual and LayerNorm.
    pub output: ResidualOutput<B>,
}

impl AttentionBlockConfig {
    /// Initializes an [`AttentionBlock`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> AttentionBlock<B> {
        AttentionBlock {
            attention: MultiHeadAttentionConfig::new(self.hidden_size, self.num_heads)
                .with_dropout(self.attention_dropout)
                .with_initializer_range(self.initializer_range)
                .init(device),
            output: ResidualOutputConfig::new(self.hidden_size, self.hidden_size)
                .with_dropout(self.hidden_dropout)
                .with_layer_norm_eps(self.layer_norm_eps)
                .with_initializer_range(self.initializer_range)
                .init(device),
        }
    }
}

impl<B: Backend> AttentionBlock<B> {
    /// Updates `hidden` by attending to `context` (pass `hidden` again for self-attention).
    ///
    /// # Shapes
    /// - hidden: `[batch, query_len, hidden_size]`
    /// - context: `[batch, context_len, hidden_size]`
    /// - mask: additive mask over the context, e.g. `[batch, 1, 1, context_len]`
    /// - output: `[batch, query_len, hidden_size]`
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        context: Tensor<B, 3>,
        mask: Option<Tensor<B, 4>>,
    ) -> Tensor<B, 3> {
        let attended = self.attention.forward(hidden.clone(), context, mask);
        self.output.forward(attended, hidden)
    }
}
