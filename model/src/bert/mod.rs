//! BERT building blocks (HuggingFace `transformers` semantics: post-LayerNorm, erf GELU,
//! additive attention masks), shared by the text encoder and the cross-modality layers.

mod attention;
mod attention_block;
mod config;
mod embeddings;
mod encoder;
mod feed_forward;
mod layer;
mod pooler;
mod residual_output;

pub use attention::{MultiHeadAttention, MultiHeadAttentionConfig, additive_attention_mask};
pub use attention_block::{AttentionBlock, AttentionBlockConfig};
pub use config::BertConfig;
pub use embeddings::{BertEmbeddings, BertEmbeddingsConfig};
pub use encoder::{BertEncoder, BertEncoderConfig};
pub use feed_forward::{FeedForward, FeedForwardConfig};
pub use layer::{BertLayer, BertLayerConfig};
pub use pooler::{Pooler, PoolerConfig};
pub use residual_output::{ResidualOutput, ResidualOutputConfig};

use burn::module::Initializer;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

/// A [`Linear`] layer initialized like BERT's: weights from `N(0, initializer_range)`, zero bias.
pub(crate) fn bert_linear<B: Backend>(
    d_input: usize,
    d_output: usize,
    initializer_range: f64,
    device: &B::Device,
) -> Linear<B> {
    let mut linear = LinearConfig::new(d_input, d_output)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: initializer_range,
        })
        .init(device);
    linear.bias = Some(Initializer::Zeros.init([d_output], device));
    linear
}
