//! The fine-tuning loss.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Mean cross-entropy of `logits` against `labels` with label smoothing `smoothing`, as
/// PyTorch's `nn.CrossEntropyLoss(label_smoothing=smoothing)`: per sample
/// `(1 - s) * -log p[label] + s * mean over classes of -log p[class]`.
///
/// # Shapes
/// - logits: `[batch, classes]`
/// - labels: `[batch]`
/// - output: `[1]`
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    smoothing: f64,
) -> Tensor<B, 1> {
    let [batch, _] = logits.dims();
    let log_probs = log_softmax(logits, 1);
    let nll = log_probs
        .clone()
        .gather(1, labels.reshape([batch, 1]))
        .neg();
    let loss = if smoothing > 0.0 {
        let uniform = log_probs.mean_dim(1).neg();
        nll.mul_scalar(1.0 - smoothing) + uniform.mul_scalar(smoothing)
    } else {
        nll
    };
    loss.mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn matches_a_hand_computation() {
        let device = Default::default();
        let logits = Tensor::<Flex, 2>::from_floats([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], &device);
        let labels = Tensor::<Flex, 1, Int>::from_ints([1, 0], &device);
        let log_probs = |row: [f64; 3]| {
            let norm = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            row.map(|v| v - norm)
        };
        let (a, b) = (log_probs([1.0, 2.0, 0.5]), log_probs([0.0, 0.0, 3.0]));
        let smoothing = 0.1;
        let per_sample = |lp: [f64; 3], label: usize| {
            (1.0 - smoothing) * -lp[label] + smoothing * -(lp.iter().sum::<f64>() / 3.0)
        };
        let expected = (per_sample(a, 1) + per_sample(b, 0)) / 2.0;
        let loss: f32 = cross_entropy(logits.clone(), labels.clone(), smoothing).into_scalar();
        assert!(
            (loss as f64 - expected).abs() < 1e-6,
            "{loss} vs {expected}"
        );
        let plain: f32 = cross_entropy(logits, labels, 0.0).into_scalar();
        assert!((plain as f64 - (-a[1] - b[0]) / 2.0).abs() < 1e-6);
    }
}
