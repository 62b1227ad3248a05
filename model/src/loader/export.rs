//! Export of models as safetensors state dicts with the reference's names.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::DType;
use std::collections::HashMap;

use burn::module::ParamId;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, TensorSnapshot};

use super::LoadError;
use super::names::{BURN_TO_REFERENCE, remapper};
use crate::swin::SwinTransformer;
use crate::video::{VideoClassifier, VideoPretrainModel};

/// Writes a [`VideoClassifier`] as a safetensors state dict with the reference's names, Swin
/// buffers included, loadable by the reference with `load_state_dict(strict=True)`.
pub fn save_classifier_safetensors<B: Backend>(
    model: &VideoClassifier<B>,
    path: impl AsRef<Path>,
) -> Result<(), LoadError> {
    let mut tensors = reference_tensors(model);
    tensors.extend(swin_buffers(&model.encoder.visual_backbone));
    write_safetensors(tensors, path.as_ref())
}

/// Writes a [`VideoPretrainModel`] as a safetensors state dict with the reference's names,
/// including the Swin buffers, the tied MLM decoder (`encoder.cls.predictions.decoder.weight`
/// = word embeddings, `.bias` = MLM bias) and the unused next-sentence head
/// (`encoder.cls.seq_relationship.*`), loadable by the reference with
/// `load_state_dict(strict=True)`.
pub fn save_pretrain_safetensors<B: Backend>(
    model: &VideoPretrainModel<B>,
    path: impl AsRef<Path>,
) -> Result<(), LoadError> {
    let mut tensors = reference_tensors(model);
    tensors.extend(swin_buffers(&model.encoder.visual_backbone));
    let embeddings = &model.encoder.two_stream.embeddings.word_embeddings;
    tensors.push((
        "encoder.cls.predictions.decoder.weight".into(),
        embeddings.weight.val().into_data(),
    ));
    tensors.push((
        "encoder.cls.predictions.decoder.bias".into(),
        model.mlm_head.bias.val().into_data(),
    ));
    write_safetensors(tensors, path.as_ref())
}

/// The parameters of a model in PyTorch layout, under reference names (read lazily).
fn reference_snapshots<B: Backend, M: ModuleSnapshot<B>>(model: &M) -> Vec<TensorSnapshot> {
    let snapshots = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    remapper(&[BURN_TO_REFERENCE]).remap(snapshots).0
}

/// The reference's state-dict name of every parameter of a model (e.g.
/// `encoder.bert.embeddings.LayerNorm.weight` for the embeddings' LayerNorm `gamma`), by
/// parameter id: the names an export writes, for rules that the reference states by name
/// (which parameters decay) and for state kept by name (optimizer moments, EMA).
pub fn reference_parameter_names<B: Backend, M: ModuleSnapshot<B>>(
    model: &M,
) -> HashMap<ParamId, String> {
    reference_snapshots(model)
        .into_iter()
        .filter_map(|snapshot| Some((snapshot.tensor_id?, snapshot.full_path())))
        .collect()
}

/// The parameters of a model in PyTorch layout, under reference names.
fn reference_tensors<B: Backend, M: ModuleSnapshot<B>>(model: &M) -> Vec<(String, TensorData)> {
    reference_snapshots(model)
        .into_iter()
        .map(|snapshot| {
            let data = snapshot
                .to_data()
                .expect("parameters of a live module can be read");
            (snapshot.full_path(), data)
        })
        .collect()
}

/// The official Swin buffers (`relative_position_index` of every block, `attn_mask` of shifted
/// blocks), under reference names.
fn swin_buffers<B: Backend>(swin: &SwinTransformer<B>) -> Vec<(String, TensorData)> {
    let mut buffers = Vec::new();
    for (stage_index, stage) in swin.stages.iter().enumerate() {
        for (block_index, block) in stage.blocks.iter().enumerate() {
            let prefix = format!("visual_backbone.layers.{stage_index}.blocks.{block_index}");
            buffers.push((
                format!("{prefix}.attn.relative_position_index"),
                block
                    .attention
                    .relative_position_index()
                    .into_data()
                    .convert::<i64>(),
            ));
            if let Some(mask) = block.attention_mask() {
                buffers.push((format!("{prefix}.attn_mask"), mask.into_data()));
            }
        }
    }
    buffers
}

fn write_safetensors(tensors: Vec<(String, TensorData)>, path: &Path) -> Result<(), LoadError> {
    let tensors: Vec<(String, TensorData)> = tensors
        .into_iter()
        .map(|(name, data)| {
            let data = match data.dtype {
                DType::I64 => data,
                DType::I32 | DType::I16 | DType::I8 | DType::U8 => data.convert::<i64>(),
                _ => data.convert::<f32>(),
            };
            (name, data)
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, data)| {
            let dtype = match data.dtype {
                DType::I64 => safetensors::Dtype::I64,
                _ => safetensors::Dtype::F32,
            };
            let view =
                safetensors::tensor::TensorView::new(dtype, data.shape.to_vec(), data.as_bytes())?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(LoadError::Export)?;
    safetensors::serialize_to_file(views, None, path).map_err(LoadError::Export)?;
    Ok(())
}
