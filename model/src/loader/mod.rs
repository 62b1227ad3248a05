//! Weight import and export: the mapping between the PyTorch reference's state-dict names and
//! the Burn module paths of [`VideoClassifier`](crate::VideoClassifier) and
//! [`VideoPretrainModel`](crate::VideoPretrainModel).
//!
//! All imports go through one table ([`REFERENCE_TO_BURN`]) from reference names
//! (`visual_backbone.*`, `video_dense.*`, `encoder.bert.*`, `encoder.cls.*`, `newfc_itm_cls.*`,
//! `classifier.*`) to Burn paths; other sources are first renamed to reference names:
//! a HuggingFace BERT (`bert.*` or unprefixed, `cls.*`) becomes `encoder.bert.*` /
//! `encoder.cls.*`, and an official Swin checkpoint is prefixed with `visual_backbone.`.
//! Linear weights are transposed and LayerNorm `weight`/`bias` (or old `gamma`/`beta`) become
//! Burn's `gamma`/`beta` by burn-store's PyTorch adapters.
//!
//! Reference tensors that are not parameters here are ignored on import and, where the
//! reference's strict loading needs them, regenerated on export: the Swin buffers
//! `relative_position_index` and `attn_mask`, the tied MLM decoder
//! (`encoder.cls.predictions.decoder.*`); `embeddings.position_ids` and the Swin classification
//! `head.*` are dropped. The reference's unused next-sentence head
//! (`encoder.cls.seq_relationship.*`) is a parameter of the pre-training model, so that its
//! exports load strictly; a pre-training checkpoint without it still loads (the head then keeps
//! its initial values).
//!
//! The configuration of a reference checkpoint is read off its tensor names and shapes
//! ([`infer_classifier_config`], [`infer_pretrain_config`], [`infer_swin_config`]).

mod export;
mod infer;
mod names;
mod pickle;
mod validate;

pub use export::{
    reference_parameter_names, save_classifier_safetensors, save_pretrain_safetensors,
};
pub use infer::{
    TensorShapes, infer_classifier_config, infer_pretrain_config, infer_swin_config,
    is_pretrain_state_dict, official_swin_tensor_shapes, reference_tensor_shapes,
};
pub use names::{BURN_TO_REFERENCE, REFERENCE_TO_BURN};

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn_store::{
    ApplyResult, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore,
    PytorchStoreError, SafetensorsStore, SafetensorsStoreError,
};

use names::{HF_BERT_TO_REFERENCE, is_ignored, is_optional, remapper};
use validate::{check_float_weights, check_stored_tensors};

use crate::swin::SwinTransformer;

/// Key of the state dict in a reference checkpoint (`torch.save({"epoch", "model_state_dict",
/// "mean_f1"})`).
const REFERENCE_STATE_DICT_KEY: &str = "model_state_dict";
/// Key of the state dict in an official Swin checkpoint.
const SWIN_STATE_DICT_KEY: &str = "model";

/// Error while importing or exporting weights. Causes are part of each message (no separate
/// `source`), so that an error chain prints them once.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading or writing a safetensors file failed (including shape mismatches).
    #[error("safetensors: {0}")]
    Safetensors(SafetensorsStoreError),
    /// Reading a PyTorch file failed (including shape mismatches).
    #[error("pytorch: {0}")]
    Pytorch(PytorchStoreError),
    /// Writing a safetensors file failed.
    #[error("safetensors export: {0}")]
    Export(safetensors::SafeTensorError),
    /// No weight file in a HuggingFace model directory.
    #[error("no model.safetensors or pytorch_model.bin in {0}")]
    NoWeights(PathBuf),
    /// Parameters of the model found no tensor in the file.
    #[error("missing tensors for {0:?}")]
    Missing(Vec<String>),
    /// Tensors of the file matched no parameter of the model.
    #[error("unexpected tensors {0:?}")]
    Unexpected(Vec<String>),
    /// A checkpoint's tensor names and shapes could not be read.
    #[error("{}: {message}", path.display())]
    Read {
        /// The checkpoint.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A tensor of a checkpoint cannot be used as the weights it is loaded into (integer
    /// values, NaN or infinity).
    /// (Displayed without the path: callers name the checkpoint they were loading.)
    #[error("tensor {tensor}: {message}")]
    InvalidTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The model parameter (Burn path).
        tensor: String,
        /// What is wrong with it.
        message: String,
    },
    /// A checkpoint's tensors do not describe a model of the expected kind.
    #[error("cannot infer the model configuration: {0}")]
    Config(String),
}

/// Which parameters a partial import must fill, and whether leftover tensors are an error.
struct Expectation<'a> {
    required_prefixes: &'a [&'a str],
    strict_unused: bool,
    /// Prepended to the names of leftover tensors to tell the ignored ones (the module path of
    /// the loaded module in a classifier).
    unused_context: &'a str,
}

impl Expectation<'_> {
    fn check(&self, result: ApplyResult) -> Result<ApplyResult, LoadError> {
        let missing: Vec<String> = result
            .missing
            .iter()
            .map(|(path, _)| path.clone())
            .filter(|path| {
                !is_optional(path)
                    && self
                        .required_prefixes
                        .iter()
                        .any(|prefix| path.starts_with(prefix))
            })
            .collect();
        if !missing.is_empty() {
            return Err(LoadError::Missing(missing));
        }
        let unexpected: Vec<String> = result
            .unused
            .iter()
            .filter(|name| !is_ignored(&format!("{}{name}", self.unused_context)))
            .cloned()
            .collect();
        if self.strict_unused && !unexpected.is_empty() {
            return Err(LoadError::Unexpected(unexpected));
        }
        Ok(result)
    }
}

/// The name a PyTorch parameter `name` has when it is a LayerNorm's (`weight`/`bias`) in Burn
/// (`gamma`/`beta`), as burn-store's PyTorch adapters rename it; `None` for other suffixes.
fn layer_norm_name(name: &str) -> Option<String> {
    name.strip_suffix(".weight")
        .map(|path| format!("{path}.gamma"))
        .or_else(|| {
            name.strip_suffix(".bias")
                .map(|path| format!("{path}.beta"))
        })
}

/// Drops from `result.unused` the PyTorch LayerNorm names (`weight`/`bias`) whose Burn
/// counterparts (`gamma`/`beta`) were loaded through burn-store's alternative-name matching.
fn without_adapted_names(mut result: ApplyResult) -> ApplyResult {
    let applied: HashSet<&str> = result.applied.iter().map(String::as_str).collect();
    let loaded_as_norm = |name: &String| {
        layer_norm_name(name).is_some_and(|burn_name| applied.contains(burn_name.as_str()))
    };
    let unused = result
        .unused
        .iter()
        .filter(|name| !loaded_as_norm(name))
        .cloned()
        .collect();
    result.unused = unused;
    result
}

fn load_safetensors<B: Backend, M: ModuleSnapshot<B>>(
    model: &mut M,
    path: &Path,
    remapper: KeyRemapper,
) -> Result<ApplyResult, LoadError> {
    let mut store = SafetensorsStore::from_file(path)
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(remapper)
        .map_indices_contiguous(false)
        .allow_partial(true);
    check_stored_tensors(model, &mut store, path)?;
    let result = model
        .load_from(&mut store)
        .map_err(LoadError::Safetensors)?;
    check_float_weights(model, path)?;
    Ok(without_adapted_names(result))
}

fn load_pytorch<B: Backend, M: ModuleSnapshot<B>>(
    model: &mut M,
    path: &Path,
    top_level_key: Option<&str>,
    remapper: KeyRemapper,
) -> Result<ApplyResult, LoadError> {
    pickle::check_pytorch_file(path).map_err(|message| LoadError::Read {
        path: path.to_path_buf(),
        message,
    })?;
    let store = PytorchStore::from_file(path);
    let store = match top_level_key {
        Some(key) => store.with_top_level_key(key),
        None => store,
    };
    let mut store = store
        .remap(remapper)
        .map_indices_contiguous(false)
        .allow_partial(true);
    check_stored_tensors(model, &mut store, path)?;
    let result = model.load_from(&mut store).map_err(LoadError::Pytorch)?;
    check_float_weights(model, path)?;
    Ok(without_adapted_names(result))
}

/// Loads a complete reference state dict into a [`VideoClassifier`](crate::VideoClassifier)
/// or a [`VideoPretrainModel`](crate::VideoPretrainModel).
///
/// `path` is either a `.safetensors` file or a reference checkpoint (`.pth`/`.pt`/`.bin`) whose
/// `model_state_dict` entry is the state dict. Every parameter must be found (but the
/// pre-training model's unused next-sentence head), and every tensor used (besides the ignored
/// ones, see the module documentation).
pub fn load_reference_weights<B: Backend, M: ModuleSnapshot<B>>(
    model: &mut M,
    path: impl AsRef<Path>,
) -> Result<ApplyResult, LoadError> {
    Expectation {
        required_prefixes: &[""],
        strict_unused: true,
        unused_context: "",
    }
    .check(load_reference_weights_partial(model, path)?)
}

/// Loads what matches of a reference state dict (same files as [`load_reference_weights`]),
/// e.g. a pre-training checkpoint into a [`VideoClassifier`](crate::VideoClassifier):
/// parameters without a tensor keep their values and are listed in the result's `missing`,
/// tensors without a parameter are listed in `unused`.
pub fn load_reference_weights_partial<B: Backend, M: ModuleSnapshot<B>>(
    model: &mut M,
    path: impl AsRef<Path>,
) -> Result<ApplyResult, LoadError> {
    let path = path.as_ref();
    load_state_dict_file(
        model,
        path,
        REFERENCE_STATE_DICT_KEY,
        remapper(&[REFERENCE_TO_BURN]),
    )
}

/// Loads a HuggingFace BERT directory (`model.safetensors` or `pytorch_model.bin`, names with
/// or without the `bert.` prefix, LayerNorm as `weight`/`bias` or `gamma`/`beta`) into the text
/// embeddings, text layers and pooler of a [`VideoClassifier`](crate::VideoClassifier) or a
/// [`VideoPretrainModel`](crate::VideoPretrainModel), and into its MLM and next-sentence heads
/// if it has them and the checkpoint has `cls.predictions.*` and `cls.seq_relationship.*`.
///
/// Every embedding, text layer and pooler parameter must be found; the checkpoint may have more
/// layers than the model.
pub fn load_hf_bert<B: Backend, M: ModuleSnapshot<B>>(
    model: &mut M,
    dir: impl AsRef<Path>,
) -> Result<ApplyResult, LoadError> {
    let dir = dir.as_ref();
    let remapper = remapper(&[HF_BERT_TO_REFERENCE, REFERENCE_TO_BURN]);
    let safetensors = dir.join("model.safetensors");
    let pytorch = dir.join("pytorch_model.bin");
    let result = if safetensors.is_file() {
        load_safetensors(model, &safetensors, remapper)?
    } else if pytorch.is_file() {
        load_pytorch(model, &pytorch, None, remapper)?
    } else {
        return Err(LoadError::NoWeights(dir.to_path_buf()));
    };
    Expectation {
        required_prefixes: &[
            "encoder.two_stream.embeddings.",
            "encoder.two_stream.text_encoder.",
            "encoder.two_stream.pooler.",
        ],
        strict_unused: false,
        unused_context: "",
    }
    .check(result)
}

/// Loads an official Swin checkpoint (e.g. `swin_tiny_patch4_window7_224.pth`, state dict under
/// `"model"`; a bare state dict in `.safetensors` also works) into the visual backbone of a
/// [`VideoClassifier`](crate::VideoClassifier) or a
/// [`VideoPretrainModel`](crate::VideoPretrainModel). The classification head and the buffers
/// are ignored; every backbone parameter must be found.
pub fn load_official_swin<B: Backend, M: ModuleSnapshot<B>>(
    model: &mut M,
    path: impl AsRef<Path>,
) -> Result<ApplyResult, LoadError> {
    let path = path.as_ref();
    let remapper = remapper(&[&[(r"^", "visual_backbone.")], REFERENCE_TO_BURN]);
    let result = load_state_dict_file(model, path, SWIN_STATE_DICT_KEY, remapper)?;
    Expectation {
        required_prefixes: &["encoder.visual_backbone."],
        strict_unused: true,
        unused_context: "",
    }
    .check(result)
}

/// Loads an official Swin checkpoint (as [`load_official_swin`]) into a bare
/// [`SwinTransformer`], e.g. for feature extraction. Every parameter must be found.
pub fn load_official_swin_backbone<B: Backend>(
    swin: &mut SwinTransformer<B>,
    path: impl AsRef<Path>,
) -> Result<ApplyResult, LoadError> {
    let path = path.as_ref();
    let remapper = remapper(&[
        &[(r"^", "visual_backbone.")],
        REFERENCE_TO_BURN,
        &[(r"^encoder\.visual_backbone\.", "")],
    ]);
    let result = load_state_dict_file(swin, path, SWIN_STATE_DICT_KEY, remapper)?;
    Expectation {
        required_prefixes: &[""],
        strict_unused: true,
        unused_context: "encoder.visual_backbone.",
    }
    .check(result)
}

/// Loads a state dict file: safetensors (by its extension), or a PyTorch pickle with the state
/// dict under `pytorch_key`.
fn load_state_dict_file<B: Backend, M: ModuleSnapshot<B>>(
    model: &mut M,
    path: &Path,
    pytorch_key: &str,
    remapper: KeyRemapper,
) -> Result<ApplyResult, LoadError> {
    if is_safetensors(path) {
        load_safetensors(model, path, remapper)
    } else {
        load_pytorch(model, path, Some(pytorch_key), remapper)
    }
}

fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension == "safetensors")
}
