//! Readers of the safetensors fixtures shared by the training parity tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::DType;
use safetensors::SafeTensors;

/// The float32 tensors of a safetensors file, flattened, by name.
pub fn read_tensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.names()
        .into_iter()
        .filter_map(|name| {
            let view = file.tensor(name).unwrap();
            (view.dtype() == safetensors::Dtype::F32).then(|| {
                let values = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (name.to_string(), (view.shape().to_vec(), values))
            })
        })
        .collect()
}

/// The tensor `name` of `bytes` (stored as `dtype`: I64 ids and labels, F32 values).
pub fn tensor<B: Backend, const D: usize, K>(
    bytes: &SafeTensors,
    name: &str,
    dtype: DType,
) -> Tensor<B, D, K>
where
    K: burn::tensor::BasicOps<B>,
{
    let view = bytes.tensor(name).unwrap();
    let data = TensorData::from_bytes_vec(view.data().to_vec(), view.shape().to_vec(), dtype);
    Tensor::from_data(data, &Default::default())
}
