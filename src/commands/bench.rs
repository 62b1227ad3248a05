//! `vidcls bench`: throughput measurements.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::data::dataloader::DataLoader;
use burn::prelude::Backend;
use clap::{Args, Subcommand};
use rayon::prelude::*;
use serde::Serialize;
use vidcls_datasets::dataset::{VideoDataset, VisualSource};
use vidcls_datasets::frames::DEFAULT_MAX_FRAMES;
use vidcls_datasets::loader::VideoLoader;
use vidcls_datasets::synth::{SynthConfig, write_synthetic_dataset};
use vidcls_datasets::tokenizer::TextEncoder;

use super::flags;
use crate::device::{BackendTask, DeviceKind, run_on};

/// What to measure.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Videos/s of the full per-video data pipeline (unzip, decode the selected frames,
    /// resize/crop/normalize, text pipeline, tokenization), on one core and on all cores.
    Data(DataBenchArgs),
    /// Videos/s of the classifier's forward pass (inference, no gradients) on random inputs.
    Infer(super::bench_infer::InferBenchArgs),
    /// Videos/s of full fine-tuning steps (forward, backward, FGM, BertAdam, EMA) on random
    /// inputs.
    Train(super::bench_train::TrainBenchArgs),
}

/// Arguments of `vidcls bench data`.
#[derive(Args, Debug)]
pub struct DataBenchArgs {
    /// Annotation file to measure on; without it a synthetic dataset is generated.
    #[arg(long, value_name = "FILE", requires_all = ["frames", "bert_dir"])]
    pub annotations: Option<PathBuf>,
    /// Frames directory of that annotation file.
    #[arg(long, value_name = "DIR", requires = "annotations")]
    pub frames: Option<PathBuf>,
    /// BERT directory with the vocabulary.
    #[arg(long, value_name = "DIR", requires = "annotations")]
    pub bert_dir: Option<PathBuf>,
    /// Videos of the synthetic dataset (when no --annotations).
    #[arg(long, default_value_t = 300, value_parser = flags::positive)]
    pub videos: usize,
    /// Use at most this many videos of the annotation file.
    #[arg(long, value_parser = flags::positive)]
    pub limit: Option<usize>,
    /// Frame slots per video.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAMES, value_parser = flags::positive)]
    pub max_frames: usize,
    /// Videos per batch of the data-loader measurement.
    #[arg(long, default_value_t = 16, value_parser = flags::positive)]
    pub batch_size: usize,
    /// Device the data loader puts the batches on.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Passes of the all-cores and loader measurements, taken in turns; the best of each is
    /// reported (the one least slowed down by other work on the machine).
    #[arg(long, default_value_t = 3, value_parser = flags::positive)]
    pub repeats: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct DataBenchReport {
    videos: usize,
    frames_decoded: usize,
    per_core_videos_per_s: f64,
    all_cores_videos_per_s: f64,
    loader_videos_per_s: f64,
    /// The loader's rate as a share of the all-cores rate.
    loader_share: f64,
    cores: usize,
    repeats: usize,
}

/// Iterates the training loader (`VideoLoader`: what `finetune` and `pretrain` feed their
/// steps with) over the dataset into device tensors.
struct LoaderThroughput {
    dataset: VideoDataset,
    pad_id: u32,
    batch_size: usize,
    workers: usize,
}

impl BackendTask for LoaderThroughput {
    type Output = f64;

    fn run<B: Backend>(self, device: B::Device) -> Result<f64> {
        let loader = VideoLoader::<B>::new(
            self.dataset,
            self.pad_id,
            self.batch_size,
            self.workers,
            device,
        );
        let start = Instant::now();
        let mut videos = 0;
        for batch in loader.iter() {
            videos += batch.ids.len();
        }
        Ok(videos as f64 / start.elapsed().as_secs_f64())
    }
}

/// Runs `vidcls bench ...`.
pub fn run(command: &BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Data(args) => bench_data(args),
        BenchCommand::Infer(args) => super::bench_infer::run(args),
        BenchCommand::Train(args) => super::bench_train::run(args),
    }
}

fn bench_data(args: &DataBenchArgs) -> Result<()> {
    let synthetic;
    let (annotations, frames, bert_dir) = match (&args.annotations, &args.frames, &args.bert_dir) {
        (Some(a), Some(f), Some(b)) => (a.clone(), f.clone(), b.clone()),
        _ => {
            synthetic = tempfile::tempdir().context("creating a temporary directory")?;
            let root = synthetic.path().join("data");
            log::info!(
                "generating {} synthetic videos in {}",
                args.videos,
                root.display()
            );
            let config = SynthConfig {
                labeled: args.videos,
                unlabeled: 0,
                test: 0,
                seed: 7,
                ..SynthConfig::default()
            };
            write_synthetic_dataset(&root, &config, &|| {})?;
            (
                root.join("annotations/labeled.json"),
                root.join("zip_frames/labeled"),
                root.join("bert"),
            )
        }
    };
    let text = Arc::new(TextEncoder::from_dir(&bert_dir)?);
    let pad_id = text.special_tokens().pad;
    let dataset = VideoDataset::unlabeled(
        &annotations,
        VisualSource::frames(&frames)?,
        text,
        args.max_frames,
    )?;
    let count = args
        .limit
        .unwrap_or(usize::MAX)
        .min(dataset.annotations().len());
    let frames_decoded = (0..count)
        .map(|i| dataset.item(i).visual.frame_mask.iter().sum::<u32>() as usize)
        .sum();

    let measure = |threads: usize| -> Result<f64> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let start = Instant::now();
        let real: usize = pool.install(|| {
            (0..count)
                .into_par_iter()
                .map(|i| dataset.item(i).input_ids.len().min(1))
                .sum()
        });
        let elapsed = start.elapsed().as_secs_f64();
        anyhow::ensure!(real == count, "some videos produced no text ids");
        Ok(count as f64 / elapsed)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_core_videos_per_s = measure(1)?;
    let selected = dataset.select((0..count).collect());
    let (mut all_cores_videos_per_s, mut loader_videos_per_s) = (0.0f64, 0.0f64);
    for _ in 0..args.repeats {
        all_cores_videos_per_s = all_cores_videos_per_s.max(measure(cores)?);
        let loader = LoaderThroughput {
            dataset: selected.clone(),
            pad_id,
            batch_size: args.batch_size,
            workers: cores,
        };
        loader_videos_per_s = loader_videos_per_s.max(run_on(args.device, loader)?);
    }
    let report = DataBenchReport {
        videos: count,
        frames_decoded,
        per_core_videos_per_s,
        all_cores_videos_per_s,
        loader_videos_per_s,
        loader_share: loader_videos_per_s / all_cores_videos_per_s,
        cores,
        repeats: args.repeats,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "data pipeline over {} videos ({} frames decoded):",
            report.videos, report.frames_decoded
        );
        println!("  1 core:   {:>8.1} videos/s", report.per_core_videos_per_s);
        println!(
            "  {} cores: {:>8.1} videos/s",
            report.cores, report.all_cores_videos_per_s
        );
        println!(
            "  training loader ({} workers, batch {}, {:?}): {:.1} videos/s ({:.0}% of {} cores)",
            report.cores,
            args.batch_size,
            args.device,
            report.loader_videos_per_s,
            100.0 * report.loader_share,
            report.cores
        );
        println!("  (best of {} passes each)", report.repeats);
    }
    Ok(())
}
