//! The fused kernels of `vidcls_model::kernels` against the Burn operations they replace: on the
//! Flex backend (inference) against the same functions on `Autodiff<Flex>` or Burn's own
//! operations, and under training (`Autodiff<Flex>`, where the linear kernels have their own
//! backward pass) against Burn's operations and their gradients.

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use vidcls_model::kernels;

type Fused = Flex;
type Composed = Autodiff<Flex>;

fn random<const D: usize>(shape: [usize; D], seed: u64) -> TensorData {
    <Fused as Backend>::seed(&Default::default(), seed);
    Tensor::<Fused, D>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
        .into_data()
}

fn on<B: Backend, const D: usize>(data: &TensorData) -> Tensor<B, D> {
    Tensor::from_data(data.clone(), &Default::default())
}

fn assert_close<const D: usize>(
    fused: Tensor<Fused, D>,
    composed: Tensor<Composed, D>,
    tolerance: f32,
) {
    let (fused, composed) = (fused.into_data(), composed.into_data());
    assert_eq!(fused.shape, composed.shape);
    let fused = fused.to_vec::<f32>().unwrap();
    let composed = composed.to_vec::<f32>().unwrap();
    let worst = fused
        .iter()
        .zip(&composed)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tolerance, "max |fused - composed| = {worst:e}");
}

/// A linear layer with the given weights: `weight` `[d_input, d_output]`, stored transposed
/// (a strided view, as a PyTorch weight is imported) when `transposed`.
fn linear<B: Backend>(
    weight: &TensorData,
    bias: Option<&TensorData>,
    transposed: bool,
) -> Linear<B> {
    let weight: Tensor<B, 2> = on(weight);
    let weight = if transposed {
        weight.transpose().into_data()
    } else {
        weight.into_data()
    };
    let weight: Tensor<B, 2> = on(&weight);
    let [d_input, d_output] = if transposed {
        let [rows, columns] = weight.dims();
        [columns, rows]
    } else {
        weight.dims()
    };
    let mut layer = LinearConfig::new(d_input, d_output)
        .with_bias(bias.is_some())
        .init::<B>(&Default::default());
    layer.weight = Param::from_tensor(if transposed {
        weight.transpose()
    } else {
        weight
    });
    layer.bias = bias.map(|bias| Param::from_tensor(on(bias)));
    layer
}

#[test]
fn linear_variants_match_burn() {
    let (input, residual) = (random([2, 9, 24], 2), random([2, 9, 40], 3));
    let (weight, bias) = (random([24, 40], 4), random([40], 5));
    for transposed in [false, true] {
        for bias in [None, Some(&bias)] {
            let fused = linear::<Fused>(&weight, bias, transposed);
            let composed = linear::<Composed>(&weight, bias, transposed);
            let input = || on::<Composed, 3>(&input);
            assert_close(
                kernels::linear(&fused, on::<_, 3>(&input().into_data())),
                composed.forward(input()),
                1e-5,
            );
            assert_close(
                kernels::linear_gelu(&fused, on::<_, 3>(&input().into_data())),
                burn::tensor::activation::gelu(composed.forward(input())),
                1e-5,
            );
            assert_close(
                kernels::linear_residual(
                    &fused,
                    on::<_, 3>(&input().into_data()),
                    on(&residual),
                    |x| x,
                ),
                on::<Composed, 3>(&residual) + composed.forward(input()),
                1e-5,
            );
        }
    }
}

/// The largest difference between two tensors' values, relative to the largest magnitude.
fn relative_difference<const D: usize>(
    ours: Tensor<Composed, D>,
    burn: Tensor<Composed, D>,
) -> f32 {
    let (ours, burn) = (ours.into_data(), burn.into_data());
    assert_eq!(ours.shape, burn.shape);
    let (ours, burn) = (ours.to_vec::<f32>().unwrap(), burn.to_vec::<f32>().unwrap());
    let scale = burn.iter().fold(0.0f32, |max, value| max.max(value.abs()));
    let worst = ours
        .iter()
        .zip(&burn)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    worst / scale.max(f32::MIN_POSITIVE)
}

/// Under training, the linear kernels' values and gradients (input, weight, bias) against
/// Burn's operations and autodiff, with a weighted loss so that every output matters.
#[test]
fn linear_kernels_train_as_burn() {
    type Kernel = fn(&Linear<Composed>, Tensor<Composed, 3>) -> Tensor<Composed, 3>;
    type Reference = fn(&Linear<Composed>, Tensor<Composed, 3>) -> Tensor<Composed, 3>;
    let cases: [(&str, Kernel, Reference); 3] = [
        (
            "linear",
            |layer, x| kernels::linear(layer, x),
            |layer, x| layer.forward(x),
        ),
        (
            "linear_gelu",
            |layer, x| kernels::linear_gelu(layer, x),
            |layer, x| burn::tensor::activation::gelu(layer.forward(x)),
        ),
        (
            "linear_residual",
            |layer, x| {
                let residual = x.clone().slice([0..2, 0..9, 0..16]).repeat_dim(2, 2);
                kernels::linear_residual(layer, x, residual, |y| y)
            },
            |layer, x| x.clone().slice([0..2, 0..9, 0..16]).repeat_dim(2, 2) + layer.forward(x),
        ),
    ];
    let (input, weight, bias) = (random([2, 9, 24], 6), random([24, 32], 7), random([32], 8));
    let loss_weights = random([2, 9, 32], 9);
    for transposed in [false, true] {
        for (name, kernel, reference) in cases {
            let run = |f: fn(&Linear<Composed>, Tensor<Composed, 3>) -> Tensor<Composed, 3>| {
                let layer = linear::<Composed>(&weight, Some(&bias), transposed);
                let x = on::<Composed, 3>(&input).require_grad();
                let output = f(&layer, x.clone());
                let grads = (output.clone() * on::<Composed, 3>(&loss_weights))
                    .sum()
                    .backward();
                let weight_grad = layer.weight.grad(&grads).unwrap();
                let bias_grad = layer.bias.as_ref().unwrap().grad(&grads).unwrap();
                (output, x.grad(&grads).unwrap(), weight_grad, bias_grad)
            };
            let (ours, theirs) = (run(kernel), run(reference));
            let differences = [
                relative_difference(ours.0, theirs.0),
                relative_difference(Tensor::from_inner(ours.1), Tensor::from_inner(theirs.1)),
                relative_difference(Tensor::from_inner(ours.2), Tensor::from_inner(theirs.2)),
                relative_difference(
                    Tensor::<Composed, 1>::from_inner(ours.3).unsqueeze::<3>(),
                    Tensor::<Composed, 1>::from_inner(theirs.3).unsqueeze::<3>(),
                ),
            ];
            for (what, difference) in ["output", "input grad", "weight grad", "bias grad"]
                .iter()
                .zip(differences)
            {
                assert!(
                    difference < 1e-5,
                    "{name} (transposed {transposed}) {what}: {difference:e}"
                );
            }
        }
    }
}

/// The fused attention against Burn's composition on the same inputs, in inference (Flex) and
/// in training (`Autodiff<Flex>`: the output and the gradients of the query, key, value and
/// bias, with attention dropout `dropout`); `joint` passes query, key and value as column
/// blocks (strided views) of one `[batch, tokens, 3 * features]` tensor.
fn check_attention(
    batch: usize,
    queries: usize,
    keys: usize,
    heads: usize,
    head_dim: usize,
    bias_shape: Option<[usize; 4]>,
    joint: bool,
) {
    for dropout in [0.0, 0.3] {
        check_attention_with(
            (batch, queries, keys, heads, head_dim),
            bias_shape,
            joint,
            dropout,
        );
    }
}

fn check_attention_with(
    (batch, queries, keys, heads, head_dim): (usize, usize, usize, usize, usize),
    bias_shape: Option<[usize; 4]>,
    joint: bool,
    dropout: f64,
) {
    let features = heads * head_dim;
    let scale = (head_dim as f32).powf(-0.5);
    let data = AttentionData {
        query: random([batch, queries, features], 10),
        key: random([batch, keys, features], 11),
        value: random([batch, keys, features], 12),
        joint: joint.then(|| random([batch, queries, 3 * features], 13)),
        bias: bias_shape.map(|shape| random(shape, 14)),
        heads,
        scale,
    };
    if dropout == 0.0 {
        // The fused calls first: they check the bias's shape, the composition does not.
        let calls = [Call::Split(kernels::attention), Call::Joint];
        let fused: Vec<_> = calls[..if joint { 2 } else { 1 }]
            .iter()
            .map(|call| data.run::<Fused>(*call, None).0)
            .collect();
        let composed = data
            .run::<Composed>(Call::Split(kernels::composed_attention), None)
            .0;
        for fused in fused {
            assert_close(fused, composed.clone(), 2e-5);
        }
    }
    let layer = burn::nn::DropoutConfig::new(dropout).init();
    let loss_weights = random([batch, queries, features], 15);
    let train = |call: Call<Composed>| {
        // The same seed, so that both draw the same dropout mask.
        <Composed as Backend>::seed(&Default::default(), 21);
        let (output, inputs) = data.run::<Composed>(call, Some(&layer));
        let grads = (output.clone() * on::<Composed, 3>(&loss_weights))
            .sum()
            .backward();
        let (tokens, bias) = inputs;
        let mut gradients: Vec<Tensor<Composed, 4>> = tokens
            .iter()
            .map(|input| Tensor::from_inner(input.grad(&grads).expect("a gradient")).unsqueeze())
            .collect();
        gradients
            .extend(bias.map(|bias| Tensor::from_inner(bias.grad(&grads).expect("a gradient"))));
        (output, gradients)
    };
    let theirs = train(Call::Split(kernels::composed_attention));
    let mut calls = vec![("attention", Call::Split(kernels::attention))];
    if joint {
        calls.push(("joint_attention", Call::Joint));
    }
    for (name, call) in calls {
        let ours = train(call);
        let case = format!(
            "{name} {:?} dropout {dropout}",
            (batch, queries, keys, heads, head_dim, bias_shape, joint)
        );
        let difference = relative_difference(ours.0, theirs.0.clone());
        assert!(
            difference < 1e-5,
            "{case}: output differs by {difference:e}"
        );
        for (index, (ours, theirs)) in ours.1.into_iter().zip(theirs.1.clone()).enumerate() {
            let difference = relative_difference(ours, theirs);
            assert!(
                difference < 1e-5,
                "{case}: gradient of input {index} differs by {difference:e}"
            );
        }
    }
}

type AttentionFn<B> = fn(kernels::AttentionInput<B>, Option<&burn::nn::Dropout>) -> Tensor<B, 3>;

/// How a check calls an attention.
#[derive(Clone, Copy)]
enum Call<B: Backend> {
    /// With query, key and value (column blocks of the joint tensor when there is one).
    Split(AttentionFn<B>),
    /// `kernels::joint_attention` on the joint tensor.
    Joint,
}

/// The inputs of an attention check.
struct AttentionData {
    query: TensorData,
    key: TensorData,
    value: TensorData,
    joint: Option<TensorData>,
    bias: Option<TensorData>,
    heads: usize,
    scale: f32,
}

impl AttentionData {
    /// The output of `call` and the leaf tensors (query, key and value, or the joint tensor; the
    /// bias), which require gradients under autodiff.
    #[allow(clippy::type_complexity)]
    fn run<B: Backend>(
        &self,
        call: Call<B>,
        dropout: Option<&burn::nn::Dropout>,
    ) -> (Tensor<B, 3>, (Vec<Tensor<B, 3>>, Option<Tensor<B, 4>>)) {
        let leaf = |data: &TensorData| on::<B, 3>(data).require_grad();
        let (query, key, value, leaves) = match &self.joint {
            Some(joint) => {
                let joint = leaf(joint);
                let features = joint.dims()[2] / 3;
                let part = |index: usize| joint.clone().narrow(2, index * features, features);
                (part(0), part(1), part(2), vec![joint])
            }
            None => {
                let [query, key, value] = [&self.query, &self.key, &self.value].map(leaf);
                let leaves = vec![query.clone(), key.clone(), value.clone()];
                (query, key, value, leaves)
            }
        };
        let bias = self
            .bias
            .as_ref()
            .map(|bias| on::<B, 4>(bias).require_grad());
        let output = match call {
            Call::Split(kernel) => {
                let input = kernels::AttentionInput {
                    query,
                    key,
                    value,
                    heads: self.heads,
                    scale: self.scale,
                    bias: bias.clone(),
                };
                kernel(input, dropout)
            }
            Call::Joint => {
                let joint = leaves[0].clone();
                kernels::joint_attention(joint, self.heads, self.scale, bias.clone(), dropout)
            }
        };
        (output, (leaves, bias))
    }
}

#[test]
fn attention_with_a_padding_mask_matches_burn() {
    // BERT: mask [batch, 1, 1, keys]; 13 queries (blocks of 7 and 6), 37 keys (padded to 48),
    // head size 20 (one block of 16 columns and 4 more).
    check_attention(2, 13, 37, 3, 20, Some([2, 1, 1, 37]), false);
    // Cross-attention with more queries than one task, head size 64.
    check_attention(1, 100, 5, 2, 64, Some([1, 1, 1, 5]), false);
    // Keys long enough that the kernel gathers the heads in groups of 3 (3 and 1 here).
    check_attention(1, 5, 600, 4, 16, Some([1, 1, 1, 600]), false);
}

#[test]
fn attention_with_a_per_window_bias_matches_burn() {
    // Swin: windows of 3 images with 4 windows each, a bias per window and head.
    check_attention(12, 9, 9, 2, 32, Some([4, 2, 9, 9]), true);
    // Unshifted windows: one bias for all windows.
    check_attention(6, 16, 16, 3, 16, Some([1, 3, 16, 16]), true);
}

#[test]
fn attention_without_bias_matches_burn() {
    check_attention(3, 17, 17, 1, 8, None, true);
    check_attention(2, 1, 30, 4, 16, None, false);
}

#[test]
#[should_panic(expected = "does not broadcast")]
fn attention_rejects_a_bias_that_does_not_broadcast() {
    // 12 windows cannot repeat a bias of 5.
    check_attention(12, 9, 9, 2, 32, Some([5, 2, 9, 9]), true);
}

#[test]
fn adam_steps_equal_burns_composition_bit_for_bit() {
    // Not a multiple of the kernel's chunk; second moments positive, as they are in training.
    let len = 70_003;
    let (param, grad) = (random([len], 11), random([len], 12));
    let exp_avg = random([len], 13);
    let exp_avg_sq = Tensor::<Fused, 1>::from_data(random([len], 14), &Default::default())
        .powi_scalar(2)
        .into_data();
    let bert_adam = kernels::AdamArithmetic {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-6,
        lr: 5e-5,
        decay: 0.01,
        bias_correction: None,
    };
    let cases = [
        (bert_adam, true),
        (bert_adam, false),
        (
            kernels::AdamArithmetic {
                decay: 0.0,
                ..bert_adam
            },
            true,
        ),
        (
            kernels::AdamArithmetic {
                bias_correction: Some((1.0 - 0.9f64.powi(3), 1.0 - 0.999f64.powi(3))),
                ..bert_adam
            },
            true,
        ),
    ];
    for (arithmetic, with_moments) in cases {
        let step = |moments: Option<(TensorData, TensorData)>| {
            (
                kernels::adam_step::<Fused>(
                    &arithmetic,
                    on(&param),
                    on(&grad),
                    moments.as_ref().map(|(m, v)| (on(m), on(v))),
                ),
                kernels::adam_step::<Composed>(
                    &arithmetic,
                    on(&param),
                    on(&grad),
                    moments.as_ref().map(|(m, v)| (on(m), on(v))),
                ),
            )
        };
        let (fused, composed) = step(with_moments.then(|| (exp_avg.clone(), exp_avg_sq.clone())));
        for (fused, composed) in [
            (fused.param, composed.param),
            (fused.exp_avg, composed.exp_avg),
            (fused.exp_avg_sq, composed.exp_avg_sq),
        ] {
            assert_eq!(
                fused.into_data().to_vec::<f32>().unwrap(),
                composed.into_data().to_vec::<f32>().unwrap(),
                "{arithmetic:?}, moments: {with_moments}"
            );
        }
    }
}

#[test]
fn weighted_sums_equal_burns_composition_bit_for_bit() {
    let (a, b) = (random([3, 70_001], 21), random([3, 70_001], 22));
    let fused = kernels::weighted_sum::<Fused, 2>(on(&a), 0.999, on(&b), 1.0 - 0.999);
    let composed = kernels::weighted_sum::<Composed, 2>(on(&a), 0.999, on(&b), 1.0 - 0.999);
    assert_eq!(fused.dims(), [3, 70_001]);
    assert_eq!(
        fused.into_data().to_vec::<f32>().unwrap(),
        composed.into_data().to_vec::<f32>().unwrap()
    );
}

/// vidcls's `LayerNorm` against `burn::nn::LayerNorm` with the same parameters: under training
/// (the fused kernel) the output and the gradients of the input, scale and shift, with a
/// weighted loss; on Flex (the same pass, without a backward one) the output, also of a
/// transposed view. Rows of several lengths (vector blocks and remainders), more rows than one
/// task holds, inputs off zero mean.
#[test]
fn layer_norm_trains_as_burn() {
    use vidcls_model::layer_norm::LayerNorm;
    for (rows, d_model, epsilon, seed) in
        [(7, 24, 1e-5, 31), (700, 96, 1e-12, 32), (3, 5, 1e-5, 33)]
    {
        let shift = |data: TensorData| on::<Fused, 3>(&data).add_scalar(3.0).into_data();
        let input = shift(random([2, rows, d_model], seed));
        let loss_weights = random([2, rows, d_model], seed + 10);
        let (gamma, beta) = (random([d_model], seed + 20), random([d_model], seed + 30));
        let ours = |device: &_| LayerNorm::<Composed> {
            gamma: Param::from_data(gamma.clone(), device),
            beta: Param::from_data(beta.clone(), device),
            epsilon,
        };
        let mut burns = burn::nn::LayerNormConfig::new(d_model)
            .with_epsilon(epsilon)
            .init::<Composed>(&Default::default());
        burns.gamma = Param::from_data(gamma.clone(), &Default::default());
        burns.beta = Some(Param::from_data(beta.clone(), &Default::default()));
        let run = |forward: &dyn Fn(Tensor<Composed, 3>) -> Tensor<Composed, 3>,
                   [gamma, beta]: [&Param<Tensor<Composed, 1>>; 2]| {
            let x = on::<Composed, 3>(&input).require_grad();
            let output = forward(x.clone());
            let grads = (output.clone() * on::<Composed, 3>(&loss_weights))
                .sum()
                .backward();
            let grad = |param: &Param<Tensor<Composed, 1>>| {
                Tensor::<Composed, 1>::from_inner(param.grad(&grads).unwrap()).unsqueeze::<3>()
            };
            [
                output,
                Tensor::from_inner(x.grad(&grads).unwrap()),
                grad(gamma),
                grad(beta),
            ]
        };
        let ours = ours(&Default::default());
        let expected = run(
            &|x| burns.forward(x),
            [&burns.gamma, burns.beta.as_ref().unwrap()],
        );
        let actual = run(&|x| ours.forward(x), [&ours.gamma, &ours.beta]);
        for ((what, ours), burn) in ["output", "input grad", "gamma grad", "beta grad"]
            .iter()
            .zip(actual)
            .zip(expected.clone())
        {
            let difference = relative_difference(ours, burn);
            assert!(difference < 1e-5, "{rows}x{d_model} {what}: {difference:e}");
        }
        let inference = vidcls_model::layer_norm::LayerNorm::<Fused> {
            gamma: Param::from_data(gamma.clone(), &Default::default()),
            beta: Param::from_data(beta.clone(), &Default::default()),
            epsilon,
        };
        let [burn_output, ..] = expected;
        assert_close(
            inference.forward(on::<Fused, 3>(&input)),
            burn_output.clone(),
            1e-4,
        );
        // The same rows as a strided view: stored `[2, d_model, rows]`, as the patch
        // embedding's convolution leaves its tokens.
        let stored = on::<Fused, 3>(&input).swap_dims(1, 2).into_data();
        let strided = on::<Fused, 3>(&stored).swap_dims(1, 2);
        assert_close(inference.forward(strided), burn_output, 1e-4);
    }
}

/// `permute_tokens` against Burn's `select` with the same order: the output on Flex, and the
/// output and the input's gradient under training (weighted loss); an order that is not a
/// permutation (a repeated token) takes Burn's `select`.
#[test]
fn token_permutations_train_as_burns_select() {
    let (batch, len, features) = (3, 37, 20);
    let input = random([batch, len, features], 41);
    let loss_weights = random([batch, len, features], 42);
    let shuffled: Vec<i64> = (0..len as i64).map(|i| (i * 11 + 5) % len as i64).collect();
    let repeated: Vec<i64> = (0..len as i64).map(|i| i / 2).collect();
    for order in [shuffled, repeated] {
        let index = |device: &_| {
            Tensor::<Composed, 1, Int>::from_data(TensorData::new(order.clone(), [len]), device)
        };
        let run = |permute: &dyn Fn(Tensor<Composed, 3>) -> Tensor<Composed, 3>| {
            let x = on::<Composed, 3>(&input).require_grad();
            let output = permute(x.clone());
            let grads = (output.clone() * on::<Composed, 3>(&loss_weights))
                .sum()
                .backward();
            (output.into_data(), x.grad(&grads).unwrap().into_data())
        };
        let device = Default::default();
        let ours = run(&|x| kernels::permute_tokens(x, index(&device)));
        let burns = run(&|x| x.select(1, index(&device)));
        assert_eq!(ours, burns);
        let inference = kernels::permute_tokens(
            on::<Fused, 3>(&input),
            Tensor::from_data(TensorData::new(order.clone(), [len]), &device),
        );
        assert_eq!(inference.into_data(), burns.0);
    }
}
