//! Layer normalization over the last dimension: on the CPU one multi-threaded pass, which
//! under training (`Autodiff<Flex>`) has a backward pass of its own (Burn's `Backward` trait,
//! as for the linear kernels); elsewhere (CUDA) the backend's own operation.
//!
//! In inference the same pass replaces Flex's own normalization, which zeroes its output on
//! the calling thread before its rows run in parallel: on Swin's first stages that `memset`
//! was most of what one core did while the other waited.
//!
//! Burn's autodiff backend composes the normalization of ten operations (mean, subtraction,
//! square, mean, shift, root, division, scale, shift), and its backward pass of as many
//! again, with reductions for the scale's and shift's gradients; on Flex each is a pass over
//! the activations on one thread, so in a seed training step they were a tenth of the time
//! the rayon threads sat idle. The fused pass computes, per row, the mean `μ` and `σ =
//! sqrt(mean((x − μ)²) + ε)` in two passes as the composition does, then `y = (x − μ) / σ ·
//! γ + β`, and keeps `μ` and `σ`. With `x̂ = (x − μ) / σ`, `dy` the output's gradient and
//! `g = dy ∘ γ`, the backward pass is one pass per row for
//! `dx = (g − mean(g) − x̂ · mean(g ∘ x̂)) / σ`, and the sums over the rows of `dy ∘ x̂` (the
//! scale's gradient) and `dy` (the shift's), accumulated per task and added in task order, so
//! the result does not depend on the threads' schedule.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::flex::{
    contiguous, dims, from_flex, from_flex_or_unchanged, from_training, tensor_of, to_flex,
    to_training, values,
};
use super::linear_training::TrainingTensor;
use super::parallel::{self, TASK_VALUES};

/// `(x − mean(x)) / sqrt(var(x) + epsilon) * gamma + beta` over the last dimension of `input`
/// (the biased variance), as `burn::nn::LayerNorm` computes it.
///
/// # Shapes
/// - input, output: `[..., d_model]`
/// - gamma, beta: `[d_model]`
pub fn layer_norm<B: Backend, const D: usize>(
    input: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, D> {
    let back = |tensor: Result<TrainingTensor, Tensor<B, 1>>| {
        tensor.map_or_else(|unchanged| unchanged, from_training)
    };
    match (to_training(input), to_training(gamma), to_training(beta)) {
        (Ok(input), Ok(gamma), Ok(beta)) => {
            from_training(training_layer_norm(input, gamma, beta, epsilon as f32))
        }
        (input, gamma, beta) => {
            let input = input.map_or_else(|unchanged| unchanged, from_training::<B, D>);
            match (to_flex(input), to_flex(back(gamma)), to_flex(back(beta))) {
                (Ok(input), Ok(gamma), Ok(beta)) => {
                    let operands = Operands {
                        input: contiguous(input),
                        gamma: contiguous(gamma),
                        beta: contiguous(beta),
                        epsilon: epsilon as f32,
                    };
                    from_flex(operands.forward().0)
                }
                (input, gamma, beta) => {
                    Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
                        from_flex_or_unchanged(input).into_primitive().tensor(),
                        from_flex_or_unchanged(gamma).into_primitive().tensor(),
                        Some(from_flex_or_unchanged(beta).into_primitive().tensor()),
                        epsilon,
                    )))
                }
            }
        }
    }
}

/// The fused normalization of `input` with its backward pass.
fn training_layer_norm(
    input: TrainingTensor,
    gamma: TrainingTensor,
    beta: TrainingTensor,
    epsilon: f32,
) -> TrainingTensor {
    let nodes = [input.node.clone(), gamma.node.clone(), beta.node.clone()];
    let operands = Operands {
        input: contiguous(input.primitive),
        gamma: contiguous(gamma.primitive),
        beta: contiguous(beta.primitive),
        epsilon,
    };
    match LayerNormBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (output, statistics) = operands.forward();
            let state = LayerNormState {
                input: operands.input,
                gamma: operands.gamma,
                statistics,
            };
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(operands.forward().0),
    }
}

/// The contiguous tensors of a normalization.
struct Operands {
    input: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f32,
}

/// Rows per rayon task for rows of `row_len` values.
fn rows_per_task(row_len: usize) -> usize {
    (TASK_VALUES / row_len.max(1)).max(1)
}

impl Operands {
    /// The output and each row's `(μ, σ)`.
    fn forward(&self) -> (FlexTensor, Vec<[f32; 2]>) {
        let shape = dims(&self.input);
        let d_model = shape[shape.len() - 1];
        let input = values(&self.input);
        let (gamma, beta) = (values(&self.gamma), values(&self.beta));
        let rows = input.len() / d_model.max(1);
        let mut output = parallel::zeroed(input.len());
        let mut statistics = vec![[0.0f32; 2]; rows];
        if d_model > 0 {
            let chunk_rows = rows_per_task(d_model);
            output
                .par_chunks_mut(chunk_rows * d_model)
                .zip(input.par_chunks(chunk_rows * d_model))
                .zip(statistics.par_chunks_mut(chunk_rows))
                .for_each(|((output, input), statistics)| {
                    pulp::Arch::new().dispatch(ForwardTask {
                        input,
                        output,
                        statistics,
                        gamma,
                        beta,
                        epsilon: self.epsilon,
                    })
                });
        }
        (tensor_of(output, shape), statistics)
    }
}

/// The forward pass of a group of rows.
struct ForwardTask<'a> {
    input: &'a [f32],
    output: &'a mut [f32],
    statistics: &'a mut [[f32; 2]],
    gamma: &'a [f32],
    beta: &'a [f32],
    epsilon: f32,
}

impl pulp::WithSimd for ForwardTask<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let d_model = self.gamma.len();
        for ((input, output), statistics) in self
            .input
            .chunks_exact(d_model)
            .zip(self.output.chunks_exact_mut(d_model))
            .zip(self.statistics.iter_mut())
        {
            let mean = parallel::sum(input) / d_model as f32;
            for (output, &x) in output.iter_mut().zip(input) {
                *output = x - mean;
            }
            let variance = parallel::dot(output, output) / d_model as f32;
            let deviation = (variance + self.epsilon).sqrt();
            for ((output, &gamma), &beta) in output.iter_mut().zip(self.gamma).zip(self.beta) {
                *output = *output / deviation * gamma + beta;
            }
            *statistics = [mean, deviation];
        }
    }
}

/// What the backward pass needs.
#[derive(Debug, Clone)]
struct LayerNormState {
    /// The input, contiguous.
    input: FlexTensor,
    /// The scale, contiguous.
    gamma: FlexTensor,
    /// Each row's `(μ, σ)`.
    statistics: Vec<[f32; 2]>,
}

/// The backward step of [`training_layer_norm`] (parents: input, gamma, beta).
#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<LayerNormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, gamma_node, beta_node] = ops.parents;
        let LayerNormState {
            input,
            gamma,
            statistics,
        } = ops.state;
        let output_gradient = contiguous(grads.consume::<Flex>(&ops.node));
        let shape = dims(&input);
        let d_model = shape[shape.len() - 1];
        let (input, gamma) = (values(&input), values(&gamma));
        let output_gradient = values(&output_gradient);
        let mut input_gradient = parallel::zeroed(input.len());
        let chunk_rows = rows_per_task(d_model);
        // Per task: the partial sums of `dy ∘ x̂` and `dy`, side by side.
        let partial_sums: Vec<Vec<f32>> = if d_model == 0 {
            Vec::new()
        } else {
            input_gradient
                .par_chunks_mut(chunk_rows * d_model)
                .zip(input.par_chunks(chunk_rows * d_model))
                .zip(output_gradient.par_chunks(chunk_rows * d_model))
                .zip(statistics.par_chunks(chunk_rows))
                .map(|(((input_gradient, input), output_gradient), statistics)| {
                    pulp::Arch::new().dispatch(BackwardTask {
                        input,
                        output_gradient,
                        statistics,
                        gamma,
                        input_gradient,
                    })
                })
                .collect()
        };
        let mut sums = vec![0.0f32; 2 * d_model];
        for partial in &partial_sums {
            for (sum, &value) in sums.iter_mut().zip(partial) {
                *sum += value;
            }
        }
        let beta_gradient = sums.split_off(d_model);
        for (node, gradient, shape) in [
            (input_node, input_gradient, shape),
            (gamma_node, sums, vec![d_model]),
            (beta_node, beta_gradient, vec![d_model]),
        ] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, tensor_of(gradient, shape));
            }
        }
    }
}

/// The backward pass of a group of rows: writes their input gradient and returns their sums
/// of `dy ∘ x̂` and of `dy` (`2 * d_model` values).
struct BackwardTask<'a> {
    input: &'a [f32],
    output_gradient: &'a [f32],
    statistics: &'a [[f32; 2]],
    gamma: &'a [f32],
    input_gradient: &'a mut [f32],
}

impl pulp::WithSimd for BackwardTask<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Vec<f32> {
        let d_model = self.gamma.len();
        let mut sums = vec![0.0f32; 2 * d_model];
        let (gamma_sums, beta_sums) = sums.split_at_mut(d_model);
        for (((input, output_gradient), &[mean, deviation]), input_gradient) in self
            .input
            .chunks_exact(d_model)
            .zip(self.output_gradient.chunks_exact(d_model))
            .zip(self.statistics)
            .zip(self.input_gradient.chunks_exact_mut(d_model))
        {
            // x̂ into the input gradient's row, then the row's two means.
            for (normalized, &x) in input_gradient.iter_mut().zip(input) {
                *normalized = (x - mean) / deviation;
            }
            let scaled_sum = parallel::dot(output_gradient, self.gamma);
            let product_sum = parallel::dot3(output_gradient, self.gamma, input_gradient);
            for (((&normalized, &dy), gamma_sum), beta_sum) in input_gradient
                .iter()
                .zip(output_gradient)
                .zip(gamma_sums.iter_mut())
                .zip(beta_sums.iter_mut())
            {
                *gamma_sum += dy * normalized;
                *beta_sum += dy;
            }
            let (scaled_mean, product_mean) =
                (scaled_sum / d_model as f32, product_sum / d_model as f32);
            for ((gradient, &dy), &gamma) in input_gradient
                .iter_mut()
                .zip(output_gradient)
                .zip(self.gamma)
            {
                *gradient = (dy * gamma - scaled_mean - *gradient * product_mean) / deviation;
            }
        }
        sums
    }
}
