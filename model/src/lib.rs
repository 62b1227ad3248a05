//! Models of vidcls on Burn: a Swin Transformer visual backbone, BERT blocks and an
//! LXMERT-style two-stream (text/visual) encoder with cross-modality layers, assembled into a
//! video classifier and a pre-training model, plus weight import/export with the PyTorch
//! reference's state-dict names ([`loader`]).
#![warn(missing_docs)]

pub mod bert;
pub mod cross_modality;
pub mod kernels;
pub mod layer_norm;
pub mod loader;
pub mod swin;
pub mod validate;
pub mod video;

pub use bert::BertConfig;
pub use cross_modality::{TwoStreamEncoder, TwoStreamEncoderConfig, TwoStreamOutput};
pub use swin::{SwinConfig, SwinTransformer};
pub use video::{
    PretrainOutput, VideoClassifier, VideoModelConfig, VideoPretrainModel, VideoTextEncoder,
    VideoTextEncoderConfig, VisualInput,
};
