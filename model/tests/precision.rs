//! The model's matrix products in bf16 and f16 (`MatmulPrecision`): their inputs and weights
//! rounded to the precision, f32 weights and gradients, and everything else in f32. Checked
//! against products computed here in f64 from inputs rounded with the `half` crate, and, for a
//! whole model, against its f32 logits.

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::{DType, Distribution, bf16, f16};
use vidcls_model::VideoModelConfig;
use vidcls_model::kernels::{self, AttentionInput, MatmulPrecision};

type Inference = Flex;
type Training = Autodiff<Flex>;

const REDUCED: [MatmulPrecision; 2] = [MatmulPrecision::Bf16, MatmulPrecision::F16];

fn random<B: Backend, const D: usize>(shape: [usize; D], seed: u64) -> Tensor<B, D> {
    <Flex as Backend>::seed(&Default::default(), seed);
    let data =
        Tensor::<Flex, D>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
            .into_data();
    Tensor::from_data(data, &Default::default())
}

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    assert_eq!(
        tensor.dtype(),
        DType::F32,
        "a product's output comes back in f32"
    );
    tensor.into_data().to_vec::<f32>().unwrap()
}

/// The largest absolute difference between two equally long value lists.
fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// `value` rounded to `precision` (to nearest, ties to even, as the casts do).
fn round(value: f32, precision: MatmulPrecision) -> f32 {
    match precision {
        MatmulPrecision::F32 => value,
        MatmulPrecision::Bf16 => bf16::from_f32(value).to_f32(),
        MatmulPrecision::F16 => f16::from_f32(value).to_f32(),
    }
}

/// The unit roundoff of `precision`'s significand.
fn unit(precision: MatmulPrecision) -> f64 {
    match precision {
        MatmulPrecision::F32 => f64::from(f32::EPSILON) / 2.0,
        MatmulPrecision::Bf16 => 2f64.powi(-8),
        MatmulPrecision::F16 => 2f64.powi(-11),
    }
}

/// `a [m, k] x b [k, n]` in f64 from the operands rounded to `precision`, and `|a| x |b|` (the
/// scale of each output's rounding error).
fn reference_product(
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    precision: MatmulPrecision,
) -> (Vec<f64>, Vec<f64>) {
    let mut product = vec![0.0; m * n];
    let mut magnitude = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let term = f64::from(round(a[i * k + p], precision))
                    * f64::from(round(b[p * n + j], precision));
                product[i * n + j] += term;
                magnitude[i * n + j] += term.abs();
            }
        }
    }
    (product, magnitude)
}

/// Asserts that `ours` is the product of operands rounded to `precision`: within the rounding
/// of the output to the precision (composed products return a rounded product) and the f32
/// accumulation; and that it is further from the f32 product than f32 rounding (the operands
/// really were rounded).
fn assert_rounded_product(
    ours: &[f32],
    a: &[f32],
    b: &[f32],
    shape: (usize, usize, usize),
    precision: MatmulPrecision,
) {
    let (rounded, magnitude) = reference_product(a, b, shape, precision);
    let (exact, _) = reference_product(a, b, shape, MatmulPrecision::F32);
    let k = shape.2 as f64;
    let mut from_f32 = 0.0f64;
    for (((&ours, rounded), exact), magnitude) in
        ours.iter().zip(&rounded).zip(&exact).zip(&magnitude)
    {
        let ours = f64::from(ours);
        let allowed = unit(precision) * rounded.abs() + 2.0 * k * 6e-8 * magnitude + 1e-12;
        assert!(
            (ours - rounded).abs() <= allowed,
            "{precision:?}: {ours} is not the rounded operands' product {rounded} (allowed {allowed:e})"
        );
        from_f32 = from_f32.max((ours - exact).abs() / magnitude.max(1e-30));
    }
    assert!(
        from_f32 > 1e-5,
        "{precision:?}: the product is the f32 one (relative {from_f32:e}): nothing was rounded"
    );
}

fn layer<B: Backend>(weight: Tensor<B, 2>, bias: Tensor<B, 1>) -> Linear<B> {
    let [d_input, d_output] = weight.dims();
    let mut layer = LinearConfig::new(d_input, d_output).init::<B>(&Default::default());
    layer.weight = Param::from_tensor(weight);
    layer.bias = Some(Param::from_tensor(bias));
    layer
}

/// Linear layers (all three fused variants and the composed one) in bf16 and f16, in inference
/// and under training: the product of rounded operands, plus the bias in f32.
#[test]
fn linear_layers_multiply_rounded_operands() {
    fn check<B: Backend>(precision: MatmulPrecision) {
        let (m, n, k) = (6, 40, 72);
        let input: Tensor<B, 2> = random([m, k], 1);
        let weight: Tensor<B, 2> = random([k, n], 2);
        let bias: Tensor<B, 1> = random([n], 3);
        let (a, b) = (values(input.clone()), values(weight.clone()));
        let bias_values = values(bias.clone());
        let layer = layer(weight, bias);
        let without_bias = |output: Vec<f32>| -> Vec<f32> {
            output
                .chunks(n)
                .flat_map(|row| row.iter().zip(&bias_values).map(|(o, b)| o - b))
                .collect()
        };
        precision.scope(|| {
            let plain = kernels::linear(&layer, input.clone());
            let bias = layer.bias.as_ref().map(|bias| bias.val());
            let composed = kernels::composed_linear(input.clone(), layer.weight.val(), bias);
            let residual =
                kernels::linear_residual(&layer, input.clone(), plain.zeros_like(), |x| x);
            for output in [plain, composed, residual] {
                assert_rounded_product(&without_bias(values(output)), &a, &b, (m, n, k), precision);
            }
            // The GELU's input is the rounded product: its output is close to the GELU of
            // the f32 product, not equal to it.
            let gelu = values(kernels::linear_gelu(&layer, input.clone()));
            let f32_gelu =
                MatmulPrecision::F32.scope(|| values(kernels::linear_gelu(&layer, input)));
            let worst = max_difference(&gelu, &f32_gelu);
            assert!(
                worst > 0.0 && worst < 0.5,
                "{precision:?}: GELU off by {worst}"
            );
        });
    }
    for precision in REDUCED {
        // CPU inference in bf16 takes the fused kernel, which rounds only where the CPU has
        // AVX512-BF16.
        if precision.effective() == precision {
            check::<Inference>(precision);
        }
        check::<Training>(precision);
    }
}

/// Feed-forward blocks (`kernels::mlp`: fused in bf16 CPU inference, composed otherwise) in
/// bf16 and f16: `residual + fc2(gelu(fc1(x)))` with both products' operands rounded, the
/// hidden values rounded as the second product's input; computed here in f64 (the GELU by
/// Burn's own f32 `gelu`).
#[test]
fn feed_forward_blocks_round_both_products() {
    fn check<B: Backend>(precision: MatmulPrecision) {
        // Rows over several tasks of the fused kernel; odd widths (edge columns, odd k).
        let (m, k, hidden, n) = (150, 37, 70, 37);
        let input: Tensor<B, 2> = random([m, k], 21);
        let residual: Tensor<B, 2> = random([m, n], 22);
        let fc1 = layer(random([k, hidden], 23), random([hidden], 24));
        let fc2 = layer(random([hidden, n], 25), random([n], 26));
        let output = precision.scope(|| {
            values(kernels::mlp(
                &fc1,
                &fc2,
                input.clone(),
                residual.clone(),
                |x| x,
            ))
        });
        let bias = |layer: &Linear<B>| values(layer.bias.as_ref().unwrap().val());
        let (first, _) = reference_product(
            &values(input),
            &values(fc1.weight.val()),
            (m, hidden, k),
            precision,
        );
        let pre: Vec<f32> = first
            .iter()
            .zip(bias(&fc1).iter().cycle())
            .map(|(product, bias)| (product + f64::from(*bias)) as f32)
            .collect();
        let pre = Tensor::<Flex, 1>::from_floats(pre.as_slice(), &Default::default());
        let hidden_values = values(burn::tensor::activation::gelu(pre));
        let (second, magnitude) = reference_product(
            &hidden_values,
            &values(fc2.weight.val()),
            (m, n, hidden),
            precision,
        );
        let (exact, _) = reference_product(
            &hidden_values,
            &values(fc2.weight.val()),
            (m, n, hidden),
            MatmulPrecision::F32,
        );
        let offsets: Vec<f64> = values(residual)
            .iter()
            .zip(bias(&fc2).iter().cycle())
            .map(|(residual, bias)| f64::from(*residual) + f64::from(*bias))
            .collect();
        let mut from_f32 = 0.0f64;
        for (index, &ours) in output.iter().enumerate() {
            let expected = second[index] + offsets[index];
            // The rounding of the hidden values (one unit each) and of composed products'
            // outputs, and the f32 accumulation.
            let scale = magnitude[index] + offsets[index].abs();
            let allowed = 4.0 * unit(precision) * scale + 1e-5;
            let ours = f64::from(ours);
            assert!(
                (ours - expected).abs() <= allowed,
                "{precision:?} at {index}: {ours} vs {expected} (allowed {allowed:e})"
            );
            let exact = exact[index] + offsets[index];
            from_f32 = from_f32.max((ours - exact).abs() / scale.max(1e-30));
        }
        assert!(
            from_f32 > 1e-5,
            "{precision:?}: the block's output is the f32 one: nothing was rounded"
        );
    }
    for precision in REDUCED {
        if precision.effective() == precision {
            check::<Inference>(precision);
        }
        check::<Training>(precision);
    }
}

/// Under training in bf16 and f16 the weights and their gradients stay f32, and the gradients
/// are the products of rounded operands (the output's gradient rounded as well).
#[test]
fn gradients_reach_f32_weights() {
    let (m, n, k) = (5, 24, 48);
    for precision in REDUCED {
        let input: Tensor<Training, 2> = random([m, k], 4);
        let weight: Tensor<Training, 2> = random([k, n], 5);
        let upstream: Tensor<Training, 2> = random([m, n], 6);
        let layer = layer(weight.require_grad(), random([n], 7).require_grad());
        let output = precision.scope(|| kernels::linear(&layer, input.clone()));
        let grads = (output * upstream.clone()).sum().backward();
        let weight_grad = layer
            .weight
            .val()
            .grad(&grads)
            .expect("the weight has a gradient");
        assert_eq!(layer.weight.val().dtype(), DType::F32);
        let transposed_input = values(input.transpose());
        // d weight = input^T x upstream, both rounded.
        assert_rounded_product(
            &values(weight_grad),
            &transposed_input,
            &values(upstream.clone()),
            (k, n, m),
            precision,
        );
        // The bias is added in f32: its gradient is the upstream gradient's column sums.
        let bias_grad = values(layer.bias.as_ref().unwrap().val().grad(&grads).unwrap());
        let upstream = values(upstream);
        for (column, grad) in bias_grad.iter().enumerate() {
            let sum: f32 = upstream.iter().skip(column).step_by(n).sum();
            assert!(
                (grad - sum).abs() <= 1e-5 * sum.abs().max(1.0),
                "{precision:?}"
            );
        }
    }
}

/// The composed attention (CUDA's, and the CPU's under training in bf16 or f16): scores and
/// weighted values from rounded operands, softmax in f32: close to f32, not equal to it.
#[test]
fn attention_products_are_rounded() {
    let (batch, queries, keys, heads, head_dim) = (2, 7, 9, 2, 16);
    let input = || AttentionInput::<Training> {
        query: random([batch, queries, heads * head_dim], 8),
        key: random([batch, keys, heads * head_dim], 9),
        value: random([batch, keys, heads * head_dim], 10),
        heads,
        scale: (head_dim as f32).powf(-0.5),
        bias: Some(random([1, heads, 1, keys], 11)),
    };
    let f32_output = values(kernels::attention(input(), None));
    for precision in REDUCED {
        let output = values(precision.scope(|| kernels::attention(input(), None)));
        let worst = max_difference(&output, &f32_output);
        let allowed = 64.0 * unit(precision) as f32;
        assert!(
            worst > 1e-6 && worst < allowed,
            "{precision:?}: attention {worst:e} from f32 (allowed {allowed:e})"
        );
    }
}

/// A whole classifier (tiny preset, dropout off) in bf16 and f16: f32 logits within the
/// precision's rounding of the f32 logits. A product left in f32, or operands of mixed dtypes
/// (which Flex does not check in release builds), would show here.
#[test]
fn a_classifier_in_reduced_precision_stays_close_to_f32() {
    let mut config = VideoModelConfig::tiny();
    config.set_dropout(0.0);
    let device = Default::default();
    let classifier = config.init_classifier::<Training>(&device);
    let [batch, frames, text] = [3, 2, 20];
    let frames: Tensor<Training, 5> = random([batch, frames, 3, 32, 32], 12);
    let input_ids =
        Tensor::<Training, 2>::random([batch, text], Distribution::Uniform(0.0, 99.0), &device)
            .int();
    let text_mask = Tensor::<Training, 2>::ones([batch, text], &device);
    let forward = || {
        values(classifier.forward(
            input_ids.clone(),
            text_mask.clone(),
            vidcls_model::VisualInput::Frames(frames.clone()),
            None,
        ))
    };
    let f32_logits = forward();
    let scale = f32_logits.iter().fold(0.0f32, |max, v| max.max(v.abs()));
    for precision in REDUCED {
        let logits = precision.scope(forward);
        let worst = max_difference(&logits, &f32_logits);
        let relative = worst / scale;
        eprintln!(
            "{precision:?}: max |logits - f32 logits| = {worst:.3e} ({relative:.3e} of the largest)"
        );
        assert!(
            relative > 1e-6 && f64::from(relative) < 32.0 * unit(precision),
            "{precision:?}: logits {relative:e} from f32"
        );
    }
}
