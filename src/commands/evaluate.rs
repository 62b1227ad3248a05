//! `vidcls evaluate`: the competition's metric on a result file.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use vidcls_datasets::submission::{align, read_category_csv};
use vidcls_training::metric::{Scores, score};

/// Arguments of `vidcls evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// Predictions: CSV lines `id,category_id`, no header.
    #[arg(long, value_name = "FILE")]
    pub result: PathBuf,
    /// Ground truth in the same format, with the same ids.
    #[arg(long, value_name = "FILE")]
    pub ground_truth: PathBuf,
    /// Print one JSON object (full precision) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Scores a result file against a ground truth file.
pub fn evaluate_files(result: &std::path::Path, ground_truth: &std::path::Path) -> Result<Scores> {
    let predictions = read_category_csv(result)?;
    let truth = read_category_csv(ground_truth)?;
    let (truth_ids, predicted_ids) = align(&predictions, result, &truth, ground_truth)?;
    Ok(score(&truth_ids, &predicted_ids))
}

/// Prints scores as a table.
pub fn print_table(scores: &Scores) {
    let rows = [
        ("lv1_acc", scores.lv1_acc),
        ("lv2_acc", scores.lv2_acc),
        ("lv1_f1_micro", scores.lv1_f1_micro),
        ("lv1_f1_macro", scores.lv1_f1_macro),
        ("lv2_f1_micro", scores.lv2_f1_micro),
        ("lv2_f1_macro", scores.lv2_f1_macro),
        ("mean_f1", scores.mean_f1),
    ];
    println!("{:<14} {:>8}", "metric", "value");
    for (name, value) in rows {
        println!("{name:<14} {value:>8.4}");
    }
}

/// Runs `vidcls evaluate`.
pub fn run(args: &EvaluateArgs) -> Result<()> {
    let scores = evaluate_files(&args.result, &args.ground_truth)?;
    if args.json {
        println!("{}", serde_json::to_string(&scores)?);
    } else {
        print_table(&scores);
    }
    Ok(())
}
