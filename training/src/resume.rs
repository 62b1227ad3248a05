//! The resume state of a training run: enough to continue an interrupted run exactly where its
//! last checkpoint was taken (mid-epoch included), so that on CPU the final weights equal
//! those of an uninterrupted run bit for bit.
//!
//! `resume/latest` names the newest complete checkpoint directory `resume/step-NNNNNNNN/`,
//! which holds `state.json` (position in the run, epoch history), `raw.safetensors` (the
//! trained weights), `ema.safetensors` (the EMA weights, if any) and `optimizer.safetensors`
//! (the Adam moments, flattened in Burn's layout, named `<reference name>.exp_avg` /
//! `.exp_avg_sq`). A checkpoint directory is complete before `latest` points to it, so a run
//! killed at any moment leaves a usable checkpoint. The data order and dropout masks are
//! functions of the seed and the epoch / step, so they need no state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::checkpoint::{ReferenceModel, save_weights};
use crate::loss_scale::LossScaler;
use crate::optim::{AdamOptimizer, Moments};
use crate::run::EpochRecord;
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use vidcls_datasets::output::{PendingFile, write_atomically};

/// The resume directory of a run directory.
pub const RESUME_DIR: &str = "resume";
const LATEST_FILE: &str = "latest";
const STATE_FILE: &str = "state.json";
const RAW_FILE: &str = "raw.safetensors";
const EMA_FILE: &str = "ema.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    /// The epoch in progress (1-based).
    pub epoch: usize,
    /// Batches of that epoch done.
    pub batches_done: usize,
    /// Optimizer steps done.
    pub step: usize,
    /// Sum of the training losses of the epoch's batches done.
    pub epoch_loss_sum: f64,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// The best validation mean F1 so far (classifiers).
    pub best_mean_f1: Option<f64>,
    /// The lowest validation loss so far (pre-training).
    #[serde(default)]
    pub best_valid_loss: Option<f64>,
    /// Dynamic loss scaling's state, if the run scales its losses.
    #[serde(default)]
    pub loss_scaler: Option<LossScaler>,
}

impl ResumeState {
    /// The state of a run that has not started.
    pub fn start() -> Self {
        ResumeState {
            epoch: 1,
            batches_done: 0,
            step: 0,
            epoch_loss_sum: 0.0,
            history: Vec::new(),
            best_mean_f1: None,
            best_valid_loss: None,
            loss_scaler: None,
        }
    }
}

/// A checkpoint to resume from.
pub struct ResumePoint<B: Backend> {
    /// Where the run was.
    pub state: ResumeState,
    /// The trained weights (reference names).
    pub raw_weights: PathBuf,
    /// The EMA weights (reference names), if the run keeps an EMA.
    pub ema_weights: Option<PathBuf>,
    /// The optimizer's moments by reference parameter name.
    pub moments: HashMap<String, Moments<B>>,
}

/// Writes a checkpoint of a run into `run_dir/resume/`, then points `latest` to it and removes
/// the older ones.
pub fn save_resume_point<B: AutodiffBackend, M: ReferenceModel>(
    run_dir: &Path,
    state: &ResumeState,
    raw: &M,
    ema: Option<&M>,
    optimizer: &AdamOptimizer<B>,
) -> Result<()> {
    let resume = run_dir.join(RESUME_DIR);
    let name = format!("step-{:08}", state.step);
    let dir = resume.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    save_weights(&dir.join(RAW_FILE), raw)?;
    if let Some(ema) = ema {
        save_weights(&dir.join(EMA_FILE), ema)?;
    }
    save_moments(&dir.join(OPTIMIZER_FILE), &optimizer.moments())?;
    write_atomically(&dir.join(STATE_FILE), |out| {
        serde_json::to_writer_pretty(&mut *out, state)?;
        writeln!(out)
    })?;
    write_atomically(&resume.join(LATEST_FILE), |out| writeln!(out, "{name}"))?;
    for entry in std::fs::read_dir(&resume)?.flatten() {
        let path = entry.path();
        let file_name = entry.file_name();
        if path.is_dir() && file_name.to_string_lossy().starts_with("step-") && file_name != *name {
            // A stale checkpoint that cannot be removed only costs disk space.
            let _ = std::fs::remove_dir_all(path);
        }
    }
    Ok(())
}

/// The newest checkpoint of `run_dir`, if any.
pub fn load_resume_point<B: Backend>(
    run_dir: &Path,
    device: &B::Device,
) -> Result<Option<ResumePoint<B>>> {
    let resume = run_dir.join(RESUME_DIR);
    let latest = resume.join(LATEST_FILE);
    if !latest.is_file() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&latest)
        .with_context(|| format!("cannot read {}", latest.display()))?;
    let dir = resume.join(name.trim());
    let state_path = dir.join(STATE_FILE);
    let state: ResumeState = serde_json::from_str(
        &std::fs::read_to_string(&state_path)
            .with_context(|| format!("cannot read {}", state_path.display()))?,
    )
    .with_context(|| format!("{}: not a resume state", state_path.display()))?;
    let ema = dir.join(EMA_FILE);
    Ok(Some(ResumePoint {
        state,
        raw_weights: dir.join(RAW_FILE),
        ema_weights: ema.is_file().then_some(ema),
        moments: load_moments(&dir.join(OPTIMIZER_FILE), device)?,
    }))
}

fn save_moments<B: Backend>(path: &Path, moments: &HashMap<String, Moments<B>>) -> Result<()> {
    let mut names: Vec<&String> = moments.keys().collect();
    names.sort();
    let mut tensors: Vec<(String, Vec<f32>)> = Vec::new();
    for name in names {
        let Moments {
            exp_avg,
            exp_avg_sq,
        } = &moments[name];
        for (suffix, tensor) in [("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)] {
            let values = tensor
                .to_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("reading the optimizer state: {e:?}"))?;
            tensors.push((format!("{name}.{suffix}"), values));
        }
    }
    let bytes: Vec<(String, Vec<u8>, usize)> = tensors
        .into_iter()
        .map(|(name, values)| {
            let len = values.len();
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, bytes, len)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, bytes, len)| {
            safetensors::tensor::TensorView::new(Dtype::F32, vec![*len], bytes)
                .map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pending = PendingFile::create(path)?;
    safetensors::serialize_to_file(views, None, pending.temp_path())
        .with_context(|| format!("writing {}", path.display()))?;
    pending.commit(true)?;
    Ok(())
}

fn load_moments<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<HashMap<String, Moments<B>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let tensor = |name: &str| -> Result<Tensor<B, 1>> {
        let view = file
            .tensor(name)
            .with_context(|| format!("{}: no tensor {name}", path.display()))?;
        if view.dtype() != Dtype::F32 {
            bail!("{}: {name} is not float32", path.display());
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let len = values.len();
        Ok(Tensor::from_data(TensorData::new(values, [len]), device))
    };
    let mut moments = HashMap::new();
    for name in file.names() {
        if let Some(parameter) = name.strip_suffix(".exp_avg") {
            moments.insert(
                parameter.to_string(),
                Moments {
                    exp_avg: tensor(name)?,
                    exp_avg_sq: tensor(&format!("{parameter}.exp_avg_sq"))?,
                },
            );
        }
    }
    Ok(moments)
}
