//! Validation of model configurations read from files (run directories, HuggingFace
//! `config.json`, shapes of a checkpoint): impossible or absurd values are refused with a clear
//! message before anything is allocated or a layer panics on them.

use crate::bert::BertConfig;
use crate::cross_modality::TwoStreamEncoderConfig;
use crate::swin::SwinConfig;
use crate::video::{VideoModelConfig, VideoTextEncoderConfig};

/// The most layers of any one kind (text, visual, cross-modality, Swin blocks of a stage).
pub const MAX_LAYERS: usize = 256;
/// The largest hidden, intermediate or embedding size.
pub const MAX_WIDTH: usize = 1 << 16;
/// The largest vocabulary, position table or number of classes.
pub const MAX_ENTRIES: usize = 1 << 24;
/// The most parameters a model may have: 2^32 (16 GiB of f32 weights).
pub const MAX_PARAMETERS: u128 = 1 << 32;

/// Checks that `value` is in `1..=max`.
fn positive(name: &str, value: usize, max: usize) -> Result<(), String> {
    if value == 0 || value > max {
        return Err(format!("{name} = {value} is not in 1..={max}"));
    }
    Ok(())
}

/// Checks that `value` is a probability usable as a dropout rate (`0 <= p < 1`).
fn probability(name: &str, value: f64) -> Result<(), String> {
    if !(0.0..1.0).contains(&value) {
        return Err(format!("{name} = {value} is not in [0, 1)"));
    }
    Ok(())
}

impl BertConfig {
    /// Checks sizes (heads dividing the hidden size, nothing zero or absurd), dropout rates
    /// and the LayerNorm epsilon.
    pub fn validate(&self) -> Result<(), String> {
        positive("vocab_size", self.vocab_size, MAX_ENTRIES)?;
        positive("hidden_size", self.hidden_size, MAX_WIDTH)?;
        positive("num_attention_heads", self.num_attention_heads, MAX_WIDTH)?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        positive("intermediate_size", self.intermediate_size, MAX_WIDTH)?;
        positive(
            "max_position_embeddings",
            self.max_position_embeddings,
            MAX_ENTRIES,
        )?;
        positive("type_vocab_size", self.type_vocab_size, MAX_ENTRIES)?;
        if self.num_hidden_layers > MAX_LAYERS {
            return Err(format!(
                "num_hidden_layers = {} is above {MAX_LAYERS}",
                self.num_hidden_layers
            ));
        }
        probability("hidden_dropout_prob", self.hidden_dropout_prob)?;
        probability(
            "attention_probs_dropout_prob",
            self.attention_probs_dropout_prob,
        )?;
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return Err(format!(
                "layer_norm_eps = {} is not in (0, 1)",
                self.layer_norm_eps
            ));
        }
        if !(self.initializer_range.is_finite() && self.initializer_range >= 0.0) {
            return Err(format!(
                "initializer_range = {} is not a finite non-negative number",
                self.initializer_range
            ));
        }
        Ok(())
    }

    /// Parameters of the embeddings, the pooler and `layers` encoder layers.
    fn parameters(&self, layers: u128) -> u128 {
        let hidden = self.hidden_size as u128;
        let entries =
            (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) as u128;
        let layer = 4 * hidden * hidden + 2 * hidden * self.intermediate_size as u128;
        entries * hidden + hidden * hidden + layers * layer
    }
}

impl SwinConfig {
    /// Checks sizes and that every stage's map splits into whole windows and halves evenly,
    /// as the model needs.
    pub fn validate(&self) -> Result<(), String> {
        positive("Swin img_size", self.img_size, MAX_WIDTH)?;
        positive("Swin patch_size", self.patch_size, self.img_size)?;
        positive("Swin in_channels", self.in_channels, 64)?;
        positive("Swin embed_dim", self.embed_dim, MAX_WIDTH)?;
        positive("Swin window_size", self.window_size, MAX_WIDTH)?;
        positive("number of Swin stages", self.depths.len(), 8)?;
        if self.num_heads.len() != self.depths.len() {
            return Err(format!(
                "Swin has {} stages but {} head counts",
                self.depths.len(),
                self.num_heads.len()
            ));
        }
        for (stage, (&depth, &heads)) in self.depths.iter().zip(&self.num_heads).enumerate() {
            positive(&format!("Swin depth of stage {stage}"), depth, MAX_LAYERS)?;
            let dim = self.embed_dim << stage;
            positive(&format!("Swin heads of stage {stage}"), heads, dim)?;
            if !dim.is_multiple_of(heads) {
                return Err(format!(
                    "Swin stage {stage}: {dim} features do not split into {heads} heads"
                ));
            }
        }
        if !(self.mlp_ratio > 0.0 && self.mlp_ratio <= 64.0) {
            return Err(format!(
                "Swin mlp_ratio = {} is not in (0, 64]",
                self.mlp_ratio
            ));
        }
        probability("Swin drop_path_rate", self.drop_path_rate)?;
        self.check_geometry()
    }

    fn check_geometry(&self) -> Result<(), String> {
        if !self.img_size.is_multiple_of(self.patch_size) {
            return Err(format!(
                "Swin input of {} px does not split into patches of {} px",
                self.img_size, self.patch_size
            ));
        }
        let patches = self.img_size / self.patch_size;
        let stages = self.depths.len();
        for stage in 0..stages {
            let side = patches >> stage;
            let window = self.window_size.min(side);
            let halves = stage + 1 == stages || side.is_multiple_of(2);
            if side == 0 || !side.is_multiple_of(window) || !halves {
                return Err(format!(
                    "Swin stage {stage} map of {side}x{side} tokens does not fit windows of \
                     {window} (input {} px, patch {} px)",
                    self.img_size, self.patch_size
                ));
            }
        }
        Ok(())
    }

    /// Parameters of the backbone (weights of attention and MLP; smaller terms ignored).
    fn parameters(&self) -> u128 {
        let per_feature = 4.0 + 2.0 * self.mlp_ratio;
        self.depths
            .iter()
            .enumerate()
            .map(|(stage, &depth)| {
                let dim = (self.embed_dim << stage) as f64;
                (depth as f64 * per_feature * dim * dim) as u128
            })
            .sum()
    }
}

impl TwoStreamEncoderConfig {
    /// Checks the BERT sizes and the layer counts.
    pub fn validate(&self) -> Result<(), String> {
        self.bert.validate()?;
        for (name, layers) in [
            ("text_layers", self.text_layers),
            ("visual_layers", self.visual_layers),
            ("cross_layers", self.cross_layers),
        ] {
            if layers > MAX_LAYERS {
                return Err(format!("{name} = {layers} is above {MAX_LAYERS}"));
            }
        }
        Ok(())
    }
}

impl VideoModelConfig {
    /// Checks every part of the configuration and that the whole model stays below
    /// [`MAX_PARAMETERS`].
    pub fn validate(&self) -> Result<(), String> {
        let VideoTextEncoderConfig {
            swin, two_stream, ..
        } = &self.encoder;
        swin.validate()?;
        two_stream.validate()?;
        positive("num_classes", self.num_classes, MAX_ENTRIES)?;
        probability("classifier_dropout", self.classifier_dropout)?;
        // A cross-modality layer holds about three BERT layers (two self-attentions, one
        // cross-attention, two feed-forward blocks).
        let layers = (two_stream.text_layers
            + two_stream.visual_layers
            + 3 * two_stream.cross_layers) as u128;
        let hidden = two_stream.bert.hidden_size as u128;
        let parameters = swin.parameters()
            + two_stream.bert.parameters(layers)
            + hidden * (swin.num_features() as u128 + self.num_classes as u128);
        if parameters > MAX_PARAMETERS {
            return Err(format!(
                "the model would have about {parameters} parameters, above the limit of \
                 {MAX_PARAMETERS}"
            ));
        }
        Ok(())
    }
}
