//! `vidcls predict`: the category of every video of an annotation file, with a classifier
//! checkpoint (a vidcls run directory or a reference checkpoint).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;
use clap::Args;
use npyz::WriterBuilder;
use rayon::prelude::*;
use vidcls_datasets::batcher::{VideoBatch, VideoBatcher};
use vidcls_datasets::dataset::VideoItem;
use vidcls_datasets::taxonomy::Taxonomy;
use vidcls_datasets::tokenizer::{SEED_LEN, TextEncoder, TextLayout};
use vidcls_model::{VideoClassifier, VideoModelConfig};

use super::flags;
use super::visual_args::VisualArgs;
use crate::device::{BackendTask, DeviceKind, Workload, run_with_precision};
use crate::issues::IssueTally;
use crate::progress::bar;
use vidcls_datasets::output::{PendingFile, check_output};
use vidcls_datasets::prefetch::for_each_chunk;
use vidcls_model::kernels::MatmulPrecision;
use vidcls_training::batch::{ModelInputs, classify};
use vidcls_training::checkpoint::{LoadedClassifier, load_classifier};
use vidcls_training::config::TrainingConfig;
use vidcls_training::data::{open_dataset, text_encoder};

/// Arguments of `vidcls predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Classifier checkpoint: a vidcls run directory, or a reference checkpoint (`.pth` with
    /// `model_state_dict`, or `.safetensors` with the reference's names).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,
    /// HuggingFace BERT directory with the vocabulary (`vocab.txt` or `tokenizer.json`); for a
    /// reference checkpoint its `config.json` also gives the attention heads. Optional for a
    /// run directory that keeps its tokenizer.
    #[arg(long, value_name = "DIR")]
    pub bert_dir: Option<PathBuf>,
    /// Annotation file (a JSON array of videos).
    #[arg(long, value_name = "FILE")]
    pub annotations: PathBuf,
    #[command(flatten)]
    pub visual: VisualArgs,
    /// Where to write the predictions: CSV lines `id,category_id` in annotation order
    /// (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace the output files if they exist.
    #[arg(long)]
    pub overwrite: bool,
    /// Also write the raw class scores, float32 `[videos, classes]` in annotation order (`.npy`).
    #[arg(long, value_name = "FILE.npy")]
    pub logits: Option<PathBuf>,
    /// Videos per forward pass (a batch is always counted in videos).
    #[arg(long, default_value_t = 4, value_parser = flags::positive)]
    pub batch_size: usize,
    /// Frame slots per video (default: the run's, else 8).
    #[arg(long, value_parser = flags::positive)]
    pub max_frames: Option<usize>,
    /// Device to run the model on.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Precision of the matrix products: their inputs and weights are rounded to bf16 or f16
    /// and accumulated in f32, everything else stays f32 (about 1e-2 from f32 logits). On the
    /// CPU, `bf16` needs AVX512-BF16 and `f16` is slow; both are meant for CUDA's tensor cores.
    #[arg(long, value_enum, default_value_t = MatmulPrecision::F32)]
    pub precision: MatmulPrecision,
    /// Fail on the first unreadable video (no zip, empty zip, undecodable frame, no features)
    /// instead of warning and predicting it with its frame slots left empty.
    #[arg(long)]
    pub strict: bool,
}

/// Runs `vidcls predict`.
pub fn run(args: &PredictArgs) -> Result<()> {
    check_outputs(args)?;
    let start = Instant::now();
    let summary = run_with_precision(
        args.device,
        args.precision,
        Workload::Inference,
        Predict { args },
    )?;
    let seconds = start.elapsed().as_secs_f64();
    log::info!(
        "predicted {} videos in {seconds:.1} s ({:.2} videos/s) into {}",
        summary.videos,
        summary.videos as f64 / seconds,
        args.output.display()
    );
    if summary.issues.problems() > 0 {
        log::warn!(
            "{} problem(s) in {} of {} video(s): their missing frames were left as empty slots \
             (use --strict to make this an error)",
            summary.issues.problems(),
            summary.issues.videos_with_problems(),
            summary.videos
        );
    }
    Ok(())
}

/// Refuses outputs that would replace an input, each other, or (without `--overwrite`) an
/// existing file.
fn check_outputs(args: &PredictArgs) -> Result<()> {
    let mut inputs = vec![args.annotations.as_path(), args.checkpoint.as_path()];
    inputs.extend(args.bert_dir.as_deref());
    inputs.extend(args.visual.frames.as_deref());
    inputs.extend(args.visual.features.as_deref());
    if let Some(logits) = &args.logits {
        check_output(logits, &inputs, args.overwrite)?;
        inputs.push(logits);
    }
    if !is_stdout(&args.output) {
        check_output(&args.output, &inputs, args.overwrite)?;
    }
    Ok(())
}

/// Whether an output path is `-`, standard output.
fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// What a prediction run met.
struct Summary {
    videos: usize,
    issues: IssueTally,
}

struct Predict<'a> {
    args: &'a PredictArgs,
}

impl BackendTask for Predict<'_> {
    type Output = Summary;

    fn run<B: Backend>(self, device: B::Device) -> Result<Summary> {
        let args = self.args;
        let loaded = load_classifier::<B>(&args.checkpoint, args.bert_dir.as_deref(), &device)?;
        let mut data = loaded.data_settings();
        if let Some(max_frames) = args.max_frames {
            data.max_frames = max_frames;
        }
        let LoadedClassifier {
            config,
            model,
            tokenizer_dir,
            ..
        } = loaded;
        let tokenizer_dir = tokenizer_dir.with_context(|| {
            format!(
                "{} has no tokenizer: give --bert-dir",
                args.checkpoint.display()
            )
        })?;
        let text = text_encoder(&tokenizer_dir, &data)?;
        check_compatible(&config, &text, &data, args)?;
        let pad_id = text.special_tokens().pad;
        let source = args
            .visual
            .source_with_feature_dim(config.encoder.swin.num_features())?;
        let dataset = open_dataset(&args.annotations, source, Arc::new(text), &data, false)?;

        let videos = dataset.annotations().len();
        let mut writer = PredictionWriter::create(args, videos, config.num_classes)?;
        let batcher = VideoBatcher::new(pad_id);
        let progress = bar(videos as u64, "predict");
        let mut summary = Summary {
            videos,
            issues: IssueTally::new(args.strict),
        };
        for_each_chunk(
            videos,
            args.batch_size,
            |chunk| -> Vec<VideoItem> { chunk.par_iter().map(|&i| dataset.item(i)).collect() },
            |items| -> Result<()> {
                for item in &items {
                    if item.input_ids.is_empty() {
                        bail!("{}", item.issues.join("; "));
                    }
                    summary.issues.record(&item.issues, |issue| {
                        progress.suspend(|| log::warn!("{issue}"))
                    })?;
                }
                let count = items.len();
                let batch: VideoBatch<B> = batcher.batch(items, &device);
                let ids = batch.ids.clone();
                let logits = class_scores(&model, batch)?;
                writer.write(&ids, &logits)?;
                progress.inc(count as u64);
                Ok(())
            },
        )?;
        progress.finish_and_clear();
        writer.commit()?;
        Ok(summary)
    }
}

/// Checks that the model fits the data pipeline's inputs.
fn check_compatible(
    config: &VideoModelConfig,
    text: &TextEncoder,
    data: &TrainingConfig,
    args: &PredictArgs,
) -> Result<()> {
    let checkpoint = args.checkpoint.display();
    let bert = &config.encoder.two_stream.bert;
    ensure!(
        text.vocab_size() <= bert.vocab_size,
        "the tokenizer has {} ids but the model {checkpoint} embeds only {}: wrong --bert-dir?",
        text.vocab_size(),
        bert.vocab_size
    );
    let text_len = match data.text_layout {
        TextLayout::Seed => SEED_LEN,
        TextLayout::Compact => data.max_text_len,
    };
    ensure!(
        bert.max_position_embeddings >= text_len,
        "the model {checkpoint} has {} text positions, fewer than the {text_len} ids of a video",
        bert.max_position_embeddings
    );
    let classes = Taxonomy::get().num_classes();
    ensure!(
        config.num_classes <= classes,
        "the model {checkpoint} has {} classes, more than the {classes} categories",
        config.num_classes
    );
    let swin = &config.encoder.swin;
    if args.visual.frames.is_some() && swin.img_size != data.frame_side {
        bail!(
            "the model {checkpoint} takes {0}x{0} frames but frames are prepared as {1}x{1}",
            swin.img_size,
            data.frame_side
        );
    }
    Ok(())
}

/// The class scores of a batch, `[batch * classes]` row-major.
fn class_scores<B: Backend>(model: &VideoClassifier<B>, batch: VideoBatch<B>) -> Result<Vec<f32>> {
    classify(model, ModelInputs::from(batch))
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the model's output: {e:?}"))
}

/// Where the predictions go: a pending file, or standard output (each line as written).
enum CsvOutput {
    File(PendingFile),
    Stdout(std::io::Stdout),
}

impl CsvOutput {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            CsvOutput::File(file) => file.writer(),
            CsvOutput::Stdout(stdout) => stdout,
        }
    }
}

/// Streams predictions (and optionally the logits) into pending output files.
struct PredictionWriter {
    csv: CsvOutput,
    csv_path: PathBuf,
    logits: Option<LogitsWriter>,
    num_classes: usize,
    categories: &'static [&'static str],
}

/// The `.npy` logits file, written row by row.
struct LogitsWriter {
    path: PathBuf,
    file: PendingFile,
    writer: npyz::NpyWriter<f32, BufWriter<File>>,
}

impl PredictionWriter {
    fn create(args: &PredictArgs, videos: usize, num_classes: usize) -> Result<Self> {
        let logits = match &args.logits {
            Some(path) => {
                let file = PendingFile::create(path)?;
                let writer = npyz::WriteOptions::new()
                    .default_dtype()
                    .shape(&[videos as u64, num_classes as u64])
                    .writer(BufWriter::new(file.reopen()?))
                    .begin_nd()
                    .with_context(|| format!("writing {}", path.display()))?;
                Some(LogitsWriter {
                    path: path.clone(),
                    file,
                    writer,
                })
            }
            None => None,
        };
        let csv = if is_stdout(&args.output) {
            CsvOutput::Stdout(std::io::stdout())
        } else {
            CsvOutput::File(PendingFile::create(&args.output)?)
        };
        Ok(PredictionWriter {
            csv,
            csv_path: args.output.clone(),
            logits,
            num_classes,
            categories: Taxonomy::get().category_ids(),
        })
    }

    /// Writes the predictions of a batch of videos.
    fn write(&mut self, ids: &[String], logits: &[f32]) -> Result<()> {
        for (id, row) in ids.iter().zip(logits.chunks_exact(self.num_classes)) {
            let best = row.iter().enumerate().fold(
                0,
                |best, (class, &score)| if score > row[best] { class } else { best },
            );
            writeln!(self.csv.writer(), "{id},{}", self.categories[best])
                .with_context(|| format!("writing {}", self.csv_path.display()))?;
            if let Some(logits) = &mut self.logits {
                logits
                    .writer
                    .extend(row.iter().copied())
                    .with_context(|| format!("writing {}", logits.path.display()))?;
            }
        }
        Ok(())
    }

    /// Moves the finished files into place.
    fn commit(self) -> Result<()> {
        if let Some(LogitsWriter { path, file, writer }) = self.logits {
            writer
                .finish()
                .with_context(|| format!("writing {}", path.display()))?;
            file.commit(true)?;
        }
        match self.csv {
            CsvOutput::File(file) => file.commit(true)?,
            CsvOutput::Stdout(mut stdout) => stdout.flush()?,
        }
        Ok(())
    }
}
