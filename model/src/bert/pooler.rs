use burn::nn::Linear;
use burn::prelude::*;

use crate::kernels;

use super::bert_linear;

/// Configuration to create a [`Pooler`].
#[derive(Config, Debug)]
pub struct PoolerConfig {
    /// Size of the hidden states.
    pub hidden_size: usize,
    /// Standard deviation of the random initialization.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

/// BERT pooler: `tanh(dense(first token))`.
#[derive(Module, Debug)]
pub struct Pooler<B: Backend> {
    /// Projection of the first token.
    pub dense: Linear<B>,
}

impl PoolerConfig {
    /// Initializes a [`Pooler`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Pooler<B> {
        Pooler {
            dense: bert_linear(
                self.hidden_size,
                self.hidden_size,
                self.initializer_range,
                device,
            ),
        }
    }
}

impl<B: Backend> Pooler<B> {
    /// Pools a sequence into its first token's projection.
    ///
    /// # Shapes
    /// - hidden: `[batch, seq_len, hidden_size]`
    /// - output: `[batch, hidden_size]`
    pub fn forward(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, _, hidden_size] = hidden.dims();
        let first = hidden.narrow(1, 0, 1).reshape([batch, hidden_size]);
        kernels::linear(&self.dense, first).tanh()
    }
}
