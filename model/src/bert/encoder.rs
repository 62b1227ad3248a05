use burn::prelude::*;

use super::{BertLayer, BertLayerConfig};

/// Configuration to create a [`BertEncoder`].
#[derive(Config, Debug)]
pub struct BertEncoderConfig {
    /// Configuration of every layer.
    pub layer: BertLayerConfig,
    /// Number of layers.
    pub num_layers: usize,
}

/// A stack of [`BertLayer`]s.
#[derive(Module, Debug)]
pub struct BertEncoder<B: Backend> {
    /// The layers, applied in order.
    pub layers: Vec<BertLayer<B>>,
}

impl BertEncoderConfig {
    /// Initializes a [`BertEncoder`] with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BertEncoder<B> {
        BertEncoder {
            layers: (0..self.num_layers)
                .map(|_| self.layer.init(device))
                .collect(),
        }
    }
}

impl<B: Backend> BertEncoder<B> {
    /// Applies the layers in order.
    ///
    /// # Shapes
    /// - hidden: `[batch, seq_len, hidden_size]`
    /// - mask: additive, e.g. `[batch, 1, 1, seq_len]`
    /// - output: `[batch, seq_len, hidden_size]`
    pub fn forward(&self, hidden: Tensor<B, 3>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        self.layers
            .iter()
            .fold(hidden, |hidden, layer| layer.forward(hidden, mask.clone()))
    }
}
