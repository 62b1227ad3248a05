//! `--preset` on the command line.

use clap::ValueEnum;
use vidcls_training::config::Preset;

/// A preset's name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// The reference (Swin-T + 12-layer BERT + 5 cross layers) and its recipe.
    Seed,
    /// A small model trained from scratch on CPU.
    Tiny,
}

impl From<PresetArg> for Preset {
    fn from(preset: PresetArg) -> Self {
        match preset {
            PresetArg::Seed => Preset::Seed,
            PresetArg::Tiny => Preset::Tiny,
        }
    }
}
