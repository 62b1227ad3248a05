use burn::nn::Linear;
use burn::prelude::*;

use super::{ResidualOutput, ResidualOutputConfig, bert_linear};

/// Configuration to create a [`FeedForward`] block.
#[derive(Config, Debug)]
pub struct FeedForwardConfig {
    /// Size of the hidden states.
    pub hidden_size: usize,
    /// Size of the intermediate layer.
    pub intermediate_size: usize,
    /// Dropout of the output projection.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Epsilon of the LayerNorm.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Standard deviation of the random initialization.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

/// Feed-forward sub-layer: intermediate projection with erf GELU, then output projection,
/// dropout, residual and LayerNorm (`BertIntermediate` + `BertOutput`).
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// Projection `hidden_size -> intermediate_size`.
    pub intermediate: Linear<B>,
    /// Projection back to `hidden_size` with residual and LayerNorm.
    pub output: ResidualOutput<B>,
}

impl FeedForwardConfig {
    /// Initializes a [`FeedForward`] block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FeedForward<B> {
        FeedForward {
            intermediate: bert_linear(
                self.hidden_size,
                self.intermediate_size,
                self.initializer_range,
                device,
            ),
            output: ResidualOutputConfig::new(self.intermediate_size, self.hidden_size)
                .with_dropout(self.dropout)
                .with_layer_norm_eps(self.layer_norm_eps)
                .with_initializer_range(self.initializer_range)
                .init(device),
        }
    }
}

impl<B: Backend> FeedForward<B> {
    /// Applies the block.
    ///
    /// # Shapes
    /// - hidden: `[batch, seq_len, hidden_size]`
    /// - output: `[batch, seq_len, hidden_size]`
    pub fn forward(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        self.output.feed_forward(&self.intermediate, hidden)
    }
}
