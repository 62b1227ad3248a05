//! Partitioning of a feature map into square windows and back, as in the official Swin code.

use burn::prelude::*;

/// Splits a feature map into non-overlapping `window x window` windows.
///
/// Windows are ordered row-major over the map and the tokens of a window row-major inside it.
///
/// # Shapes
/// - map: `[batch, height, width, channels]`
/// - output: `[batch * (height / window) * (width / window), window * window, channels]`
pub fn window_partition<B: Backend>(map: Tensor<B, 4>, window: usize) -> Tensor<B, 3> {
    let [batch, height, width, channels] = map.dims();
    map.reshape([
        batch,
        height / window,
        window,
        width / window,
        window,
        channels,
    ])
    .permute([0, 1, 3, 2, 4, 5])
    .reshape([
        batch * (height / window) * (width / window),
        window * window,
        channels,
    ])
}

/// Inverse of [`window_partition`]: reassembles windows into a `height x width` feature map.
///
/// # Shapes
/// - windows: `[batch * (height / window) * (width / window), window * window, channels]`
/// - output: `[batch, height, width, channels]`
pub fn window_reverse<B: Backend>(
    windows: Tensor<B, 3>,
    window: usize,
    height: usize,
    width: usize,
) -> Tensor<B, 4> {
    let [num_windows, _, channels] = windows.dims();
    let batch = num_windows / ((height / window) * (width / window));
    windows
        .reshape([
            batch,
            height / window,
            width / window,
            window,
            window,
            channels,
        ])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([batch, height, width, channels])
}

/// The token order of the windows of a cyclically shifted map: entry `k` is the index (in the
/// row-major `height x width` map) of the token that [`window_partition`] puts at flat
/// position `k` (window-major, then row-major inside the window) after the map is rolled up-left
/// by `shift` (`torch.roll(x, (-shift, -shift))`). Selecting tokens in this order does the
/// shift and the partition in one gather.
pub fn shifted_window_order(resolution: [usize; 2], window: usize, shift: usize) -> Vec<i64> {
    let [height, width] = resolution;
    let mut order = Vec::with_capacity(height * width);
    for window_row in 0..height / window {
        for window_col in 0..width / window {
            for row in 0..window {
                for col in 0..window {
                    let y = (window_row * window + row + shift) % height;
                    let x = (window_col * window + col + shift) % width;
                    order.push((y * width + x) as i64);
                }
            }
        }
    }
    order
}

/// The inverse permutation of `order` (which holds each of `0..order.len()` once).
pub fn inverse_order(order: &[i64]) -> Vec<i64> {
    let mut inverse = vec![0; order.len()];
    for (position, &token) in order.iter().enumerate() {
        inverse[token as usize] = position as i64;
    }
    inverse
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    #[test]
    fn shifted_window_order_is_roll_then_partition() {
        let device = Default::default();
        let (height, width, window, shift, channels) = (8, 12, 4, 2, 3);
        let map =
            Tensor::<Flex, 4>::random([2, height, width, channels], Distribution::Default, &device);
        let shift = shift as i64;
        let expected =
            window_partition(map.clone().roll(&[shift, shift], &[1, 2]), window).into_data();
        let order = shifted_window_order([height, width], window, shift as usize);
        let index = |order: Vec<i64>| {
            Tensor::<Flex, 1, Int>::from_data(TensorData::new(order, [height * width]), &device)
        };
        let tokens = map.clone().reshape([2, height * width, channels]);
        let gathered = tokens.clone().select(1, index(order.clone()));
        assert_eq!(
            gathered
                .clone()
                .reshape([
                    2 * height * width / (window * window),
                    window * window,
                    channels
                ])
                .into_data(),
            expected
        );
        let restored = gathered.select(1, index(inverse_order(&order)));
        assert_eq!(restored.into_data(), tokens.into_data());
    }
}
