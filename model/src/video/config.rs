use burn::nn::{DropoutConfig, LinearConfig};
use burn::prelude::*;

use super::{MlmHeadConfig, VideoClassifier, VideoPretrainModel, VideoTextEncoderConfig};
use crate::bert::{BertConfig, bert_linear};
use crate::cross_modality::TwoStreamEncoderConfig;
use crate::swin::SwinConfig;

/// Configuration of the video models, serializable to JSON (`save` / `load` of [`Config`]).
#[derive(Config, Debug)]
pub struct VideoModelConfig {
    /// Visual backbone and two-stream encoder.
    pub encoder: VideoTextEncoderConfig,
    /// Number of classes of the classifier.
    #[config(default = 200)]
    pub num_classes: usize,
    /// Dropout before the classifier.
    #[config(default = 0.2)]
    pub classifier_dropout: f64,
}

impl VideoModelConfig {
    /// The reference's sizes: Swin-T, `hfl/chinese-roberta-wwm-ext` BERT (768 hidden),
    /// 12 text layers, no visual layers, 5 cross-modality layers, 200 classes.
    pub fn seed() -> Self {
        let two_stream =
            TwoStreamEncoderConfig::new(BertConfig::chinese_roberta_wwm_ext(), 12, 0, 5);
        Self::new(VideoTextEncoderConfig::new(SwinConfig::tiny(), two_stream))
    }

    /// A tiny model for tests and smoke runs: the micro Swin on 32 px frames, hidden 64
    /// (4 heads, FFN 256) with the full 21128-token vocabulary, 2 text layers, no visual
    /// layers, 1 cross-modality layer, 200 classes.
    pub fn tiny() -> Self {
        let bert = BertConfig::new(21128, 64, 2, 4, 256);
        let two_stream = TwoStreamEncoderConfig::new(bert, 2, 0, 1);
        Self::new(VideoTextEncoderConfig::new(SwinConfig::micro(), two_stream))
    }

    /// Sets every dropout probability of the model (embeddings, attention, residual branches,
    /// classifier) and the stochastic depth rate of the backbone to `probability`; `0` makes
    /// training deterministic (for debugging and parity checks).
    pub fn set_dropout(&mut self, probability: f64) {
        let bert = &mut self.encoder.two_stream.bert;
        bert.hidden_dropout_prob = probability;
        bert.attention_probs_dropout_prob = probability;
        self.encoder.swin.drop_path_rate = probability;
        self.classifier_dropout = probability;
    }

    fn bert(&self) -> &BertConfig {
        &self.encoder.two_stream.bert
    }

    /// Initializes a [`VideoClassifier`] with random weights.
    pub fn init_classifier<B: Backend>(&self, device: &B::Device) -> VideoClassifier<B> {
        VideoClassifier {
            encoder: self.encoder.init(device),
            dropout: DropoutConfig::new(self.classifier_dropout).init(),
            classifier: LinearConfig::new(self.bert().hidden_size, self.num_classes).init(device),
        }
    }

    /// Initializes a [`VideoPretrainModel`] with random weights.
    pub fn init_pretrain<B: Backend>(&self, device: &B::Device) -> VideoPretrainModel<B> {
        let bert = self.bert();
        VideoPretrainModel {
            encoder: self.encoder.init(device),
            mlm_head: MlmHeadConfig::new(bert.hidden_size, bert.vocab_size)
                .with_layer_norm_eps(bert.layer_norm_eps)
                .with_initializer_range(bert.initializer_range)
                .init(device),
            itm_head: LinearConfig::new(bert.hidden_size, 1).init(device),
            nsp_head: bert_linear(bert.hidden_size, 2, bert.initializer_range, device),
        }
    }
}
