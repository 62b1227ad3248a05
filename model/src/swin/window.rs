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
