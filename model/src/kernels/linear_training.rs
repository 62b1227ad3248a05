//! The fused linear kernels under training on the CPU (`Autodiff<Flex>`): the forward pass is
//! the fused product + bias (+ GELU) of [`super::linear`], and its backward pass is
//! registered with Burn's autodiff (the `Backward` trait, as in Burn's
//! `examples/custom-cubecl-kernel`): the GELU's derivative (vectorized `erf`/`exp`) applied to
//! the output gradient in one pass, then three matrix products (input, weight and bias
//! gradients; the bias gradient is a product with a row of ones).
//!
//! Burn's composition instead adds the bias in a pass of its own, evaluates the GELU and its
//! derivative with scalar `libm` calls, and reduces the bias gradient separately.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::BackendTypes;
use burn_flex::FlexTensor;

use super::activation::{BiasGelu, GeluGradient};
use super::flex::{contiguous, dims, into_values, tensor_of, values};
use super::linear::{Epilogue, flex_linear};
use super::matrix::{MatrixView, f32_gemm};
use super::parallel::{self, for_row_groups};

/// A float tensor of `Autodiff<Flex>`: the Flex tensor and its node in the graph.
pub type TrainingTensor = <Autodiff<Flex> as BackendTypes>::FloatTensorPrimitive;

/// `input x weight + bias`, then the GELU if `gelu`, with its backward pass.
///
/// # Shapes
/// - input: `[..., k]`, weight `[k, n]`, bias `[n]`
/// - output: `[..., n]`
pub fn linear(
    input: TrainingTensor,
    weight: TrainingTensor,
    bias: TrainingTensor,
    gelu: bool,
) -> TrainingTensor {
    let nodes = [input.node.clone(), weight.node.clone(), bias.node.clone()];
    match LinearBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            // Contiguous once: the product reads it and the backward pass keeps it.
            let input = contiguous(input.primitive);
            let pre = flex_linear(
                input.clone(),
                &weight.primitive,
                Some(&contiguous(bias.primitive)),
                Epilogue::None,
            );
            let (output, pre) = if gelu {
                let shape = dims(&pre);
                let mut output = parallel::copied(values(&pre));
                for_row_groups(
                    &mut output,
                    shape[shape.len() - 1],
                    &BiasGelu { bias: None },
                );
                (tensor_of(output, shape), Some(pre))
            } else {
                (pre, None)
            };
            let state = LinearState {
                input,
                weight: weight.primitive,
                pre,
            };
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => {
            let epilogue = if gelu { Epilogue::Gelu } else { Epilogue::None };
            let output = flex_linear(
                input.primitive,
                &weight.primitive,
                Some(&contiguous(bias.primitive)),
                epilogue,
            );
            prep.finish(output)
        }
    }
}

/// What the backward pass of [`linear`] needs.
#[derive(Debug, Clone)]
struct LinearState {
    /// The input, contiguous.
    input: FlexTensor,
    /// The weight (possibly a strided view).
    weight: FlexTensor,
    /// The GELU's input (the product + bias), when there is a GELU.
    pre: Option<FlexTensor>,
}

/// The backward step of [`linear`].
#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<LinearState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, weight_node, bias_node] = ops.parents;
        let LinearState { input, weight, pre } = ops.state;
        let input_shape = dims(&input);
        let k = input_shape[input_shape.len() - 1];
        let [_, n] = dims(&weight)[..] else {
            unreachable!("linear weights are matrices")
        };
        let mut gradient = into_values(contiguous(grads.consume::<Flex>(&ops.node)));
        let m = gradient.len() / n.max(1);
        if let Some(pre) = &pre {
            let pre = values(pre);
            for_row_groups(&mut gradient, n, &GeluGradient { pre, row_len: n });
        }
        let output_gradient = MatrixView::row_major(&gradient, n);
        if let Some(node) = bias_node {
            let ones = vec![1.0f32; m];
            let mut bias = vec![0.0f32; n];
            f32_gemm(
                (1, n, m),
                &MatrixView::row_major(&ones, m),
                &output_gradient,
                &mut bias,
                false,
            );
            grads.register::<Flex>(node.id, tensor_of(bias, vec![n]));
        }
        if let Some(node) = weight_node {
            let mut weight_gradient = parallel::zeroed(k * n);
            let input = MatrixView::row_major(values(&input), k).transposed();
            f32_gemm(
                (k, n, m),
                &input,
                &output_gradient,
                &mut weight_gradient,
                false,
            );
            grads.register::<Flex>(node.id, tensor_of(weight_gradient, vec![k, n]));
        }
        if let Some(node) = input_node {
            let mut input_gradient = parallel::zeroed(m * k);
            // The weight transposed, `[n, k]` row-major (copied by the rayon threads unless
            // it is stored so, as an imported PyTorch weight is): `gemm` then reads it in
            // place. Given the `[k, n]` row-major weight, `gemm` packs all of it on the
            // calling thread before its threads start (its prepacking of a left operand of
            // few rows), which took about 3% of a seed training step with the other core
            // idle.
            let transposed = contiguous(weight.transpose(0, 1));
            f32_gemm(
                (m, k, n),
                &output_gradient,
                &MatrixView::row_major(values(&transposed), k),
                &mut input_gradient,
                false,
            );
            grads.register::<Flex>(node.id, tensor_of(input_gradient, input_shape));
        }
    }
}
