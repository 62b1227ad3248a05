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

/// What the pooler summarises the sequence by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The first token (`[CLS]`), as BERT and the reference do.
    #[default]
    First,
    /// The mean of the real (unmasked) tokens: a direct path from every token to the output,
    /// which small models trained from scratch learn from much faster.
    Mean,
}

/// BERT pooler: `tanh(dense(first token))` (or of the mean token, see [`Pooling`]).
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

    /// Pools a sequence into the projection of its tokens' mean, padding (mask 0) left out.
    ///
    /// # Shapes
    /// - hidden: `[batch, seq_len, hidden_size]`
    /// - mask: `[batch, seq_len]`, 1 for real tokens
    /// - output: `[batch, hidden_size]`
    pub fn forward_mean(&self, hidden: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let weights = mask.unsqueeze_dim::<3>(2);
        let count = weights.clone().sum_dim(1).clamp_min(1.0);
        let mean = (hidden * weights).sum_dim(1).div(count).squeeze_dim::<2>(1);
        kernels::linear(&self.dense, mean).tanh()
    }

    /// Pools a sequence as `pooling` says.
    pub fn pool(&self, hidden: Tensor<B, 3>, mask: Tensor<B, 2>, pooling: Pooling) -> Tensor<B, 2> {
        match pooling {
            Pooling::First => self.forward(hidden),
            Pooling::Mean => self.forward_mean(hidden, mask),
        }
    }
}
