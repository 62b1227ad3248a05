//! The fine-tuning configuration and its presets.

use serde::{Deserialize, Serialize};
use vidcls_datasets::frames::{CROP_SIZE, DEFAULT_MAX_FRAMES};
use vidcls_datasets::split::{DEFAULT_SPLIT_SEED, DEFAULT_VALIDATION_RATIO};
use vidcls_datasets::tokenizer::{SEED_LEN, TextLayout};
use vidcls_model::VideoModelConfig;

/// Adversarial training on the word-embedding matrix (REFERENCE.md, "Fine-tuning").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Adversarial {
    /// No adversarial pass.
    None,
    /// Fast Gradient Method: one extra pass with the matrix moved by `eps * g / ||g||`.
    Fgm {
        /// Size of the perturbation (Frobenius norm).
        eps: f64,
    },
    /// Projected Gradient Descent: `steps` extra passes, each moving the matrix by
    /// `alpha * g / ||g||` within a ball of radius `eps` around the original matrix; the
    /// gradients of the clean pass and of the last perturbed pass are summed.
    Pgd {
        /// Number of attack steps.
        steps: usize,
        /// Size of each step.
        alpha: f64,
        /// Radius of the ball the perturbation stays in.
        eps: f64,
    },
}

impl Adversarial {
    /// The reference's FGM (eps 1.0).
    pub const FGM: Adversarial = Adversarial::Fgm { eps: 1.0 };
    /// The reference's PGD settings (3 steps of 0.3, radius 1.0).
    pub const PGD: Adversarial = Adversarial::Pgd {
        steps: 3,
        alpha: 0.3,
        eps: 1.0,
    };
}

/// Which optimizer updates the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// The reference's BertAdam: Adam moments without bias correction, eps outside the square
    /// root, decoupled weight decay, and the reference's double learning-rate schedule.
    BertAdam,
    /// Standard AdamW (bias correction) with a linear warm-up and decay.
    AdamW,
}

/// A named starting point: a model configuration and its training defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The reference: Swin-T on 224 px frames, a 12-layer 768-wide BERT, 5 cross-modality
    /// layers; the reference's fine-tuning recipe.
    Seed,
    /// A small model trained from scratch on CPU: a micro Swin on 32 px frames, a 2-layer
    /// 64-wide BERT, 1 cross-modality layer.
    Tiny,
}

impl Preset {
    /// The model of the preset, for a tokenizer of `vocab_size` ids (the tiny model's
    /// vocabulary is the tokenizer's; the reference's is 21128, as its BERT).
    pub fn model(self, vocab_size: usize) -> VideoModelConfig {
        match self {
            Preset::Seed => VideoModelConfig::seed(),
            Preset::Tiny => {
                let mut model = VideoModelConfig::tiny();
                let bert = &mut model.encoder.two_stream.bert;
                bert.vocab_size = vocab_size;
                // Dropout on the attention probabilities draws a random number per score: on a
                // CPU that costs more than the small model's attention itself.
                bert.attention_probs_dropout_prob = 0.0;
                model
            }
        }
    }

    /// The training defaults of the preset.
    pub fn training(self) -> TrainingConfig {
        match self {
            Preset::Seed => TrainingConfig::seed(),
            Preset::Tiny => TrainingConfig::tiny(),
        }
    }

    /// The pre-training defaults of the preset: its fine-tuning defaults (data layout,
    /// optimizer, schedule, checkpoints) with the reference's pre-training values where it
    /// states them (batch 50, lr 5e-5 for the seed preset) and the parts of fine-tuning that
    /// pre-training has not: no adversarial pass, no EMA, no label smoothing, no resampling,
    /// no validation share (see [`PretrainingConfig::val_size`]); the visual backbone frozen.
    pub fn pretraining(self) -> TrainingConfig {
        let base = self.training();
        let (batch_size, lr) = match self {
            Preset::Seed => (50, 5e-5),
            Preset::Tiny => (base.batch_size, base.lr),
        };
        TrainingConfig {
            batch_size,
            lr,
            adversarial: Adversarial::None,
            ema_decay: 0.0,
            label_smoothing: 0.0,
            resample: false,
            val_ratio: 0.0,
            freeze_visual: true,
            ..base
        }
    }
}

/// What pre-training adds to the training configuration (REFERENCE.md, "Pre-training").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PretrainingConfig {
    /// Probability that a non-special token is chosen for MLM.
    pub mask_prob: f64,
    /// Weight of the ITM loss in `L = L_mlm + itm_weight * L_itm`.
    pub itm_weight: f64,
    /// Videos held out for validation (at most a tenth of the videos; 0 = no validation).
    pub val_size: usize,
}

impl Default for PretrainingConfig {
    fn default() -> Self {
        PretrainingConfig {
            mask_prob: 0.15,
            itm_weight: 0.3,
            val_size: 5000,
        }
    }
}

impl PretrainingConfig {
    /// The share of the videos that validation may take at most.
    pub const MAX_VAL_SHARE: f64 = 0.1;

    /// Validation videos out of `videos`: `val_size`, at most [`Self::MAX_VAL_SHARE`] of them.
    pub fn validation_videos(&self, videos: usize) -> usize {
        self.val_size
            .min((videos as f64 * Self::MAX_VAL_SHARE).floor() as usize)
    }

    /// Checks that the values make sense, naming the first one that does not.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.mask_prob > 0.0 && self.mask_prob < 1.0) {
            return Err("the masking probability must be in (0, 1)".into());
        }
        if !(self.itm_weight.is_finite() && self.itm_weight >= 0.0) {
            return Err("the ITM weight must be >= 0".into());
        }
        Ok(())
    }
}

/// Everything a fine-tuning run needs besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingConfig {
    /// Passes over the (resampled) training set.
    pub epochs: usize,
    /// Stop after this many optimizer steps (the schedule then spans this many steps).
    pub max_steps: Option<usize>,
    /// Videos per optimizer step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps of the linear schedule (`lambda`).
    pub warmup_steps: usize,
    /// Warm-up share of the BertAdam schedule factor (`w`).
    pub warmup_ratio: f64,
    /// Decoupled weight decay (not applied to biases and BERT LayerNorm weights).
    pub weight_decay: f64,
    /// Adam's first-moment decay.
    pub beta1: f64,
    /// Adam's second-moment decay.
    pub beta2: f64,
    /// Adam's epsilon.
    pub adam_eps: f64,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Seed of the data order, dropout and the validation split.
    pub seed: u64,
    /// Adversarial training.
    pub adversarial: Adversarial,
    /// Decay of the exponential moving average of the weights (0 = no EMA).
    pub ema_decay: f64,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f64,
    /// Repeat the training videos of rare categories (5/3/2/1 copies).
    pub resample: bool,
    /// Shuffle the training videos every epoch (else annotation order).
    pub shuffle: bool,
    /// Share of the labeled videos held out for validation (stratified), when no explicit
    /// validation set is given; 0 = none.
    pub val_ratio: f64,
    /// Seed of the validation split.
    pub split_seed: u64,
    /// Overrides every dropout and stochastic-depth probability of the model.
    pub dropout: Option<f64>,
    /// Keep the visual backbone fixed (no gradients, no optimizer state).
    pub freeze_visual: bool,
    /// Frame slots per video.
    pub max_frames: usize,
    /// Side of the frames the model sees: the reference's 224 px crops, or smaller (a divisor
    /// of 224) for small models.
    pub frame_side: usize,
    /// How the title, ocr and asr tokens are laid out (the reference's 388 ids, or compact).
    pub text_layout: TextLayout,
    /// The most ids of the compact layout.
    pub max_text_len: usize,
    /// Optimizer steps between resumable checkpoints (0 = only at epoch ends).
    pub checkpoint_every: usize,
    /// Optimizer steps between log lines when the dashboard is off.
    pub log_every: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self::seed()
    }
}

impl TrainingConfig {
    /// The reference's recipe (REFERENCE.md, "Fine-tuning"): batch 26, lr 4e-5, 5 epochs,
    /// BertAdam with 1000 warm-up steps and a 0.1 warm-up ratio, decay 0.01, FGM, EMA 0.999,
    /// label smoothing 0.1, resampling, a stratified 2% validation split, seed 2022.
    pub fn seed() -> Self {
        TrainingConfig {
            epochs: 5,
            max_steps: None,
            batch_size: 26,
            lr: 4e-5,
            warmup_steps: 1000,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-6,
            optimizer: OptimizerKind::BertAdam,
            seed: DEFAULT_SPLIT_SEED,
            adversarial: Adversarial::FGM,
            ema_decay: 0.999,
            label_smoothing: 0.1,
            resample: true,
            shuffle: true,
            val_ratio: DEFAULT_VALIDATION_RATIO,
            split_seed: DEFAULT_SPLIT_SEED,
            dropout: None,
            freeze_visual: false,
            max_frames: DEFAULT_MAX_FRAMES,
            frame_side: CROP_SIZE,
            text_layout: TextLayout::Seed,
            max_text_len: SEED_LEN,
            checkpoint_every: 500,
            log_every: 50,
        }
    }

    /// A small model trained from scratch on CPU (see the book's "Fine-tuning" chapter for the
    /// measurements behind these values): 32 px frames, the compact text layout (at most 192
    /// ids), batch 8, lr 1e-3 with a short warm-up, 6 epochs, no adversarial pass (FGM's
    /// perturbation of norm 1 is large next to freshly initialised embeddings, and it slowed
    /// learning as much as it doubled the cost), EMA 0.95 (a run of a few hundred steps needs a
    /// short average), no resampling (on a small set every category is "rare", so the
    /// reference's rule only repeats everything), 10% validation.
    pub fn tiny() -> Self {
        TrainingConfig {
            epochs: 6,
            batch_size: 8,
            lr: 1e-3,
            adversarial: Adversarial::None,
            warmup_steps: 20,
            warmup_ratio: 0.05,
            ema_decay: 0.95,
            resample: false,
            frame_side: 32,
            text_layout: TextLayout::Compact,
            max_text_len: 192,
            val_ratio: 0.1,
            checkpoint_every: 50,
            log_every: 10,
            ..Self::seed()
        }
    }

    /// Checks that the values make sense, naming the first one that does not.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, message: &str| if ok { Ok(()) } else { Err(message.to_string()) };
        check(self.epochs > 0, "epochs must be positive")?;
        check(self.max_steps != Some(0), "max steps must be positive")?;
        check(self.batch_size > 0, "batch size must be positive")?;
        check(
            self.lr.is_finite() && self.lr >= 0.0,
            "the learning rate must be >= 0",
        )?;
        check(
            self.warmup_ratio > 0.0 && self.warmup_ratio < 1.0,
            "the warm-up ratio must be in (0, 1)",
        )?;
        check(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "weight decay must be >= 0",
        )?;
        check(
            (0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2),
            "Adam betas must be in [0, 1)",
        )?;
        check(self.adam_eps > 0.0, "Adam's epsilon must be positive")?;
        check(
            (0.0..1.0).contains(&self.ema_decay),
            "the EMA decay must be in [0, 1)",
        )?;
        check(
            (0.0..=1.0).contains(&self.label_smoothing),
            "label smoothing must be in [0, 1]",
        )?;
        check(
            (0.0..1.0).contains(&self.val_ratio),
            "the validation ratio must be in [0, 1)",
        )?;
        check(
            self.dropout.is_none_or(|p| (0.0..1.0).contains(&p)),
            "dropout must be in [0, 1)",
        )?;
        check(self.max_frames > 0, "frames per video must be positive")?;
        check(self.max_text_len >= 4, "the text length must be at least 4")?;
        check(
            self.text_layout == TextLayout::Compact || self.max_text_len == SEED_LEN,
            "the text length can only be changed with the compact text layout (the \
             reference's layout is always 388 ids)",
        )?;
        check(
            self.frame_side > 0 && CROP_SIZE.is_multiple_of(self.frame_side),
            "the frame size must divide 224",
        )?;
        match self.adversarial {
            Adversarial::None => Ok(()),
            Adversarial::Fgm { eps } => check(eps > 0.0, "the FGM epsilon must be positive"),
            Adversarial::Pgd { steps, alpha, eps } => check(
                steps > 0 && alpha > 0.0 && eps > 0.0,
                "PGD needs positive steps, alpha and epsilon",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip_through_json() {
        for config in [TrainingConfig::seed(), TrainingConfig::tiny()] {
            config.validate().unwrap();
            let json = serde_json::to_string(&config).unwrap();
            assert_eq!(
                serde_json::from_str::<TrainingConfig>(&json).unwrap(),
                config
            );
        }
        let partial: TrainingConfig = serde_json::from_str(r#"{"lr": 0.5}"#).unwrap();
        assert_eq!(partial.lr, 0.5);
        assert_eq!(partial.batch_size, 26);
        let bad = TrainingConfig {
            frame_side: 30,
            ..TrainingConfig::seed()
        };
        assert!(bad.validate().unwrap_err().contains("224"));
        let ignored_length = TrainingConfig {
            max_text_len: 64,
            ..TrainingConfig::seed()
        };
        assert!(ignored_length.validate().unwrap_err().contains("compact"));
        let compact = TrainingConfig {
            max_text_len: 64,
            ..TrainingConfig::tiny()
        };
        compact.validate().unwrap();
    }
}
