//! vidcls: train and run multimodal short-video classifiers on Burn.
//!
//! The command-line interface as a library: `vidcls` (`src/main.rs`) parses its arguments and
//! calls [`execute`]; recipes (`examples/`) run the same commands in-process with [`run`].

mod commands;
mod device;
mod flops;
mod issues;
pub mod memory;
mod progress;

use clap::{Parser, Subcommand};

/// Multimodal short-video classification (frames + title + speech + on-screen text) on Burn,
/// compatible with the WeChat Big Data Challenge 2022 reference.
#[derive(Parser)]
#[command(
    name = "vidcls",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = ENVIRONMENT
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The environment variables vidcls reads, shown by `--help`.
const ENVIRONMENT: &str = "\
Environment:
  RUST_LOG            log level and filters (default: info), e.g. RUST_LOG=warn or debug
  RAYON_NUM_THREADS   CPU threads of preprocessing and of the CPU backend (default: all cores)
  CUDA_VISIBLE_DEVICES  which GPU `--device cuda` uses (GPU 0 of those visible; builds with
                      --features cuda only)

Exit codes: 0 success, 1 error (bad input, I/O), 2 usage error.";

/// The subcommands.
#[derive(Subcommand)]
enum Command {
    /// Write a synthetic dataset in the competition's layout.
    Synth(commands::synth::SynthArgs),
    /// Show what preprocessing makes of each video (one JSON object per line).
    Inspect(commands::inspect::InspectArgs),
    /// Score a result file against a ground truth with the competition's metric.
    Evaluate(commands::evaluate::EvaluateArgs),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Walk through vidcls on a small built-in synthetic dataset: generate it, pre-train,
    /// fine-tune, predict and score with the competition's metric.
    Demo(commands::demo::DemoArgs),
    /// Predict the category of every video of an annotation file with a classifier checkpoint.
    Predict(commands::predict::PredictArgs),
    /// Fine-tune a classifier on labeled videos (the reference's recipe by default).
    Finetune(Box<commands::finetune::FinetuneArgs>),
    /// Pre-train the encoder on unlabeled videos (masked language modelling + video-text
    /// matching, the visual backbone frozen).
    Pretrain(Box<commands::pretrain::PretrainArgs>),
    /// Extract Swin features of the frames of every video into a features zip.
    ExtractFeatures(commands::extract_features::ExtractFeaturesArgs),
    /// Write a checkpoint (classifier or pre-training model) as reference safetensors, or a
    /// classifier as a vidcls run directory.
    Export(commands::export::ExportArgs),
    /// Average the weights of several fine-tuned classifiers of one configuration (the
    /// reference's SWA) into a new run directory.
    Average(commands::average::AverageArgs),
}

/// Runs the command of a parsed command line.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Synth(args) => commands::synth::run(&args),
        Command::Inspect(args) => commands::inspect::run(&args),
        Command::Evaluate(args) => commands::evaluate::run(&args),
        Command::Bench(command) => commands::bench::run(&command),
        Command::Demo(args) => commands::demo::run(&args),
        Command::Predict(args) => commands::predict::run(&args),
        Command::Finetune(args) => commands::finetune::run(&args),
        Command::Pretrain(args) => commands::pretrain::run(&args),
        Command::ExtractFeatures(args) => commands::extract_features::run(&args),
        Command::Export(args) => commands::export::run(&args),
        Command::Average(args) => commands::average::run(&args),
    }
}

/// Runs `vidcls ARGS...` in-process (`args` without the program name), e.g.
/// `run(["evaluate", "--result", "result.csv", "--ground-truth", "truth.csv"])`.
pub fn run<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args =
        std::iter::once(std::ffi::OsString::from("vidcls")).chain(args.into_iter().map(Into::into));
    execute(Cli::try_parse_from(args)?)
}
