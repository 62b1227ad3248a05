//! Moving float tensors of a generic backend to the Flex backend's storage (or, in training,
//! to `Autodiff<Flex>`'s tensors) and back, so that the kernels of this module can work on
//! Flex's buffers while models stay generic.

use std::any::{Any, TypeId};

use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;

use super::linear_training::TrainingTensor;

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
pub fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.is_contiguous() {
        tensor
    } else {
        tensor.to_contiguous()
    }
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
pub fn into_values(tensor: FlexTensor) -> Vec<f32> {
    tensor
        .into_data()
        .into_vec()
        .expect("to_flex returns f32 tensors")
}
