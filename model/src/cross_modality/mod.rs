//! LXMERT-style two-stream encoder: BERT text layers, optional visual layers, then
//! cross-modality layers exchanging information between the text and visual streams.

mod cross_modality_layer;
mod two_stream_encoder;

pub use cross_modality_layer::{CrossModalityLayer, CrossModalityLayerConfig};
pub use two_stream_encoder::{TwoStreamEncoder, TwoStreamEncoderConfig, TwoStreamOutput};
