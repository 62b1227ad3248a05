//! Dropout whose mask is drawn in parallel on the CPU.
//!
//! Burn's `Dropout` draws its Bernoulli mask one value at a time, from one generator behind a
//! lock, then multiplies twice (by the mask, then by `1 / keep`); under training with autodiff
//! on the CPU, that drawing took about 15% of a tiny-preset step. Here the mask values (0 or
//! `1 / keep`) come from a counter-based hash of one seed drawn from Burn's generator (so
//! `B::seed` still makes runs reproducible, whatever the number of threads), in parallel, and
//! the input is multiplied once. Other backends (CUDA) keep Burn's own dropout, whose mask is
//! drawn on the device.

use std::any::TypeId;

use burn::backend::{Autodiff, Flex};
use burn::nn::Dropout;
use burn::prelude::*;
use burn::tensor::Distribution;
use rayon::prelude::*;

use super::parallel;

/// Mask values per rayon task.
const TASK_VALUES: usize = 1 << 15;

/// `dropout.forward(input)`: the identity outside training (no autodiff) or with probability 0.
pub fn dropout<B: Backend, const D: usize>(dropout: &Dropout, input: Tensor<B, D>) -> Tensor<B, D> {
    if !B::ad_enabled(&input.device()) || dropout.prob == 0.0 {
        return input;
    }
    if TypeId::of::<B>() != TypeId::of::<Autodiff<Flex>>() {
        return dropout.forward(input);
    }
    let device = input.device();
    let shape = input.shape();
    let mask = scaled_mask(shape.num_elements(), 1.0 - dropout.prob, seed::<B>(&device));
    input * Tensor::from_data(TensorData::new(mask, shape), &device)
}

/// 64 random bits from Burn's generator of `B` (seeded by `B::seed`): four draws of 16 bits
/// (f32 holds them exactly; Burn's integer tensors may be 32-bit signed).
fn seed<B: Backend>(device: &B::Device) -> u64 {
    Tensor::<B, 1>::random([4], Distribution::Uniform(0.0, 65_536.0), device)
        .into_data()
        .iter::<f32>()
        .fold(0, |seed, draw| (seed << 16) | (draw as u64 & 0xFFFF))
}

/// `count` values, each `1 / keep` with probability `keep` and 0 otherwise.
fn scaled_mask(count: usize, keep: f64, seed: u64) -> Vec<f32> {
    let draw = MaskDraw::new(keep, seed);
    let mut mask = parallel::zeroed(count);
    mask.par_chunks_mut(TASK_VALUES)
        .enumerate()
        .for_each(|(task, values)| {
            let first = (task * TASK_VALUES) as u64;
            for (offset, value) in values.iter_mut().enumerate() {
                *value = draw.value(first + offset as u64);
            }
        });
    mask
}

/// One dropout mask: value `index` is `1 / keep` when the top 32 bits of the hash of
/// `seed + index` lie below `keep * 2^32`, else 0. Fused kernels that apply dropout inside
/// (the attention under training) compute the same values as [`dropout`] on their output's
/// elements, without materializing the mask.
#[derive(Debug, Clone, Copy)]
pub(super) struct MaskDraw {
    seed: u64,
    threshold: u64,
    scale: f32,
}

impl MaskDraw {
    /// The mask keeping values with probability `keep`, drawn with `seed`.
    fn new(keep: f64, seed: u64) -> Self {
        MaskDraw {
            seed,
            threshold: (keep * 4_294_967_296.0) as u64,
            scale: (1.0 / keep) as f32,
        }
    }

    /// The mask [`dropout`] would draw now for `layer` on `device` (`None` when it would not
    /// drop anything: probability 0).
    pub(super) fn of<B: Backend>(layer: &Dropout, device: &B::Device) -> Option<Self> {
        (layer.prob > 0.0).then(|| MaskDraw::new(1.0 - layer.prob, seed::<B>(device)))
    }

    /// Value `index` of the mask.
    #[inline(always)]
    pub(super) fn value(&self, index: u64) -> f32 {
        if split_mix(self.seed.wrapping_add(index)) >> 32 < self.threshold {
            self.scale
        } else {
            0.0
        }
    }
}

/// SplitMix64's output function: a bijective mix of a 64-bit counter into 64 random bits.
fn split_mix(counter: u64) -> u64 {
    let mut z = counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_expected_share_scaled() {
        let count = 1_000_000;
        for keep in [0.9, 0.8, 0.5] {
            let mask = scaled_mask(count, keep, 7);
            let kept = mask.iter().filter(|&&value| value != 0.0).count();
            let expected = keep * count as f64;
            // 5 standard deviations of a binomial count.
            let tolerance = 5.0 * (count as f64 * keep * (1.0 - keep)).sqrt();
            assert!(
                (kept as f64 - expected).abs() < tolerance,
                "keep {keep}: {kept}"
            );
            assert!(
                mask.iter()
                    .all(|&value| value == 0.0 || value == (1.0 / keep) as f32)
            );
        }
    }

    #[test]
    fn masks_depend_on_the_seed_and_nothing_else() {
        assert_eq!(scaled_mask(100_000, 0.9, 1), scaled_mask(100_000, 0.9, 1));
        assert_ne!(scaled_mask(100_000, 0.9, 1), scaled_mask(100_000, 0.9, 2));
        // Neighbouring values are independent: no long runs of drops.
        let mask = scaled_mask(100_000, 0.5, 3);
        let longest = mask
            .split(|&value| value != 0.0)
            .map(<[f32]>::len)
            .max()
            .unwrap();
        assert!(longest < 40, "{longest}");
    }

    #[test]
    fn is_the_identity_without_autodiff_and_draws_on_autodiff_flex() {
        let device = Default::default();
        let layer = burn::nn::DropoutConfig::new(0.5).init();
        let input = Tensor::<Flex, 1>::ones([10_000], &device);
        let output = dropout(&layer, input.clone());
        assert_eq!(output.into_data(), input.into_data());

        type A = Autodiff<Flex>;
        A::seed(&device, 11);
        let input = Tensor::<A, 1>::ones([10_000], &device).require_grad();
        let output = dropout(&layer, input.clone());
        let values = output.clone().into_data().into_vec::<f32>().unwrap();
        let kept = values.iter().filter(|&&value| value == 2.0).count();
        assert_eq!(
            kept + values.iter().filter(|&&value| value == 0.0).count(),
            values.len()
        );
        assert!((4_500..5_500).contains(&kept), "{kept}");
        // The gradient is the mask.
        let grads = output.sum().backward();
        let gradient = input
            .grad(&grads)
            .unwrap()
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        assert_eq!(gradient, values);
        // Seeded: the same mask again.
        A::seed(&device, 11);
        let again = dropout(&layer, Tensor::<A, 1>::ones([10_000], &device));
        assert_eq!(again.into_data().into_vec::<f32>().unwrap(), values);
    }
}
