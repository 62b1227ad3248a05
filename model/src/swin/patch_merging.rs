use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::kernels;
use crate::layer_norm::{LayerNorm, LayerNormConfig};

/// Configuration to create a [`PatchMerging`] block.
#[derive(Config, Debug)]
pub struct PatchMergingConfig {
    /// Size of the input token features (`C`).
    pub d_model: usize,
    /// Height and width of the input token map (both even).
    pub input_resolution: [usize; 2],
}

/// Downsampling between Swin stages: each 2x2 group of tokens is concatenated into one token of
/// `4C` features, normalized, and projected to `2C` features without bias.
///
/// The concatenation order is the official one: (even row, even col), (odd row, even col),
/// (even row, odd col), (odd row, odd col).
#[derive(Module, Debug)]
pub struct PatchMerging<B: Backend> {
    /// LayerNorm over the `4C` concatenated features.
    pub norm: LayerNorm<B>,
    /// Projection `4C -> 2C`, without bias.
    pub reduction: Linear<B>,
    /// Map token of each position of the merged order, see [`merge_order`]; derived from the
    /// configuration, not persisted.
    merge_order: Tensor<B, 1, Int>,
}

/// The order of the tokens of a row-major `height x width` map in which each run of four is
/// one 2x2 group in the official concatenation order, groups row-major: selecting the tokens
/// in this order and viewing each run of four as one token concatenates the groups.
fn merge_order([height, width]: [usize; 2]) -> Vec<i64> {
    let mut order = Vec::with_capacity(height * width);
    for group_row in 0..height / 2 {
        for group_column in 0..width / 2 {
            for (row, column) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let token = (2 * group_row + row) * width + 2 * group_column + column;
                order.push(token as i64);
            }
        }
    }
    order
}

impl PatchMergingConfig {
    /// Initializes a [`PatchMerging`] block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> PatchMerging<B> {
        let [height, width] = self.input_resolution;
        assert!(
            height % 2 == 0 && width % 2 == 0,
            "patch merging needs an even token map, got {height}x{width}"
        );
        PatchMerging {
            norm: LayerNormConfig::new(4 * self.d_model).init(device),
            reduction: LinearConfig::new(4 * self.d_model, 2 * self.d_model)
                .with_bias(false)
                .init(device),
            merge_order: Tensor::from_data(
                TensorData::new(merge_order(self.input_resolution), [height * width]),
                device,
            ),
        }
    }
}

impl<B: Backend> PatchMerging<B> {
    /// Halves the resolution of a row-major token map and doubles its features.
    ///
    /// # Shapes
    /// - tokens: `[batch, height * width, C]`
    /// - output: `[batch, (height / 2) * (width / 2), 2C]`
    pub fn forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, tokens_in, channels] = tokens.dims();
        let merged = kernels::permute_tokens(tokens, self.merge_order.clone()).reshape([
            batch,
            tokens_in / 4,
            4 * channels,
        ]);
        kernels::linear(&self.reduction, self.norm.forward(merged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    #[test]
    fn merge_order_concatenates_the_official_groups() {
        let device = Default::default();
        let (height, width, channels) = (4, 6, 3);
        let map =
            Tensor::<Flex, 4>::random([2, height, width, channels], Distribution::Default, &device);
        // timm: x0 = x[:, 0::2, 0::2], x1 = x[:, 1::2, 0::2], x2 = x[:, 0::2, 1::2],
        // x3 = x[:, 1::2, 1::2], concatenated on the features.
        let part = |row: usize, column: usize| {
            let rows = Tensor::<Flex, 1, Int>::arange_step(row as i64..height as i64, 2, &device);
            let columns =
                Tensor::<Flex, 1, Int>::arange_step(column as i64..width as i64, 2, &device);
            map.clone().select(1, rows).select(2, columns)
        };
        let expected = Tensor::cat(vec![part(0, 0), part(1, 0), part(0, 1), part(1, 1)], 3)
            .reshape([2, height * width / 4, 4 * channels]);
        let order = Tensor::<Flex, 1, Int>::from_data(
            TensorData::new(merge_order([height, width]), [height * width]),
            &device,
        );
        let merged = map
            .reshape([2, height * width, channels])
            .select(1, order)
            .reshape([2, height * width / 4, 4 * channels]);
        assert_eq!(merged.into_data(), expected.into_data());
    }
}
