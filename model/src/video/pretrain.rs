use burn::nn::Linear;
use burn::prelude::*;

use super::{MlmHead, VideoTextEncoder, VisualInput};

/// The two outputs of a [`VideoPretrainModel`].
#[derive(Debug, Clone)]
pub struct PretrainOutput<B: Backend> {
    /// Masked-language-model logits, `[batch, text_len, vocab_size]`.
    pub mlm_logits: Tensor<B, 3>,
    /// Image-text matching logits, `[batch, 1]`.
    pub itm_logits: Tensor<B, 2>,
}

/// The pre-training model: [`VideoTextEncoder`] with an MLM head on the text states (decoder
/// tied to the word embeddings) and an image-text matching head on the pooled output.
///
/// It also holds the reference's next-sentence head (`nsp_head`), which no forward pass uses.
#[derive(Module, Debug)]
pub struct VideoPretrainModel<B: Backend> {
    /// Backbone, projection and two-stream encoder.
    pub encoder: VideoTextEncoder<B>,
    /// Masked-language-model head.
    pub mlm_head: MlmHead<B>,
    /// Image-text matching head `hidden -> 1`.
    pub itm_head: Linear<B>,
    /// Next-sentence head `hidden -> 2` (`BertForPreTraining`'s `cls.seq_relationship`). The
    /// reference's pre-training model has it, and so do its checkpoints, but neither its forward
    /// pass nor [`forward`](Self::forward) uses it. Kept so that checkpoints round-trip: imported
    /// when a checkpoint has it (a reference checkpoint or a HuggingFace BERT), left as
    /// initialised otherwise, and exported under the reference's name.
    pub nsp_head: Linear<B>,
}

impl<B: Backend> VideoPretrainModel<B> {
    /// MLM and ITM logits of a batch of videos.
    ///
    /// # Shapes
    /// - input_ids, text_mask: `[batch, text_len]`
    /// - visual: see [`VisualInput`]
    /// - frame_mask: `[batch, frames]` (the reference passes none in pre-training)
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        text_mask: Tensor<B, 2>,
        visual: VisualInput<B>,
        frame_mask: Option<Tensor<B, 2>>,
    ) -> PretrainOutput<B> {
        let encoded = self
            .encoder
            .forward(input_ids, text_mask, visual, frame_mask);
        let word_embeddings = self
            .encoder
            .two_stream
            .embeddings
            .word_embeddings
            .weight
            .val();
        PretrainOutput {
            mlm_logits: self.mlm_head.forward(encoded.text, word_embeddings),
            itm_logits: self.itm_head.forward(encoded.pooled),
        }
    }
}
