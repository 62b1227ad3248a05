//! Linear layers with what surrounds them fused into the matrix product: the bias, the GELU
//! that follows, or the residual connection that the output is added to.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::module;
use burn_flex::FlexTensor;

use super::activation::BiasGelu;
use super::bf16_gemm::{Output, gemm_bf16};
use super::flex::{
    contiguous, dims, from_flex, from_training, into_values, tensor_of, to_flex, to_training,
    values,
};
use super::linear_training;
use super::matrix::{MatrixView, f32_gemm};
use super::packed_weights::packed_weight;
use super::parallel::{self, RowKernel, for_row_groups};
use super::precision::{MatmulPrecision, product};

/// `layer.forward(input)`.
///
/// # Shapes
/// - input: `[..., d_input]`
/// - output: `[..., d_output]`
pub fn linear<B: Backend, const D: usize>(layer: &Linear<B>, input: Tensor<B, D>) -> Tensor<B, D> {
    project(layer, input, Epilogue::None)
}

/// `gelu(layer.forward(input))` with the erf GELU.
pub fn linear_gelu<B: Backend, const D: usize>(
    layer: &Linear<B>,
    input: Tensor<B, D>,
) -> Tensor<B, D> {
    project(layer, input, Epilogue::Gelu)
}

/// `residual + regularize(layer.forward(input))`: a residual branch ending in a linear layer.
///
/// `regularize` is a dropout or stochastic depth, which is the identity outside training with
/// autodiff; the fused kernel (Flex, no autodiff) leaves it out.
///
/// # Shapes
/// - input: `[..., d_input]`
/// - residual, output: `[..., d_output]`
pub fn linear_residual<B: Backend, const D: usize>(
    layer: &Linear<B>,
    input: Tensor<B, D>,
    residual: Tensor<B, D>,
    regularize: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    match to_flex(residual) {
        Ok(residual) => project(layer, input, Epilogue::Residual(residual)),
        Err(residual) => residual + regularize(project(layer, input, Epilogue::None)),
    }
}

/// `input [.., k] x weight [k, n] + bias [n]` with Burn operations: what the fused kernels
/// replace, and what other backends (CUDA) run. The product's inputs are cast to the thread's
/// [`MatmulPrecision`] (the bias is added in f32); in f32 this is Burn's `Linear::forward`.
pub fn composed_linear<B: Backend, const D: usize>(
    input: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    if MatmulPrecision::current().cast_dtype().is_none() {
        return module::linear(input, weight, bias);
    }
    let output = product(input, weight, |input, weight| {
        module::linear(input, weight, None)
    });
    match bias {
        Some(bias) => output + bias.unsqueeze(),
        None => output,
    }
}

/// What happens to the product besides the bias.
pub(super) enum Epilogue {
    None,
    Gelu,
    /// Added to a residual (a Flex tensor: only built on the Flex backend).
    Residual(FlexTensor),
}

fn project<B: Backend, const D: usize>(
    layer: &Linear<B>,
    input: Tensor<B, D>,
    epilogue: Epilogue,
) -> Tensor<B, D> {
    let gelu = matches!(epilogue, Epilogue::Gelu);
    let input = match (&epilogue, &layer.bias) {
        (Epilogue::Residual(_), _) | (_, None) => input,
        (_, Some(_)) if !MatmulPrecision::fused(true) => input,
        (_, Some(bias)) => match to_training(input) {
            Ok(input) => {
                let (Ok(weight), Ok(bias)) =
                    (to_training(layer.weight.val()), to_training(bias.val()))
                else {
                    unreachable!("an Autodiff<Flex> module's parameters are its tensors")
                };
                return from_training(linear_training::linear(input, weight, bias, gelu));
            }
            Err(input) => input,
        },
    };
    let flex = match MatmulPrecision::fused(false) {
        true => to_flex(input).and_then(|input| match to_flex(layer.weight.val()) {
            Ok(weight) => Ok((input, weight)),
            Err(_) => Err(from_flex(input)),
        }),
        false => Err(input),
    };
    match flex {
        Ok((input, weight)) => {
            let bias = layer
                .bias
                .as_ref()
                .map(|bias| to_flex(bias.val()).map(contiguous));
            match bias.transpose() {
                Ok(bias) => from_flex(flex_linear(input, &weight, bias.as_ref(), epilogue)),
                Err(_) => unreachable!("a Flex module's parameters are Flex tensors"),
            }
        }
        Err(input) => {
            let bias = layer.bias.as_ref().map(Param::val);
            let output = composed_linear(input, layer.weight.val(), bias);
            match epilogue {
                Epilogue::None => output,
                Epilogue::Gelu => burn::tensor::activation::gelu(output),
                Epilogue::Residual(residual) => from_flex::<B, D>(residual) + output,
            }
        }
    }
}

/// `input [.., k] x weight [k, n] (+ bias [n])` and the epilogue. The weight may be a strided
/// view (e.g. a transposed PyTorch weight): the matrix product reads it in place.
pub(super) fn flex_linear(
    input: FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    epilogue: Epilogue,
) -> FlexTensor {
    let input = contiguous(input);
    let mut shape = dims(&input);
    let k = *shape
        .last()
        .expect("linear input has at least one dimension");
    let [weight_k, n] = dims(weight)[..] else {
        unreachable!("linear weights are matrices")
    };
    assert_eq!(
        weight_k, k,
        "linear input has {k} features, the weight {weight_k}"
    );
    let m: usize = shape[..shape.len() - 1].iter().product();
    let bias = bias.map(values);
    *shape.last_mut().expect("non-empty shape") = n;

    // The bf16 kernel packs the weight (once, see `packed_weights`), starts its sums from
    // the bias and writes a new output without zeroing it first; the f32 product is added to
    // what the output holds first (bias and/or residual). Before a GELU, bias and GELU are
    // one pass after the product.
    let packed = match MatmulPrecision::current().effective() {
        MatmulPrecision::Bf16 => packed_weight(weight),
        _ => None,
    };
    let gelu = matches!(epilogue, Epilogue::Gelu);
    let residual = match epilogue {
        Epilogue::Residual(residual) => {
            assert_eq!(
                dims(&residual),
                shape,
                "residual and linear output differ in shape"
            );
            Some(into_values(residual))
        }
        _ => None,
    };
    let product_bias = bias.filter(|_| !gelu);
    let input = MatrixView::row_major(values(&input), k);
    let mut output = match (packed, residual) {
        (Some(packed), Some(mut output)) => {
            gemm_bf16(
                m,
                input.values,
                &packed,
                Output::Add(&mut output),
                product_bias,
            );
            output
        }
        (Some(packed), None) => {
            let mut output = Vec::with_capacity(m * n);
            let written = &mut output.spare_capacity_mut()[..m * n];
            gemm_bf16(
                m,
                input.values,
                &packed,
                Output::Write(written),
                product_bias,
            );
            // SAFETY: a `Write` product writes every value of its output.
            unsafe { output.set_len(m * n) };
            output
        }
        (None, residual) => {
            let accumulate = residual.is_some();
            let mut output = residual.unwrap_or_else(|| parallel::zeroed(m * n));
            if let Some(bias) = product_bias {
                // Written, not added to, where nothing is there yet: a first write of fresh
                // zeroed pages faults once, a read then a write twice.
                let row = BroadcastRow {
                    row: bias,
                    add: accumulate,
                };
                for_row_groups(&mut output, n, &row);
            }
            let accumulate = accumulate || product_bias.is_some();
            f32_gemm(
                (m, n, k),
                &input,
                &weight_view(weight),
                &mut output,
                accumulate,
            );
            output
        }
    };
    if gelu {
        for_row_groups(&mut output, n, &BiasGelu { bias });
    }
    tensor_of(output, shape)
}

/// A weight (`[k, n]`, possibly a strided view) as a matrix view of its storage.
pub(super) fn weight_view(weight: &FlexTensor) -> MatrixView<'_> {
    let strides = weight.layout().strides();
    MatrixView {
        values: weight.storage(),
        offset: weight.layout().start_offset(),
        row_stride: strides[0],
        column_stride: strides[1],
    }
}

/// Puts `row` into every row (`add`: adds it).
struct BroadcastRow<'a> {
    row: &'a [f32],
    add: bool,
}

impl RowKernel for BroadcastRow<'_> {
    #[inline(always)]
    fn rows(&self, _first_row: usize, rows: &mut [f32]) {
        for row in rows.chunks_exact_mut(self.row.len()) {
            if self.add {
                for (value, add) in row.iter_mut().zip(self.row) {
                    *value += add;
                }
            } else {
                row.copy_from_slice(self.row);
            }
        }
    }
}
