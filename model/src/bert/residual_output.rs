use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;

use crate::kernels;

use super::bert_linear;
use crate::layer_norm::{LayerNorm, LayerNormConfig};

/// Configuration to create a [`ResidualOutput`] block.
#[derive(Config, Debug)]
pub struct ResidualOutputConfig {
    /// Size of the input of the projection.
    pub d_input: usize,
    /// Size of the hidden states (output of the projection and of the residual).
    pub hidden_size: usize,
    /// Dropout after the projection.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Epsilon of the LayerNorm.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Standard deviation of the random initialization.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

/// Output of a BERT sub-layer: `LayerNorm(dropout(dense(x)) + residual)` (`BertSelfOutput`,
/// `BertOutput`, `LxmertAttentionOutput`, `LxmertOutput` in `transformers`).
#[derive(Module, Debug)]
pub struct ResidualOutput<B: Backend> {
    /// Projection `d_input -> hidden_size`.
    pub dense: Linear<B>,
    /// LayerNorm after the residual connection.
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the projection.
    pub dropout: Dropout,
}

impl ResidualOutputConfig {
    /// Initializes a [`ResidualOutput`] block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResidualOutput<B> {
        ResidualOutput {
            dense: bert_linear(
                self.d_input,
                self.hidden_size,
                self.initializer_range,
                device,
            ),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: Backend> ResidualOutput<B> {
    /// Projects `hidden`, adds `residual` and normalizes.
    ///
    /// # Shapes
    /// - hidden: `[batch, seq_len, d_input]`
    /// - residual: `[batch, seq_len, hidden_size]`
    /// - output: `[batch, seq_len, hidden_size]`
    pub fn forward(&self, hidden: Tensor<B, 3>, residual: Tensor<B, 3>) -> Tensor<B, 3> {
        let summed = kernels::linear_residual(&self.dense, hidden, residual, |projected| {
            kernels::dropout(&self.dropout, projected)
        });
        self.layer_norm.forward(summed)
    }

    /// The feed-forward block that ends in this output: projects `hidden` by `intermediate`
    /// and the erf GELU, then as [`ResidualOutput::forward`] with `hidden` as the residual
    /// (one fused pass in bf16 CPU inference, see [`kernels::mlp`]).
    ///
    /// # Shapes
    /// - hidden, output: `[batch, seq_len, hidden_size]`
    pub fn feed_forward(&self, intermediate: &Linear<B>, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let summed = kernels::mlp(
            intermediate,
            &self.dense,
            hidden.clone(),
            hidden,
            |projected| kernels::dropout(&self.dropout, projected),
        );
        self.layer_norm.forward(summed)
    }
}
