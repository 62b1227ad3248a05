use burn::prelude::*;

use super::{CrossModalityLayer, CrossModalityLayerConfig};
use crate::bert::{
    BertConfig, BertEmbeddings, BertEncoder, BertEncoderConfig, Pooler, additive_attention_mask,
};

/// Configuration to create a [`TwoStreamEncoder`].
#[derive(Config, Debug)]
pub struct TwoStreamEncoderConfig {
    /// Sizes of the BERT parts (the number of layers comes from the fields below).
    pub bert: BertConfig,
    /// Number of BERT layers on the text stream (`l_layers`).
    pub text_layers: usize,
    /// Number of BERT-style layers on the visual stream (`r_layers`).
    pub visual_layers: usize,
    /// Number of cross-modality layers (`x_layers`).
    pub cross_layers: usize,
}

/// The three outputs of a [`TwoStreamEncoder`].
#[derive(Debug, Clone)]
pub struct TwoStreamOutput<B: Backend> {
    /// Final text states, `[batch, text_len, hidden_size]`.
    pub text: Tensor<B, 3>,
    /// Final visual states, `[batch, visual_len, hidden_size]`.
    pub visual: Tensor<B, 3>,
    /// Pooled output, `tanh(dense(text[:, 0]))`, `[batch, hidden_size]`.
    pub pooled: Tensor<B, 2>,
}

/// LXMERT-style encoder: text embeddings and BERT layers on the text, BERT-style layers on the
/// (already embedded) visual features, then cross-modality layers, and a pooler on the text.
#[derive(Module, Debug)]
pub struct TwoStreamEncoder<B: Backend> {
    /// Text embeddings.
    pub embeddings: BertEmbeddings<B>,
    /// Layers on the text stream.
    pub text_encoder: BertEncoder<B>,
    /// Layers on the visual stream.
    pub visual_encoder: BertEncoder<B>,
    /// Cross-modality layers.
    pub cross_layers: Vec<CrossModalityLayer<B>>,
    /// Pooler of the text stream's first token.
    pub pooler: Pooler<B>,
}

impl TwoStreamEncoderConfig {
    /// Initializes a [`TwoStreamEncoder`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TwoStreamEncoder<B> {
        let layer = self.bert.layer_config();
        let cross_layer = CrossModalityLayerConfig::new(
            self.bert.attention_block_config(),
            self.bert.feed_forward_config(),
        );
        TwoStreamEncoder {
            embeddings: self.bert.embeddings_config().init(device),
            text_encoder: BertEncoderConfig::new(layer.clone(), self.text_layers).init(device),
            visual_encoder: BertEncoderConfig::new(layer, self.visual_layers).init(device),
            cross_layers: (0..self.cross_layers)
                .map(|_| cross_layer.init(device))
                .collect(),
            pooler: self.bert.pooler_config().init(device),
        }
    }
}

impl<B: Backend> TwoStreamEncoder<B> {
    /// Encodes token ids and visual features.
    ///
    /// Masks use `1` for positions to attend and `0` for padding; without `visual_mask`
    /// every visual position is attended.
    ///
    /// # Shapes
    /// - input_ids: `[batch, text_len]`
    /// - text_mask: `[batch, text_len]`
    /// - visual: `[batch, visual_len, hidden_size]`
    /// - visual_mask: `[batch, visual_len]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        text_mask: Tensor<B, 2>,
        visual: Tensor<B, 3>,
        visual_mask: Option<Tensor<B, 2>>,
    ) -> TwoStreamOutput<B> {
        let text = self.embeddings.forward(input_ids);
        self.forward_embedded(text, text_mask, visual, visual_mask)
    }

    /// Encodes already embedded text (the output of [`BertEmbeddings`]) and visual features,
    /// as [`forward`](Self::forward) does after its embedding step.
    ///
    /// # Shapes
    /// - text: `[batch, text_len, hidden_size]`
    /// - text_mask: `[batch, text_len]`
    /// - visual: `[batch, visual_len, hidden_size]`
    /// - visual_mask: `[batch, visual_len]`
    pub fn forward_embedded(
        &self,
        text: Tensor<B, 3>,
        text_mask: Tensor<B, 2>,
        visual: Tensor<B, 3>,
        visual_mask: Option<Tensor<B, 2>>,
    ) -> TwoStreamOutput<B> {
        let text_mask = Some(additive_attention_mask(text_mask));
        let visual_mask = visual_mask.map(additive_attention_mask);

        let text = self.text_encoder.forward(text, text_mask.clone());
        let visual = self.visual_encoder.forward(visual, visual_mask.clone());
        let (text, visual) =
            self.cross_layers
                .iter()
                .fold((text, visual), |(text, visual), layer| {
                    layer.forward(text, text_mask.clone(), visual, visual_mask.clone())
                });
        TwoStreamOutput {
            pooled: self.pooler.forward(text.clone()),
            text,
            visual,
        }
    }
}
