//! `vidcls synth`: write a synthetic dataset in the competition's layout.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use vidcls_datasets::synth::{DEFAULT_FRAME_CUE, SynthConfig, write_synthetic_dataset};

use crate::progress::bar;

/// Arguments of `vidcls synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output directory (created; must not exist or be empty). Gets `annotations/*.json`,
    /// `zip_frames/<split>/<id[-3:]>/<id>.zip`, `test_ground_truth.csv` and `bert/` (a
    /// `vocab.txt` covering the texts and a small BERT `config.json`).
    #[arg(long = "output", visible_alias = "out", value_name = "DIR")]
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
    /// Number of categories (1 to 200) the videos are drawn from: chosen from the seed, spread
    /// over the level-1 groups, with a skewed distribution among them.
    #[arg(long, default_value_t = 200)]
    pub categories: usize,
    /// Multiplies the probabilities (0.7, 0.3, 0.4) that a title, an ocr item and an asr carry
    /// their category's keyword, 0 to 1/0.7: 0 gives no keywords, 0.3 a weak text cue.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub text_cue: f64,
    /// Probability that a video's frames show their category's colour and stripes (otherwise
    /// those of a random category), 0 to 1.
    #[arg(long, default_value_t = DEFAULT_FRAME_CUE, allow_negative_numbers = true)]
    pub frame_cue: f64,
}

impl SynthArgs {
    /// The generator configuration these arguments ask for.
    pub fn config(&self) -> SynthConfig {
        SynthConfig {
            labeled: self.labeled,
            unlabeled: self.unlabeled,
            test: self.test,
            seed: self.seed,
            categories: self.categories,
            text_cue: self.text_cue,
            frame_cue: self.frame_cue,
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SynthArgs,
    }

    #[test]
    fn defaults_match_the_generator_defaults() {
        let cli = Cli::parse_from(["synth", "--out", "data"]);
        assert_eq!(cli.args.config(), SynthConfig::default());
    }
}
