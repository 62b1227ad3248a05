//! `vidcls average`: checkpoint averaging (the reference's SWA).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use vidcls_training::average::average_runs;

/// Arguments of `vidcls average`.
#[derive(Args, Debug)]
pub struct AverageArgs {
    /// Run directories of fine-tuned classifiers with one model configuration.
    #[arg(long, value_name = "RUN_DIR", num_args = 2.., required = true)]
    pub checkpoints: Vec<PathBuf>,
    /// The run directory to write (must not exist or be empty).
    #[arg(long, value_name = "RUN_DIR")]
    pub output: PathBuf,
}

/// Runs `vidcls average`.
pub fn run(args: &AverageArgs) -> Result<()> {
    average_runs(&args.checkpoints, &args.output)?;
    log::info!(
        "wrote the mean of {} checkpoints to {}",
        args.checkpoints.len(),
        args.output.display()
    );
    Ok(())
}
