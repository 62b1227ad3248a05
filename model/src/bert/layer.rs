use burn::prelude::*;

use super::{AttentionBlock, AttentionBlockConfig, FeedForward, FeedForwardConfig};

/// Configuration to create a [`BertLayer`].
#[derive(Config, Debug)]
pub struct BertLayerConfig {
    /// The self-attention sub-layer.
    pub attention: AttentionBlockConfig,
    /// The feed-forward sub-layer.
    pub feed_forward: FeedForwardConfig,
}

/// One post-LayerNorm BERT encoder layer: self-attention, then feed-forward.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention sub-layer.
    pub self_attention: AttentionBlock<B>,
    /// Feed-forward sub-layer.
    pub feed_forward: FeedForward<B>,
}

impl BertLayerConfig {
    /// Initializes a [`BertLayer`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BertLayer<B> {
        BertLayer {
            self_attention: self.attention.init(device),
            feed_forward: self.feed_forward.init(device),
        }
    }
}

impl<B: Backend> BertLayer<B> {
    /// Applies the layer.
    ///
    /// # Shapes
    /// - hidden: `[batch, seq_len, hidden_size]`
    /// - mask: additive, e.g. `[batch, 1, 1, seq_len]`
    /// - output: `[batch, seq_len, hidden_size]`
    pub fn forward(&self, hidden: Tensor<B, 3>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let attended = self.self_attention.forward(hidden.clone(), hidden, mask);
        self.feed_forward.forward(attended)
    }
}
