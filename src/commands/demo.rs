//! `vidcls demo`: the main job end to end on a small built-in synthetic dataset.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use vidcls_datasets::annotations::{read_annotations, read_labels};
use vidcls_datasets::dataset::{VideoDataset, VisualSource};
use vidcls_datasets::frames::DEFAULT_MAX_FRAMES;
use vidcls_datasets::synth::{SynthConfig, write_synthetic_dataset};
use vidcls_datasets::taxonomy::Taxonomy;
use vidcls_datasets::tokenizer::TextEncoder;

use super::evaluate::{evaluate_files, print_table};
use crate::output::write_atomically;
use crate::progress::bar;

/// Arguments of `vidcls demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Working directory of the demo; the synthetic dataset is generated there once and reused.
    #[arg(long, default_value = "vidcls-demo")]
    pub dir: PathBuf,
    /// Labeled videos of the synthetic dataset.
    #[arg(long, default_value_t = 600)]
    pub labeled: usize,
    /// Test videos of the synthetic dataset.
    #[arg(long, default_value_t = 200)]
    pub test: usize,
}

/// Runs `vidcls demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let data = args.dir.join("data");
    if data.join("annotations/test.json").is_file() {
        log::info!("reusing the synthetic dataset in {}", data.display());
    } else {
        let config = SynthConfig {
            labeled: args.labeled,
            unlabeled: 100,
            test: args.test,
            seed: 2022,
        };
        log::info!(
            "step 1: generating a synthetic dataset in {}",
            data.display()
        );
        let progress = bar(
            (config.labeled + config.unlabeled + config.test) as u64,
            "synth",
        );
        write_synthetic_dataset(&data, &config, &|| progress.inc(1))?;
        progress.finish_and_clear();
    }

    log::info!("step 2: preprocessing (what `vidcls inspect` shows), first 3 test videos");
    let text = Arc::new(TextEncoder::from_dir(&data.join("bert"))?);
    let test = VideoDataset::unlabeled(
        &data.join("annotations/test.json"),
        VisualSource::frames(&data.join("zip_frames/test")),
        text,
        DEFAULT_MAX_FRAMES,
    )?;
    for index in 0..test.annotations().len().min(3) {
        let item = test.item(index);
        let tokens = item.attention_mask.iter().filter(|&&m| m == 1).count();
        println!(
            "  video {}: {} ids ({} real tokens), frames {:?} -> mask {:?}{}",
            item.id,
            item.input_ids.len(),
            tokens,
            item.visual.frame_indices,
            item.visual.frame_mask,
            if item.issues.is_empty() {
                String::new()
            } else {
                format!(" ({})", item.issues.join("; "))
            }
        );
    }

    log::info!("step 3: scoring a majority-class baseline with the competition's metric");
    let result = args.dir.join("baseline_result.csv");
    write_majority_baseline(&data, &result)?;
    let scores = evaluate_files(&result, &data.join("test_ground_truth.csv"))?;
    print_table(&scores);
    println!(
        "Try: vidcls inspect --annotations {0}/annotations/test.json --frames {0}/zip_frames/test --bert-dir {0}/bert --id {1}",
        data.display(),
        test.annotations().first().map_or("", |v| v.id.as_str())
    );
    Ok(())
}

/// Predicts the most frequent labeled category for every test video.
fn write_majority_baseline(data: &Path, result: &Path) -> Result<()> {
    let labeled_path = data.join("annotations/labeled.json");
    let labeled = read_annotations(&labeled_path)?;
    let labels = read_labels(&labeled_path, &labeled)?;
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for label in labels {
        *counts.entry(label).or_default() += 1;
    }
    let majority = counts
        .into_iter()
        .max_by_key(|&(label, count)| (count, std::cmp::Reverse(label)))
        .map_or(0, |(label, _)| label);
    let category = Taxonomy::get().category_id(majority)?;
    let test = read_annotations(&data.join("annotations/test.json"))?;
    write_atomically(result, |out: &mut dyn Write| {
        for video in &test {
            writeln!(out, "{},{category}", video.id)?;
        }
        Ok(())
    })
}
