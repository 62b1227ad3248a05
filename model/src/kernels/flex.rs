//! Moving float tensors of a generic backend to the Flex backend's storage (or, in training,
//! to `Autodiff<Flex>`'s tensors) and back, so that the kernels of this module can work on
//! Flex's buffers while models stay generic.

use std::any::{Any, TypeId};
use std::mem::MaybeUninit;

use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::linear_training::TrainingTensor;
use super::parallel::{self, TASK_VALUES};

/// `tensor` as an `f32` [`FlexTensor`] (of any layout) when `B` is the Flex backend; otherwise
/// (another backend, Flex under autodiff, another dtype) `tensor` back, unchanged.
pub fn to_flex<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> Result<FlexTensor, Tensor<B, D>> {
    to_primitive(tensor)
}

/// The tensor of backend `B` holding `tensor`; `B` must be Flex (as checked by [`to_flex`]).
pub fn from_flex<B: Backend, const D: usize>(tensor: FlexTensor) -> Tensor<B, D> {
    from_primitive(tensor)
}

/// The tensor of backend `B` that [`to_flex`] returned: the Flex tensor wrapped back, or the
/// tensor it gave back unchanged.
pub fn from_flex_or_unchanged<B: Backend, const D: usize>(
    flex: Result<FlexTensor, Tensor<B, D>>,
) -> Tensor<B, D> {
    flex.map_or_else(|unchanged| unchanged, from_flex)
}

/// `tensor` as an `f32` tensor of `Autodiff<Flex>` (training on the CPU) when `B` is that
/// backend; otherwise `tensor` back, unchanged.
pub fn to_training<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> Result<TrainingTensor, Tensor<B, D>> {
    to_primitive(tensor)
}

/// The tensor of backend `B` holding `tensor`; `B` must be `Autodiff<Flex>` (as checked by
/// [`to_training`]).
pub fn from_training<B: Backend, const D: usize>(tensor: TrainingTensor) -> Tensor<B, D> {
    from_primitive(tensor)
}

/// `tensor`'s float primitive when it is an `f32` tensor whose primitive type is `P`.
fn to_primitive<P: 'static, B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> Result<P, Tensor<B, D>> {
    if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<P>() || tensor.dtype() != DType::F32
    {
        return Err(tensor);
    }
    match tensor.into_primitive() {
        TensorPrimitive::Float(primitive) => {
            let boxed: Box<dyn Any> = Box::new(primitive);
            Ok(*boxed.downcast::<P>().expect("the type was checked"))
        }
        quantized => Err(Tensor::from_primitive(quantized)),
    }
}

/// The tensor of backend `B` whose float primitive is `primitive`.
fn from_primitive<P: 'static, B: Backend, const D: usize>(primitive: P) -> Tensor<B, D> {
    let boxed: Box<dyn Any> = Box::new(primitive);
    let primitive = *boxed
        .downcast::<B::FloatTensorPrimitive>()
        .expect("the backend's float primitive is this type");
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// `tensor` with a contiguous layout (copied only when it is a strided view).
///
/// An `f32` view without negative strides (broadcast dimensions included) is copied by the
/// rayon threads, a row of its last dimension at a time. Burn's `to_contiguous` walks any view
/// that does not collapse to two dimensions value by value on one thread: the patch
/// embedding's `[images, tokens, channels]` view of the convolution's `[images, channels,
/// tokens]` output took about 3% of a bf16 forward pass that way, with the other cores idle.
pub fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.is_contiguous() {
        return tensor;
    }
    let layout = tensor.layout();
    let shape = dims(&tensor);
    let strides = layout.strides();
    let len: usize = shape.iter().product();
    let (Some((&row_len, outer)), Some((&column_stride, outer_strides))) =
        (shape.split_last(), strides.split_last())
    else {
        // A scalar.
        return tensor.to_contiguous();
    };
    if tensor.dtype() != DType::F32 || len == 0 || strides.iter().any(|&stride| stride < 0) {
        return tensor.to_contiguous();
    }
    let column_stride = column_stride as usize;
    let source: &[f32] = tensor.storage();
    let offset = layout.start_offset();
    // Where row `row` (an index over the outer dimensions) starts in `source`.
    let row_start = |mut row: usize| {
        let mut start = offset;
        for (&size, &stride) in outer.iter().zip(outer_strides).rev() {
            start += row % size * stride as usize;
            row /= size;
        }
        start
    };
    let rows_per_task = (TASK_VALUES / row_len).max(1);
    let mut output = Vec::with_capacity(len);
    output.spare_capacity_mut()[..len]
        .par_chunks_mut(rows_per_task * row_len)
        .enumerate()
        .for_each(|(task, rows)| {
            for (index, row) in rows.chunks_exact_mut(row_len).enumerate() {
                let start = row_start(task * rows_per_task + index);
                match column_stride {
                    1 => {
                        for (value, &source) in row.iter_mut().zip(&source[start..][..row_len]) {
                            value.write(source);
                        }
                    }
                    // A value broadcast along the row.
                    0 => row.fill(MaybeUninit::new(source[start])),
                    _ => {
                        let columns = source[start..].iter().step_by(column_stride);
                        for (value, &source) in row.iter_mut().zip(columns) {
                            value.write(source);
                        }
                    }
                }
            }
        });
    // SAFETY: the tasks' rows cover the first `len` values, each written once.
    unsafe { output.set_len(len) };
    tensor_of(output, shape)
}

/// The values of a contiguous `f32` tensor (see [`contiguous`]).
pub fn values(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice().expect("a contiguous f32 tensor")
}

/// The dimensions of `tensor`.
pub fn dims(tensor: &FlexTensor) -> Vec<usize> {
    tensor.layout().shape().iter().copied().collect()
}

/// A contiguous `f32` tensor of `shape` holding `values`.
pub fn tensor_of(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The values of `tensor` to overwrite: its own buffer when nothing else shares it, a copy
/// otherwise.
///
/// The copy is the rayon threads' ([`parallel::copied`]): Burn's `into_data` copies a shared
/// buffer on the calling thread, twice (to bytes, then to aligned bytes), which for the
/// residual of BERT's feed-forward blocks (the same tensor as their input) was about 1% of a
/// bf16 forward pass with the other cores idle.
pub fn into_values(tensor: FlexTensor) -> Vec<f32> {
    let whole = tensor.layout().start_offset() == 0
        && tensor.bytes().len() == tensor.layout().num_elements() * size_of::<f32>();
    if tensor.is_unique() && tensor.is_contiguous() && whole {
        return tensor
            .into_data()
            .into_vec()
            .expect("to_flex returns f32 tensors");
    }
    parallel::copied(values(&contiguous(tensor)))
}

#[cfg(test)]
mod tests {
    use burn_flex::Layout;

    use super::*;

    /// Views of a `[3, 5, 7, 4]` tensor (transposed, permuted, narrowed to an offset) and
    /// broadcast views of a smaller one, each copied by [`contiguous`] and by Burn's own
    /// `to_contiguous`.
    #[test]
    fn strided_views_copy_as_burn_copies_them() {
        let counting: Vec<f32> = (0..3 * 5 * 7 * 4).map(|value| value as f32).collect();
        let tensor = tensor_of(counting, vec![3, 5, 7, 4]);
        let views = [
            tensor.transpose(2, 3),
            tensor.permute(&[0, 2, 3, 1]),
            tensor.permute(&[3, 1, 0, 2]),
            tensor.narrow(1, 2, 3).transpose(0, 1),
            tensor.narrow(3, 1, 2),
            tensor
                .narrow(0, 1, 2)
                .reshape([2, 35, 4].into())
                .transpose(1, 2),
        ];
        // Broadcast views (stride 0) of a `[3, 4]` tensor: along a middle and the last dimension.
        let small = tensor_of((0..12).map(|value| value as f32).collect(), vec![3, 4]);
        let broadcast = |shape: [usize; 3], strides: Vec<isize>| {
            small
                .clone()
                .with_layout(Layout::new(shape.to_vec().into(), strides, 0))
        };
        let views = views.into_iter().chain([
            broadcast([3, 5, 4], vec![4, 0, 1]),
            broadcast([3, 4, 5], vec![4, 1, 0]),
        ]);
        for view in views {
            assert!(!view.is_contiguous());
            let copied = contiguous(view.clone());
            assert!(copied.is_contiguous());
            assert_eq!(dims(&copied), dims(&view));
            assert_eq!(
                values(&copied),
                values(&view.to_contiguous()),
                "{:?}",
                view.layout()
            );
        }
    }
}
