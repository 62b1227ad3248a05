//! The datasets a model is trained on and applied to, prepared as its run says: frame size,
//! frame slots and text layout (a model trained on 32 px frames and compact text must be fed
//! the same at prediction).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use vidcls_datasets::dataset::{VideoDataset, VisualSource};
use vidcls_datasets::tokenizer::TextEncoder;

use crate::config::TrainingConfig;

/// The tokenizer of `dir` with the text layout of `training`.
pub fn text_encoder(dir: &Path, training: &TrainingConfig) -> Result<TextEncoder> {
    Ok(TextEncoder::from_dir(dir)?.with_layout(training.text_layout, training.max_text_len))
}

/// The videos of an annotation file prepared as `training` says; `labeled` requires and keeps
/// their categories.
pub fn open_dataset(
    annotations: &Path,
    visual: VisualSource,
    text: Arc<TextEncoder>,
    training: &TrainingConfig,
    labeled: bool,
) -> Result<VideoDataset> {
    let dataset = if labeled {
        VideoDataset::labeled(annotations, visual, text, training.max_frames)?
    } else {
        VideoDataset::unlabeled(annotations, visual, text, training.max_frames)?
    };
    Ok(dataset.with_frame_side(training.frame_side)?)
}
