use burn::module::Initializer;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig};
use burn::prelude::*;
use burn::tensor::module::embedding;

use crate::kernels;
use crate::layer_norm::{LayerNorm, LayerNormConfig};

/// Configuration to create [`BertEmbeddings`].
#[derive(Config, Debug)]
pub struct BertEmbeddingsConfig {
    /// Size of the vocabulary.
    pub vocab_size: usize,
    /// Size of the embeddings.
    pub hidden_size: usize,
    /// Number of position embeddings (maximum sequence length).
    pub max_position_embeddings: usize,
    /// Number of token types.
    pub type_vocab_size: usize,
    /// Dropout after the LayerNorm.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Epsilon of the LayerNorm.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Standard deviation of the random initialization.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

/// BERT input embeddings: word + absolute position + token type, then LayerNorm and dropout.
///
/// Every token has token type 0 (the reference never passes segment ids).
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// Word embeddings, `[vocab_size, hidden_size]` (also the tied MLM decoder matrix).
    pub word_embeddings: Embedding<B>,
    /// Position embeddings, `[max_position_embeddings, hidden_size]`.
    pub position_embeddings: Embedding<B>,
    /// Token type embeddings, `[type_vocab_size, hidden_size]`.
    pub token_type_embeddings: Embedding<B>,
    /// LayerNorm over the summed embeddings.
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the LayerNorm.
    pub dropout: Dropout,
}

impl BertEmbeddingsConfig {
    /// Initializes [`BertEmbeddings`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BertEmbeddings<B> {
        let embedding = |rows: usize| {
            EmbeddingConfig::new(rows, self.hidden_size)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: self.initializer_range,
                })
                .init(device)
        };
        BertEmbeddings {
            word_embeddings: embedding(self.vocab_size),
            position_embeddings: embedding(self.max_position_embeddings),
            token_type_embeddings: embedding(self.type_vocab_size),
            layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl<B: Backend> BertEmbeddings<B> {
    /// Embeds token ids at positions `0..seq_len`.
    ///
    /// # Shapes
    /// - input_ids: `[batch, seq_len]`
    /// - output: `[batch, seq_len, hidden_size]`
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.forward_perturbed(input_ids, None)
    }

    /// Embeds token ids as [`forward`](Self::forward) does, as if `word_delta` were added to
    /// the word-embedding matrix (adversarial training perturbs that matrix). The matrix itself
    /// is left as it is: the delta's rows are looked up and added, so the gradient with respect
    /// to the matrix is the one at the perturbed point.
    ///
    /// # Shapes
    /// - input_ids: `[batch, seq_len]`
    /// - word_delta: `[vocab_size, hidden_size]`
    /// - output: `[batch, seq_len, hidden_size]`
    pub fn forward_perturbed(
        &self,
        input_ids: Tensor<B, 2, Int>,
        word_delta: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 3> {
        let [_, seq_len] = input_ids.dims();
        let positions = self
            .position_embeddings
            .weight
            .val()
            .narrow(0, 0, seq_len)
            .unsqueeze_dim::<3>(0);
        let token_type = self
            .token_type_embeddings
            .weight
            .val()
            .narrow(0, 0, 1)
            .unsqueeze_dim::<3>(0);
        let mut words = self.word_embeddings.forward(input_ids.clone());
        if let Some(delta) = word_delta {
            words = words + embedding(delta, input_ids);
        }
        let embeddings = words + positions + token_type;
        kernels::dropout(&self.dropout, self.layer_norm.forward(embeddings))
    }
}
