//! Checks of imported weights: checkpoints in other float precisions (F16, BF16, F64) are
//! converted to the backend's float type, and integer or non-finite weights are refused with
//! the name of the tensor, before the model can compute garbage with them.

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use burn::tensor::{DType, Element};
use burn_store::{ModuleSnapshot, ModuleStore, TensorSnapshot};

use super::{LoadError, layer_norm_name};

/// Refuses, before anything is loaded, a stored tensor that would be loaded into a parameter
/// of `model` but is not floating point (Burn cannot hold integer or boolean values in a float
/// parameter) or holds another number of values than the parameter (burn-store materializes a
/// tensor before comparing shapes, so a shape that claims billions of values would be
/// allocated). Tensors the model does not use (`position_ids` buffers) pass.
pub(super) fn check_stored_tensors<B: Backend, M: ModuleSnapshot<B>, S: ModuleStore>(
    model: &M,
    store: &mut S,
    source: &Path,
) -> Result<(), LoadError>
where
    S::Error: std::fmt::Display,
{
    let parameters: HashMap<String, Vec<usize>> = model
        .collect(None, None, false)
        .iter()
        .map(|snapshot| (snapshot.full_path(), snapshot.shape.to_vec()))
        .collect();
    let snapshots = store.get_all_snapshots().map_err(|e| LoadError::Read {
        path: source.to_path_buf(),
        message: e.to_string(),
    })?;
    let count = |shape: &[usize]| {
        shape
            .iter()
            .try_fold(1usize, |total, &dim| total.checked_mul(dim))
    };
    for (name, snapshot) in snapshots {
        // The PyTorch names of normalization parameters become `gamma`/`beta` when adapted.
        let Some(parameter) = parameters
            .get(name.as_str())
            .or_else(|| layer_norm_name(name).and_then(|adapted| parameters.get(&adapted)))
        else {
            continue;
        };
        let invalid = |message: String| LoadError::InvalidTensor {
            path: source.to_path_buf(),
            tensor: name.clone(),
            message,
        };
        if !snapshot.dtype.is_float() {
            return Err(invalid(format!(
                "{:?} values where float weights are expected",
                snapshot.dtype
            )));
        }
        if count(&snapshot.shape) != count(parameter) {
            return Err(invalid(format!(
                "shape {:?} does not fit the model's parameter of shape {parameter:?}",
                snapshot.shape.to_vec()
            )));
        }
    }
    Ok(())
}

/// Converts every parameter of `model` to the backend's float type and refuses integer or
/// boolean tensors and non-finite values (NaN, ±Inf); `source` is the checkpoint, for messages.
pub(super) fn check_float_weights<B: Backend, M: ModuleSnapshot<B>>(
    model: &mut M,
    source: &Path,
) -> Result<(), LoadError> {
    let target = <B::FloatElem as Element>::dtype();
    let invalid = |tensor: String, message: String| LoadError::InvalidTensor {
        path: source.to_path_buf(),
        tensor,
        message,
    };
    let mut converted = Vec::new();
    for snapshot in model.collect(None, None, false) {
        let name = snapshot.full_path();
        if !snapshot.dtype.is_float() {
            return Err(invalid(
                name,
                format!(
                    "{:?} values where float weights are expected",
                    snapshot.dtype
                ),
            ));
        }
        let data = snapshot
            .to_data()
            .map_err(|e| invalid(name.clone(), e.to_string()))?;
        let values = data.clone().convert_dtype(DType::F32);
        let values = values
            .as_slice::<f32>()
            .map_err(|e| invalid(name.clone(), format!("{e:?}")))?;
        if let Some(position) = values.iter().position(|value| !value.is_finite()) {
            return Err(invalid(
                name,
                format!(
                    "non-finite value {} at flat index {position}",
                    values[position]
                ),
            ));
        }
        if snapshot.dtype != target {
            converted.push(TensorSnapshot::from_data(
                data.convert_dtype(target),
                snapshot.path_stack.clone().unwrap_or_default(),
                snapshot.container_stack.clone().unwrap_or_default(),
                snapshot.tensor_id.unwrap_or_default(),
            ));
        }
    }
    if !converted.is_empty() {
        let result = model.apply(converted, None, None, false);
        if let Some(error) = result.errors.first() {
            return Err(invalid(
                String::new(),
                format!("converting to {target:?}: {error:?}"),
            ));
        }
    }
    Ok(())
}
