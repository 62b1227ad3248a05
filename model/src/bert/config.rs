use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use super::{
    AttentionBlockConfig, BertEmbeddingsConfig, BertLayerConfig, FeedForwardConfig, PoolerConfig,
};

/// Hyper-parameters of a BERT model, with HuggingFace `config.json` field names.
///
/// The activation is always the erf GELU, and position embeddings are absolute.
#[derive(Config, Debug)]
pub struct BertConfig {
    /// Size of the vocabulary.
    pub vocab_size: usize,
    /// Size of the hidden states.
    pub hidden_size: usize,
    /// Number of layers of the pretrained encoder.
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    pub num_attention_heads: usize,
    /// Size of the feed-forward hidden layer.
    pub intermediate_size: usize,
    /// Number of position embeddings (maximum sequence length).
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// Dropout of embeddings and residual branches.
    #[config(default = 0.1)]
    pub hidden_dropout_prob: f64,
    /// Dropout of attention probabilities.
    #[config(default = 0.1)]
    pub attention_probs_dropout_prob: f64,
    /// Epsilon of the LayerNorms.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Standard deviation of the random initialization.
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

impl BertConfig {
    /// `hfl/chinese-roberta-wwm-ext`: vocabulary 21128, hidden 768, 12 layers, 12 heads, FFN 3072.
    pub fn chinese_roberta_wwm_ext() -> Self {
        Self::new(21128, 768, 12, 12, 3072)
    }

    /// Parses a HuggingFace `config.json`: unknown keys are ignored, and keys with a default
    /// here (e.g. `layer_norm_eps` in old files) may be absent. Impossible values are refused
    /// (see [`BertConfig::validate`]).
    pub fn from_hf_json(json: &str) -> Result<Self, serde_json::Error> {
        let file: serde_json::Map<String, Value> = serde_json::from_str(json)?;
        let Value::Object(mut merged) = serde_json::to_value(Self::new(0, 0, 0, 0, 0))? else {
            unreachable!("a config serializes to a JSON object");
        };
        for required in [
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ] {
            merged.remove(required);
        }
        merged.extend(file);
        let config: Self = serde_json::from_value(Value::Object(merged))?;
        config.validate().map_err(serde::de::Error::custom)?;
        Ok(config)
    }

    /// Reads a HuggingFace `config.json` file, see [`BertConfig::from_hf_json`].
    pub fn load_hf(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let json = std::fs::read_to_string(path)?;
        Self::from_hf_json(&json).map_err(std::io::Error::other)
    }

    /// Configuration of the embeddings.
    pub fn embeddings_config(&self) -> BertEmbeddingsConfig {
        BertEmbeddingsConfig::new(
            self.vocab_size,
            self.hidden_size,
            self.max_position_embeddings,
            self.type_vocab_size,
        )
        .with_dropout(self.hidden_dropout_prob)
        .with_layer_norm_eps(self.layer_norm_eps)
        .with_initializer_range(self.initializer_range)
    }

    /// Configuration of an attention block (self- or cross-attention).
    pub fn attention_block_config(&self) -> AttentionBlockConfig {
        AttentionBlockConfig::new(self.hidden_size, self.num_attention_heads)
            .with_attention_dropout(self.attention_probs_dropout_prob)
            .with_hidden_dropout(self.hidden_dropout_prob)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_initializer_range(self.initializer_range)
    }

    /// Configuration of a feed-forward block.
    pub fn feed_forward_config(&self) -> FeedForwardConfig {
        FeedForwardConfig::new(self.hidden_size, self.intermediate_size)
            .with_dropout(self.hidden_dropout_prob)
            .with_layer_norm_eps(self.layer_norm_eps)
            .with_initializer_range(self.initializer_range)
    }

    /// Configuration of one encoder layer.
    pub fn layer_config(&self) -> BertLayerConfig {
        BertLayerConfig::new(self.attention_block_config(), self.feed_forward_config())
    }

    /// Configuration of the pooler.
    pub fn pooler_config(&self) -> PoolerConfig {
        PoolerConfig::new(self.hidden_size).with_initializer_range(self.initializer_range)
    }
}
