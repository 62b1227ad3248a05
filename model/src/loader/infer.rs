//! Model configurations read off the tensor names and shapes of reference checkpoints.
//!
//! The shapes give every size but two: the number of attention heads of the BERT parts (taken
//! from a BERT configuration when one is given, else `hidden / 64` as in every BERT release),
//! and the Swin input size when the checkpoint has no `attn_mask` buffer to measure it by (then
//! 224 px, the reference's). Dropout and initialization settings do not matter for inference:
//! they come from the BERT configuration when given, else the defaults.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use burn_store::pytorch::PytorchReader;

use super::{LoadError, REFERENCE_STATE_DICT_KEY, SWIN_STATE_DICT_KEY, is_safetensors};
use crate::bert::BertConfig;
use crate::cross_modality::TwoStreamEncoderConfig;
use crate::swin::SwinConfig;
use crate::video::{VideoModelConfig, VideoTextEncoderConfig};

/// Tensor names (reference names) and their shapes.
pub type TensorShapes = BTreeMap<String, Vec<usize>>;

/// Swin input size assumed when a checkpoint has no `attn_mask` to measure it by.
const DEFAULT_IMG_SIZE: usize = 224;
/// Size of one attention head in every BERT release.
const BERT_HEAD_SIZE: usize = 64;

/// Names and shapes of the tensors of a reference checkpoint (`.pth` with `model_state_dict`)
/// or a `.safetensors` state dict, without reading the tensors' data.
pub fn reference_tensor_shapes(path: impl AsRef<Path>) -> Result<TensorShapes, LoadError> {
    tensor_shapes(path.as_ref(), REFERENCE_STATE_DICT_KEY)
}

/// Names and shapes of the tensors of an official Swin checkpoint (`.pth` with `model`) or a
/// bare `.safetensors` state dict.
pub fn official_swin_tensor_shapes(path: impl AsRef<Path>) -> Result<TensorShapes, LoadError> {
    tensor_shapes(path.as_ref(), SWIN_STATE_DICT_KEY)
}

fn tensor_shapes(path: &Path, top_level_key: &str) -> Result<TensorShapes, LoadError> {
    let read_error = |message: String| LoadError::Read {
        path: path.to_path_buf(),
        message,
    };
    if is_safetensors(path) {
        return safetensors_shapes(path).map_err(read_error);
    }
    super::pickle::check_pytorch_file(path).map_err(read_error)?;
    let reader = PytorchReader::with_top_level_key(path, top_level_key)
        .map_err(|e| read_error(e.to_string()))?;
    Ok(reader
        .tensors()
        .iter()
        .map(|(name, snapshot)| (name.clone(), snapshot.shape.to_vec()))
        .collect())
}

/// Reads the JSON header of a safetensors file (the tensor data is not read).
fn safetensors_shapes(path: &Path) -> Result<TensorShapes, String> {
    #[derive(serde::Deserialize)]
    struct Info {
        shape: Vec<usize>,
    }
    const MAX_HEADER: u64 = 100_000_000;
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut size = [0u8; 8];
    file.read_exact(&mut size)
        .map_err(|e| format!("not a safetensors file: {e}"))?;
    let size = u64::from_le_bytes(size);
    if size > MAX_HEADER {
        return Err(format!("not a safetensors file: header of {size} bytes"));
    }
    let mut header = vec![0u8; size as usize];
    file.read_exact(&mut header)
        .map_err(|e| format!("not a safetensors file: {e}"))?;
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("not a safetensors header: {e}"))?;
    entries.remove("__metadata__");
    entries
        .into_iter()
        .map(|(name, value)| {
            let info: Info = serde_json::from_value(value)
                .map_err(|e| format!("tensor {name}: bad header entry: {e}"))?;
            Ok((name, info.shape))
        })
        .collect()
}

/// Looks tensors up by name, with errors naming what is missing or malformed.
struct Shapes<'a>(&'a TensorShapes);

impl Shapes<'_> {
    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The shape of `name`, which must have `rank` dimensions.
    fn get(&self, name: &str, rank: usize) -> Result<&[usize], LoadError> {
        let shape = self
            .0
            .get(name)
            .ok_or_else(|| LoadError::Config(format!("no tensor {name}")))?;
        if shape.len() != rank {
            return Err(LoadError::Config(format!(
                "tensor {name} has shape {shape:?}, expected {rank} dimensions"
            )));
        }
        Ok(shape)
    }

    /// How many consecutive indices `i` from 0 have a tensor `name(i)`.
    fn count(&self, name: impl Fn(usize) -> String) -> usize {
        (0..).take_while(|&index| self.has(&name(index))).count()
    }
}

/// The `n` with `n * n == value`, if any.
fn exact_sqrt(value: usize) -> Option<usize> {
    let root = (value as f64).sqrt().round() as usize;
    (root * root == value).then_some(root)
}

/// The Swin configuration of the tensors named `<prefix>patch_embed.*`, `<prefix>layers.*`, ...
/// in the official layout (`prefix` is `"visual_backbone."` in a reference checkpoint, empty in
/// an official Swin checkpoint).
pub fn infer_swin_config(shapes: &TensorShapes, prefix: &str) -> Result<SwinConfig, LoadError> {
    let shapes = Shapes(shapes);
    let proj = shapes.get(&format!("{prefix}patch_embed.proj.weight"), 4)?;
    let (embed_dim, in_channels, patch_size) = (proj[0], proj[1], proj[2]);
    let block = |stage: usize, block: usize| format!("{prefix}layers.{stage}.blocks.{block}.");
    let stages = shapes.count(|stage| format!("{}norm1.weight", block(stage, 0)));
    if stages == 0 {
        return Err(LoadError::Config(format!(
            "no tensor {}norm1.weight",
            block(0, 0)
        )));
    }
    let depths: Vec<usize> = (0..stages)
        .map(|stage| shapes.count(|index| format!("{}norm1.weight", block(stage, index))))
        .collect();
    let num_heads = (0..stages)
        .map(|stage| {
            let table = format!("{}attn.relative_position_bias_table", block(stage, 0));
            Ok(shapes.get(&table, 2)?[1])
        })
        .collect::<Result<Vec<usize>, LoadError>>()?;
    let table_name = format!("{}attn.relative_position_bias_table", block(0, 0));
    let table_rows = shapes.get(&table_name, 2)?[0];
    let window_size = exact_sqrt(table_rows)
        .filter(|side| side % 2 == 1)
        .map(|side| side.div_ceil(2))
        .ok_or_else(|| {
            LoadError::Config(format!(
                "{table_name} has {table_rows} rows, not (2 * window - 1)^2"
            ))
        })?;
    let fc1 = shapes.get(&format!("{}mlp.fc1.weight", block(0, 0)), 2)?;
    let mlp_ratio = fc1[0] as f64 / embed_dim as f64;

    // A shifted block's mask is [windows, window^2, window^2]: it measures its stage's map.
    let measured = (0..stages).find_map(|stage| {
        (0..depths[stage]).find_map(|index| {
            let shape = shapes.0.get(&format!("{}attn_mask", block(stage, index)))?;
            let windows_per_side = exact_sqrt(*shape.first()?)?;
            let window = exact_sqrt(*shape.get(1)?)?;
            Some((windows_per_side * window) << stage)
        })
    });
    let img_size = measured.map_or(DEFAULT_IMG_SIZE, |side| side * patch_size);
    let config = SwinConfig::new(
        img_size,
        patch_size,
        embed_dim,
        depths,
        num_heads,
        window_size,
    )
    .with_in_channels(in_channels)
    .with_mlp_ratio(mlp_ratio);
    config.validate().map_err(LoadError::Config)?;
    Ok(config)
}

/// The classifier head's weight in a reference state dict.
const CLASSIFIER_WEIGHT: &str = "classifier.weight";
/// The image-text matching head's weight in a reference pre-training state dict.
const ITM_HEAD_WEIGHT: &str = "newfc_itm_cls.weight";

/// Whether a reference state dict holds a pre-training model
/// ([`VideoPretrainModel`](crate::VideoPretrainModel)): it has the image-text matching head
/// (`newfc_itm_cls.*`) and no classifier.
pub fn is_pretrain_state_dict(shapes: &TensorShapes) -> bool {
    shapes.contains_key(ITM_HEAD_WEIGHT) && !shapes.contains_key(CLASSIFIER_WEIGHT)
}

/// The configuration of the [`VideoClassifier`](crate::VideoClassifier) whose reference state
/// dict has these tensors.
///
/// `bert` (e.g. the `config.json` of the BERT directory the model was initialised from) supplies
/// the number of attention heads and the LayerNorm epsilon, dropout and initialization settings;
/// its hidden size must be the checkpoint's, its other sizes are ignored. Without it the heads
/// are `hidden / 64`.
pub fn infer_classifier_config(
    shapes: &TensorShapes,
    bert: Option<&BertConfig>,
) -> Result<VideoModelConfig, LoadError> {
    let encoder = infer_encoder_config(shapes, bert)?;
    let num_classes = Shapes(shapes).get(CLASSIFIER_WEIGHT, 2).map_err(|_| {
        LoadError::Config(format!(
            "no tensor {CLASSIFIER_WEIGHT}: not a fine-tuned classifier (a pre-training checkpoint?)"
        ))
    })?[0];
    let config = VideoModelConfig::new(encoder).with_num_classes(num_classes);
    config.validate().map_err(LoadError::Config)?;
    Ok(config)
}

/// The configuration of the [`VideoPretrainModel`](crate::VideoPretrainModel) whose reference
/// state dict has these tensors (`bert` as for [`infer_classifier_config`]). Its `num_classes`
/// is the default: the pre-training model has no classifier.
pub fn infer_pretrain_config(
    shapes: &TensorShapes,
    bert: Option<&BertConfig>,
) -> Result<VideoModelConfig, LoadError> {
    let encoder = infer_encoder_config(shapes, bert)?;
    if !is_pretrain_state_dict(shapes) {
        return Err(LoadError::Config(format!(
            "not a pre-training model, which has {ITM_HEAD_WEIGHT} and no {CLASSIFIER_WEIGHT}"
        )));
    }
    let config = VideoModelConfig::new(encoder);
    config.validate().map_err(LoadError::Config)?;
    Ok(config)
}

/// The configuration of the visual backbone and the two-stream encoder whose reference tensors
/// these are (see [`infer_classifier_config`] for `bert`).
fn infer_encoder_config(
    shapes: &TensorShapes,
    bert: Option<&BertConfig>,
) -> Result<VideoTextEncoderConfig, LoadError> {
    let swin = infer_swin_config(shapes, "visual_backbone.")?;
    let shapes = Shapes(shapes);
    let prefix = "encoder.bert.";
    let words = shapes.get(&format!("{prefix}embeddings.word_embeddings.weight"), 2)?;
    let (vocab_size, hidden_size) = (words[0], words[1]);
    let positions = shapes.get(&format!("{prefix}embeddings.position_embeddings.weight"), 2)?[0];
    let types = shapes.get(
        &format!("{prefix}embeddings.token_type_embeddings.weight"),
        2,
    )?[0];
    let text_layers =
        shapes.count(|i| format!("{prefix}encoder.layer.{i}.attention.self.query.weight"));
    let visual_layers =
        shapes.count(|i| format!("{prefix}encoder.r_layers.{i}.attention.self.query.weight"));
    let cross_layers =
        shapes.count(|i| format!("{prefix}encoder.x_layers.{i}.visual_attention.att.query.weight"));
    let intermediate_name = if text_layers > 0 {
        format!("{prefix}encoder.layer.0.intermediate.dense.weight")
    } else {
        format!("{prefix}encoder.x_layers.0.lang_inter.dense.weight")
    };
    let intermediate_size = shapes.get(&intermediate_name, 2)?[0];
    let video_dense = shapes.get("video_dense.weight", 2)?;
    if video_dense[1] != swin.num_features() {
        return Err(LoadError::Config(format!(
            "video_dense.weight takes {} features but the Swin backbone gives {}",
            video_dense[1],
            swin.num_features()
        )));
    }

    let num_attention_heads = match bert {
        Some(bert) if bert.hidden_size != hidden_size => {
            return Err(LoadError::Config(format!(
                "the BERT configuration has hidden size {} but the checkpoint {hidden_size}",
                bert.hidden_size
            )));
        }
        Some(bert) => bert.num_attention_heads,
        None => hidden_size / BERT_HEAD_SIZE,
    };
    if num_attention_heads == 0 || !hidden_size.is_multiple_of(num_attention_heads) {
        return Err(LoadError::Config(format!(
            "cannot split the hidden size {hidden_size} into {num_attention_heads} attention heads; \
             give the BERT configuration the model was built from"
        )));
    }
    let defaults = BertConfig::new(0, 0, 0, 0, 0);
    let settings = bert.unwrap_or(&defaults);
    let bert = BertConfig::new(
        vocab_size,
        hidden_size,
        text_layers,
        num_attention_heads,
        intermediate_size,
    )
    .with_max_position_embeddings(positions)
    .with_type_vocab_size(types)
    .with_hidden_dropout_prob(settings.hidden_dropout_prob)
    .with_attention_probs_dropout_prob(settings.attention_probs_dropout_prob)
    .with_layer_norm_eps(settings.layer_norm_eps)
    .with_initializer_range(settings.initializer_range);
    let two_stream = TwoStreamEncoderConfig::new(bert, text_layers, visual_layers, cross_layers);
    Ok(VideoTextEncoderConfig::new(swin, two_stream))
}
