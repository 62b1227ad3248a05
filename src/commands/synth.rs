//! `vidcls synth`: write a synthetic dataset in the competition's layout.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use vidcls_datasets::synth::{SynthConfig, write_synthetic_dataset};

use crate::progress::bar;

/// Arguments of `vidcls synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output directory (created; must not exist or be empty). Gets `annotations/*.json`,
    /// `zip_frames/<split>/<id[-3:]>/<id>.zip`, `test_ground_truth.csv` and `bert/` (a
    /// `vocab.txt` covering the texts and a small BERT `config.json`).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of labeled videos.
    #[arg(long, default_value_t = 1000)]
    pub labeled: usize,
    /// Number of unlabeled videos.
    #[arg(long, default_value_t = 500)]
    pub unlabeled: usize,
    /// Number of test videos (their labels go to `test_ground_truth.csv`).
    #[arg(long, default_value_t = 200)]
    pub test: usize,
    /// Random seed; the same seed gives the same dataset.
    #[arg(long, default_value_t = 2022)]
    pub seed: u64,
}

impl SynthArgs {
    /// The generator configuration these arguments ask for.
    pub fn config(&self) -> SynthConfig {
        SynthConfig {
            labeled: self.labeled,
            unlabeled: self.unlabeled,
            test: self.test,
            seed: self.seed,
        }
    }
}

/// Runs `vidcls synth`.
pub fn run(args: &SynthArgs) -> Result<()> {
    let config = args.config();
    let progress = bar(
        (config.labeled + config.unlabeled + config.test) as u64,
        "synth",
    );
    let summary = write_synthetic_dataset(&args.out, &config, &|| progress.inc(1))?;
    progress.finish_and_clear();
    let videos: Vec<String> = summary
        .videos
        .iter()
        .map(|(split, count)| format!("{count} {split}"))
        .collect();
    log::info!(
        "wrote {} videos ({}), {} frames, {} videos without a frames zip, into {}",
        summary.videos.iter().map(|(_, n)| n).sum::<usize>(),
        videos.join(", "),
        summary.frames,
        summary.missing_zips,
        args.out.display()
    );
    Ok(())
}
