//! What a training run writes into its run directory besides the model (see
//! [`checkpoint`](crate::checkpoint)): `train.log`, `metrics.csv` (one row per epoch),
//! `steps.csv` (one row per optimizer step), `curves.png`, and the resume state under
//! `resume/`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use vidcls_datasets::output::write_atomically;

use crate::metric::Scores;
use crate::metrics::WbdcScore;
use crate::pretrain::output::{PretrainScore, PretrainStats};

/// The log of the run.
pub const LOG_FILE: &str = "train.log";
/// One row per epoch.
pub const METRICS_FILE: &str = "metrics.csv";
/// One row per optimizer step.
pub const STEPS_FILE: &str = "steps.csv";
/// Loss and mean F1 per epoch, drawn.
pub const CURVES_FILE: &str = "curves.png";

/// The numbers of one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch (1-based).
    pub epoch: usize,
    /// Optimizer steps taken at its end.
    pub steps: usize,
    /// Mean training loss of its steps.
    pub train_loss: f64,
    /// Mean validation loss (EMA weights), if validated.
    pub valid_loss: Option<f64>,
    /// The competition's numbers on the validation set (EMA weights), if a classifier was
    /// validated.
    pub scores: Option<Scores>,
    /// The pre-training numbers on the validation set (mean losses, summed hits), if a
    /// pre-training model was validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain: Option<PretrainStats>,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
}

/// Writes the log and tables of a run directory.
pub struct RunFiles {
    dir: PathBuf,
    log: File,
    started: Instant,
    echo: bool,
}

impl RunFiles {
    /// Opens the files of the run directory `dir` (created if needed); `echo` also sends the
    /// log lines to the application log (off while the dashboard owns the terminal).
    pub fn open(dir: &Path, echo: bool) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let log_path = dir.join(LOG_FILE);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        Ok(RunFiles {
            dir: dir.to_path_buf(),
            log,
            started: Instant::now(),
            echo,
        })
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether log lines also go to the application log.
    pub fn set_echo(&mut self, echo: bool) {
        self.echo = echo;
    }

    /// Appends a line to `train.log` (and the application log if echoing).
    pub fn log(&mut self, message: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        // A log line that cannot be written must not stop the training.
        let _ = writeln!(self.log, "[{elapsed:>9.1}s] {message}");
        if self.echo {
            log::info!("{message}");
        }
    }

    /// Appends the row of an optimizer step to `steps.csv`.
    pub fn append_step(&mut self, step: usize, epoch: usize, loss: f64, lr: f64) -> Result<()> {
        let path = self.dir.join(STEPS_FILE);
        let new = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if new {
            writeln!(file, "step,epoch,loss,lr")?;
        }
        writeln!(file, "{step},{epoch},{loss},{lr}")
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Drops the rows of `steps.csv` after step `step` (written by an interrupted run after its
    /// last checkpoint).
    pub fn truncate_steps(&self, step: usize) -> Result<()> {
        let path = self.dir.join(STEPS_FILE);
        if !path.exists() {
            return Ok(());
        }
        let reader = BufReader::new(
            File::open(&path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        let mut kept = Vec::new();
        for line in reader.lines() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            let row_step = line.split(',').next().and_then(|v| v.parse::<usize>().ok());
            if row_step.is_none_or(|row_step| row_step <= step) {
                kept.push(line);
            }
        }
        write_atomically(&path, |out| {
            kept.iter().try_for_each(|line| writeln!(out, "{line}"))
        })?;
        Ok(())
    }

    /// Rewrites `metrics.csv` with the epochs so far: the competition's numbers for a
    /// classifier, the MLM and ITM numbers for a pre-training run.
    pub fn write_metrics(&self, history: &[EpochRecord]) -> Result<()> {
        let pretraining = history.iter().any(|record| record.pretrain.is_some());
        let names: Vec<&str> = if pretraining {
            PretrainScore::ALL
                .iter()
                .map(|score| score.name())
                .collect()
        } else {
            WbdcScore::ALL.iter().map(|score| score.name()).collect()
        };
        let values = |record: &EpochRecord| -> Vec<String> {
            let format = |value: Option<f64>| value.map_or(String::new(), |v| v.to_string());
            if pretraining {
                PretrainScore::ALL
                    .iter()
                    .map(|score| format(record.pretrain.as_ref().map(|s| score.of(s).0)))
                    .collect()
            } else {
                WbdcScore::ALL
                    .iter()
                    .map(|score| format(record.scores.as_ref().map(|s| score.of(s))))
                    .collect()
            }
        };
        write_atomically(&self.dir.join(METRICS_FILE), |out| {
            writeln!(
                out,
                "epoch,steps,train_loss,valid_loss,{},seconds",
                names.join(",")
            )?;
            for record in history {
                writeln!(
                    out,
                    "{},{},{},{},{},{:.1}",
                    record.epoch,
                    record.steps,
                    record.train_loss,
                    record.valid_loss.map_or(String::new(), |v| v.to_string()),
                    values(record).join(","),
                    record.seconds
                )?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_after_a_checkpoint_are_dropped_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = RunFiles::open(dir.path(), false).unwrap();
        for step in 1..=5 {
            files.append_step(step, 1, 0.5, 1e-3).unwrap();
        }
        files.truncate_steps(3).unwrap();
        let text = std::fs::read_to_string(dir.path().join(STEPS_FILE)).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.lines().last().unwrap().starts_with("3,"));
        files.log("hello");
        let log = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert!(log.contains("hello"));
    }
}
