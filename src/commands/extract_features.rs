//! `vidcls extract-features`: the reference's feature extractor. Swin features of the first
//! frames of every video (frames `0..min(n, max_frames)`) into a zip of `<id>.npy`, float16
//! `[n, features]`, the format `--features` reads.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use burn::prelude::*;
use clap::Args;
use half::f16;
use npyz::WriterBuilder;
use rayon::prelude::*;
use vidcls_datasets::annotations::read_annotations;
use vidcls_datasets::frames::{CROP_SIZE, check_frames_dir, load_first_frames};
use vidcls_datasets::visual::VisualSample;
use vidcls_model::SwinTransformer;
use vidcls_model::loader::{
    infer_swin_config, load_official_swin_backbone, official_swin_tensor_shapes,
};
use zip::write::SimpleFileOptions;

use super::flags;
use crate::device::{BackendTask, DeviceKind, run_on};
use crate::issues::IssueTally;
use crate::progress::bar;
use vidcls_datasets::output::{PendingFile, check_output};
use vidcls_datasets::prefetch::for_each_chunk;
use vidcls_training::batch::swin_features;

/// Videos decoded together (in parallel) while the previous ones go through the model.
const VIDEOS_PER_CHUNK: usize = 4;

/// Arguments of `vidcls extract-features`.
#[derive(Args, Debug)]
pub struct ExtractFeaturesArgs {
    /// Official Swin checkpoint (e.g. `swin_tiny_patch4_window7_224.pth`, state dict under
    /// `"model"`), or a bare safetensors state dict with the official names.
    #[arg(long, value_name = "FILE")]
    pub swin_weights: PathBuf,
    /// Annotation file (a JSON array of videos).
    #[arg(long, value_name = "FILE")]
    pub annotations: PathBuf,
    /// Directory of raw frame zips: `<DIR>/<last 3 chars of id>/<id>.zip` (or `<DIR>/<id>.zip`).
    #[arg(long, value_name = "DIR")]
    pub frames: PathBuf,
    /// The features zip to write.
    #[arg(long, value_name = "ZIP")]
    pub output: PathBuf,
    /// Frames per video: the first ones, in name order.
    #[arg(long, default_value_t = 32, value_parser = flags::positive)]
    pub max_frames: usize,
    /// Videos per forward pass (a batch is always counted in videos): up to this many times
    /// --max-frames frames go through the backbone at once.
    #[arg(long, default_value_t = 1, value_parser = flags::positive)]
    pub batch_size: usize,
    /// Replace the output if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Fail on the first unreadable video (no zip, empty zip, undecodable frame) instead of
    /// warning and writing the frames that could be read (none: no entry).
    #[arg(long)]
    pub strict: bool,
    /// Device to run the backbone on.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

/// Runs `vidcls extract-features`.
pub fn run(args: &ExtractFeaturesArgs) -> Result<()> {
    check_frames_dir(&args.frames)?;
    check_output(
        &args.output,
        &[&args.annotations, &args.frames, &args.swin_weights],
        args.overwrite,
    )?;
    let start = Instant::now();
    let summary = run_on(args.device, Extract { args })?;
    let seconds = start.elapsed().as_secs_f64();
    log::info!(
        "wrote the features of {} frames of {} videos in {seconds:.1} s ({:.2} frames/s) to {}",
        summary.frames,
        summary.entries,
        summary.frames as f64 / seconds,
        args.output.display()
    );
    if summary.issues.problems() > 0 {
        log::warn!(
            "{} problem(s) in {} video(s); {} video(s) got no entry (no readable frame)",
            summary.issues.problems(),
            summary.issues.videos_with_problems(),
            summary.videos - summary.entries
        );
    }
    Ok(())
}

/// What an extraction wrote and met.
struct Summary {
    videos: usize,
    videos_done: usize,
    entries: usize,
    frames: usize,
    issues: IssueTally,
}

struct Extract<'a> {
    args: &'a ExtractFeaturesArgs,
}

impl BackendTask for Extract<'_> {
    type Output = Summary;

    fn run<B: Backend>(self, device: B::Device) -> Result<Summary> {
        let args = self.args;
        let (swin, swin_width) = load_swin::<B>(&args.swin_weights, &device)?;
        let videos = read_annotations(&args.annotations)?;
        let pending = PendingFile::create(&args.output)?;
        let mut zip = zip::ZipWriter::new(BufWriter::new(pending.reopen()?));
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        let progress = bar(videos.len() as u64, "extract");
        let mut summary = Summary {
            videos: videos.len(),
            videos_done: 0,
            entries: 0,
            frames: 0,
            issues: IssueTally::new(args.strict),
        };
        for_each_chunk(
            videos.len(),
            VIDEOS_PER_CHUNK,
            |chunk| -> Vec<VisualSample> {
                chunk
                    .par_iter()
                    .map(|&i| load_first_frames(&args.frames, &videos[i].id, args.max_frames))
                    .collect()
            },
            |samples| -> Result<()> {
                let features =
                    swin_features(&swin, &samples, args.batch_size * args.max_frames, &device)?;
                for (sample, rows) in samples.iter().zip(features) {
                    let id = &videos[summary.videos_done].id;
                    summary.videos_done += 1;
                    summary.issues.record(&sample.issues, |issue| {
                        progress.suspend(|| log::warn!("{issue}"))
                    })?;
                    if rows.is_empty() {
                        continue;
                    }
                    let npy = npy_f16(&rows, swin_width)?;
                    zip.start_file(format!("{id}.npy"), options)
                        .and_then(|()| zip.write_all(&npy).map_err(Into::into))
                        .with_context(|| {
                            format!(
                                "{}: video {id}: cannot add its entry",
                                args.output.display()
                            )
                        })?;
                    summary.entries += 1;
                    summary.frames += rows.len() / swin_width;
                }
                progress.inc(samples.len() as u64);
                Ok(())
            },
        )?;
        progress.finish_and_clear();
        zip.finish()
            .and_then(|mut writer| writer.flush().map_err(Into::into))
            .with_context(|| format!("writing {}", args.output.display()))?;
        pending.commit(args.overwrite)?;
        Ok(summary)
    }
}

/// Builds the Swin of an official checkpoint (its configuration read off the tensor shapes);
/// returns it with its number of output features.
fn load_swin<B: Backend>(path: &Path, device: &B::Device) -> Result<(SwinTransformer<B>, usize)> {
    let shapes = official_swin_tensor_shapes(path)?;
    let config = infer_swin_config(&shapes, "").with_context(|| format!("{}", path.display()))?;
    ensure!(
        config.img_size == CROP_SIZE,
        "{}: the backbone takes {1}x{1} images but frames are cropped to {CROP_SIZE}x{CROP_SIZE}",
        path.display(),
        config.img_size
    );
    let mut swin = config.init(device);
    load_official_swin_backbone(&mut swin, path).with_context(|| format!("{}", path.display()))?;
    Ok((swin, config.num_features()))
}

/// A float16 `[rows, width]` `.npy` of `values`.
fn npy_f16(values: &[f32], width: usize) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[(values.len() / width) as u64, width as u64])
        .writer(&mut bytes)
        .begin_nd()?;
    writer.extend(values.iter().map(|&v| f16::from_f32(v)))?;
    writer.finish()?;
    Ok(bytes)
}
