use burn::module::{Initializer, Param};
use burn::nn::Linear;
use burn::prelude::*;

use crate::bert::bert_linear;
use crate::kernels;
use crate::layer_norm::{LayerNorm, LayerNormConfig};

/// Configuration to create an [`MlmHead`].
#[derive(Config, Debug)]
pub struct MlmHeadConfig {
    /// Size of the hidden states.
    pub hidden_size: usize,
    /// Size of the vocabulary.
    pub vocab_size: usize,
    /// Epsilon of the LayerNorm.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Standard deviation of the random initialization.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

/// Masked-language-model head (`BertLMPredictionHead`): dense + erf GELU + LayerNorm, then a
/// decoder whose weight is the word-embedding matrix (passed in, not stored) plus a bias.
#[derive(Module, Debug)]
pub struct MlmHead<B: Backend> {
    /// Transform projection `hidden -> hidden`.
    pub dense: Linear<B>,
    /// LayerNorm of the transform.
    pub layer_norm: LayerNorm<B>,
    /// Output bias over the vocabulary, `[vocab_size]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl MlmHeadConfig {
    /// Initializes an [`MlmHead`] with random weights and a zero bias.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MlmHead<B> {
        MlmHead {
            dense: bert_linear(
                self.hidden_size,
                self.hidden_size,
                self.initializer_range,
                device,
            ),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            bias: Initializer::Zeros.init([self.vocab_size], device),
        }
    }
}

impl<B: Backend> MlmHead<B> {
    /// Scores every vocabulary entry at every position.
    ///
    /// # Shapes
    /// - hidden: `[batch, seq_len, hidden_size]`
    /// - word_embeddings: `[vocab_size, hidden_size]`
    /// - output: `[batch, seq_len, vocab_size]`
    pub fn forward(&self, hidden: Tensor<B, 3>, word_embeddings: Tensor<B, 2>) -> Tensor<B, 3> {
        let transformed = self
            .layer_norm
            .forward(kernels::linear_gelu(&self.dense, hidden));
        kernels::composed_linear(
            transformed,
            word_embeddings.transpose(),
            Some(self.bias.val()),
        )
    }
}
