use burn::prelude::*;

use crate::bert::{AttentionBlock, AttentionBlockConfig, FeedForward, FeedForwardConfig};

/// Configuration to create a [`CrossModalityLayer`].
#[derive(Config, Debug)]
pub struct CrossModalityLayerConfig {
    /// Configuration of the cross- and self-attention sub-layers.
    pub attention: AttentionBlockConfig,
    /// Configuration of the feed-forward sub-layers.
    pub feed_forward: FeedForwardConfig,
}

/// One LXMERT cross-modality layer (`LxmertXLayer`).
///
/// 1. Cross-attention, one block with the same weights used in both directions: text queries
///    the visual stream, and the visual stream queries the text (both from the layer inputs).
/// 2. Self-attention on each stream.
/// 3. Feed-forward on each stream.
#[derive(Module, Debug)]
pub struct CrossModalityLayer<B: Backend> {
    /// Cross-attention shared by both directions (`visual_attention`).
    pub cross_attention: AttentionBlock<B>,
    /// Self-attention of the text stream (`lang_self_att`).
    pub text_self_attention: AttentionBlock<B>,
    /// Self-attention of the visual stream (`visn_self_att`).
    pub visual_self_attention: AttentionBlock<B>,
    /// Feed-forward of the text stream (`lang_inter` + `lang_output`).
    pub text_feed_forward: FeedForward<B>,
    /// Feed-forward of the visual stream (`visn_inter` + `visn_output`).
    pub visual_feed_forward: FeedForward<B>,
}

impl CrossModalityLayerConfig {
    /// Initializes a [`CrossModalityLayer`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> CrossModalityLayer<B> {
        CrossModalityLayer {
            cross_attention: self.attention.init(device),
            text_self_attention: self.attention.init(device),
            visual_self_attention: self.attention.init(device),
            text_feed_forward: self.feed_forward.init(device),
            visual_feed_forward: self.feed_forward.init(device),
        }
    }
}

impl<B: Backend> CrossModalityLayer<B> {
    /// Applies the layer to both streams; returns the new `(text, visual)` states.
    ///
    /// # Shapes
    /// - text: `[batch, text_len, hidden_size]`
    /// - text_mask: additive, e.g. `[batch, 1, 1, text_len]`
    /// - visual: `[batch, visual_len, hidden_size]`
    /// - visual_mask: additive, e.g. `[batch, 1, 1, visual_len]`
    /// - output: `([batch, text_len, hidden_size], [batch, visual_len, hidden_size])`
    pub fn forward(
        &self,
        text: Tensor<B, 3>,
        text_mask: Option<Tensor<B, 4>>,
        visual: Tensor<B, 3>,
        visual_mask: Option<Tensor<B, 4>>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let text_crossed =
            self.cross_attention
                .forward(text.clone(), visual.clone(), visual_mask.clone());
        let visual_crossed = self
            .cross_attention
            .forward(visual, text, text_mask.clone());

        let text = self
            .text_self_attention
            .forward(text_crossed.clone(), text_crossed, text_mask);
        let visual =
            self.visual_self_attention
                .forward(visual_crossed.clone(), visual_crossed, visual_mask);

        (
            self.text_feed_forward.forward(text),
            self.visual_feed_forward.forward(visual),
        )
    }
}
