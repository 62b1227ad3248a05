//! `vidcls inspect`: the user's window into preprocessing.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;
use vidcls_datasets::dataset::{VideoDataset, VideoItem};
use vidcls_datasets::frames::DEFAULT_MAX_FRAMES;
use vidcls_datasets::tokenizer::TextEncoder;

use super::flags;
use super::visual_args::VisualArgs;
use crate::issues::IssueTally;
use vidcls_datasets::prefetch::for_each_chunk;

/// Arguments of `vidcls inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Annotation file (a JSON array of videos).
    #[arg(long, value_name = "FILE")]
    pub annotations: PathBuf,
    #[command(flatten)]
    pub visual: VisualArgs,
    /// HuggingFace BERT directory with `vocab.txt` (or `tokenizer.json`).
    #[arg(long, value_name = "DIR")]
    pub bert_dir: PathBuf,
    /// Frame slots per video.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAMES, value_parser = flags::positive)]
    pub max_frames: usize,
    /// Only this video.
    #[arg(long)]
    pub id: Option<String>,
    /// Fail on the first unreadable video (no zip, empty zip, undecodable frame) instead of
    /// warning and leaving its frame slots empty.
    #[arg(long)]
    pub strict: bool,
}

/// One line of `inspect`'s output.
#[derive(Serialize)]
struct InspectLine<'a> {
    id: &'a str,
    input_ids: &'a [u32],
    attention_mask: &'a [u32],
    frame_indices: &'a [usize],
    frame_mask: &'a [u32],
    frame_mean: Vec<f64>,
}

/// Runs `vidcls inspect`: one JSON object per video per line on stdout, in annotation order.
pub fn run(args: &InspectArgs) -> Result<()> {
    let text = Arc::new(TextEncoder::from_dir(&args.bert_dir)?);
    let dataset = VideoDataset::unlabeled(
        &args.annotations,
        args.visual.source()?,
        text,
        args.max_frames,
    )?;
    let indices: Vec<usize> = match &args.id {
        Some(id) => {
            let index = dataset
                .annotations()
                .iter()
                .position(|video| &video.id == id)
                .with_context(|| format!("{}: no video {id}", args.annotations.display()))?;
            vec![index]
        }
        None => (0..dataset.annotations().len()).collect(),
    };

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut tally = IssueTally::new(args.strict);
    for_each_chunk(
        indices.len(),
        64,
        |chunk| -> Vec<VideoItem> {
            chunk
                .par_iter()
                .map(|&i| dataset.item(indices[i]))
                .collect()
        },
        |items| -> Result<()> {
            for item in &items {
                tally.record(&item.issues, |issue| log::warn!("{issue}"))?;
                let line = InspectLine {
                    id: &item.id,
                    input_ids: &item.input_ids,
                    attention_mask: &item.attention_mask,
                    frame_indices: &item.visual.frame_indices,
                    frame_mask: &item.visual.frame_mask,
                    frame_mean: item.visual.slot_means(),
                };
                serde_json::to_writer(&mut out, &line)?;
                writeln!(out)?;
            }
            Ok(())
        },
    )?;
    out.flush()?;
    if tally.problems() > 0 {
        log::warn!(
            "{} problem(s) in {} of {} video(s); their frame slots were left empty",
            tally.problems(),
            tally.videos_with_problems(),
            indices.len()
        );
    }
    Ok(())
}
