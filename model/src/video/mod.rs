//! The video models of the reference: a visual backbone and a two-stream encoder, with a
//! classification head (fine-tuning) or MLM + ITM heads (pre-training).

mod classifier;
mod config;
mod mlm_head;
mod pretrain;
mod video_text_encoder;

pub use classifier::VideoClassifier;
pub use config::VideoModelConfig;
pub use mlm_head::{MlmHead, MlmHeadConfig};
pub use pretrain::{PretrainOutput, VideoPretrainModel};
pub use video_text_encoder::{VideoTextEncoder, VideoTextEncoderConfig, VisualInput};
