//! Checkpoint averaging (REFERENCE.md, "Other pieces": the reference's SWA file): the
//! element-wise mean of the weights of several fine-tuned classifiers of one configuration,
//! written as a new run directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::{SafeTensors, serialize_to_file};
use serde_json::Value;
use vidcls_datasets::output::PendingDir;

use crate::checkpoint::{MODEL_FILE, RunConfig, TOKENIZER_FILES, copy_tokenizer};

/// One tensor of the average being built.
struct Accumulated {
    dtype: Dtype,
    shape: Vec<usize>,
    /// F32 tensors: the running sum; other dtypes: the bytes every checkpoint must share.
    sum: Option<Vec<f32>>,
    bytes: Vec<u8>,
}

/// Averages the `model.safetensors` weights of the run directories `runs` into a new run
/// directory `out` (which must not exist or be empty), with the configuration and tokenizer
/// of the first run. F32 tensors are summed in run order and divided by the number of runs,
/// in f32 (what NumPy's `mean` over a stack of the tensors computes); any other tensor must
/// be identical in every run.
///
/// # Errors
/// Fewer than two runs, a run that is not a run directory with `model.safetensors`, model
/// configurations or tokenizers that differ, tensors whose names, shapes or types differ, or
/// an output directory that is not empty.
pub fn average_runs(runs: &[PathBuf], out: &Path) -> Result<()> {
    ensure!(
        runs.len() >= 2,
        "give at least two run directories to average"
    );
    let pending = PendingDir::create(out).with_context(|| out.display().to_string())?;
    let first = &runs[0];
    let config = RunConfig::read(first)?;
    let model = serde_json::to_value(&config.model)?;
    for run in &runs[1..] {
        let other = serde_json::to_value(&RunConfig::read(run)?.model)?;
        if let Some(difference) = first_difference(&model, &other, String::new()) {
            bail!(
                "{}: its model configuration differs from that of {} ({difference}); only \
                 checkpoints of one configuration can be averaged",
                run.display(),
                first.display()
            );
        }
        for name in TOKENIZER_FILES {
            let (a, b) = (first.join(name), run.join(name));
            if a.is_file() != b.is_file() || (a.is_file() && read(&a)? != read(&b)?) {
                bail!(
                    "{}: its tokenizer file {name} differs from that of {}",
                    run.display(),
                    first.display()
                );
            }
        }
    }

    let first_path = first.join(MODEL_FILE);
    let bytes = read_weights(first)?;
    let mut average: BTreeMap<String, Accumulated> = deserialize(&first_path, &bytes)?
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let accumulated = Accumulated {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                sum: (view.dtype() == Dtype::F32).then(|| f32_values(view.data())),
                bytes: view.data().to_vec(),
            };
            (name, accumulated)
        })
        .collect();
    drop(bytes);
    for run in &runs[1..] {
        let path = run.join(MODEL_FILE);
        let bytes = read_weights(run)?;
        let file = deserialize(&path, &bytes)?;
        let mismatch = |what: String| {
            anyhow::anyhow!(
                "{}: {what} (compared with {})",
                path.display(),
                first_path.display()
            )
        };
        if let Some(name) = average.keys().find(|name| file.tensor(name).is_err()) {
            return Err(mismatch(format!("tensor {name} is missing")));
        }
        for (name, view) in file.tensors() {
            let entry = average
                .get_mut(&name)
                .ok_or_else(|| mismatch(format!("tensor {name} is not in the first run")))?;
            let (dtype, shape) = (view.dtype(), view.shape());
            if dtype != entry.dtype || shape != entry.shape.as_slice() {
                return Err(mismatch(format!(
                    "tensor {name} is {dtype:?} {shape:?}, not {:?} {:?}",
                    entry.dtype, entry.shape
                )));
            }
            match &mut entry.sum {
                Some(sum) => {
                    for (total, value) in sum.iter_mut().zip(f32_values(view.data())) {
                        *total += value;
                    }
                }
                None if view.data() != entry.bytes.as_slice() => {
                    return Err(mismatch(format!(
                        "tensor {name} ({dtype:?}) differs, and only F32 tensors are averaged"
                    )));
                }
                None => {}
            }
        }
    }
    let count = runs.len() as f32;
    for entry in average.values_mut() {
        if let Some(sum) = &entry.sum {
            entry.bytes = sum
                .iter()
                .flat_map(|total| (total / count).to_le_bytes())
                .collect();
        }
    }

    let views = average
        .iter()
        .map(|(name, entry)| {
            TensorView::new(entry.dtype, entry.shape.clone(), &entry.bytes)
                .map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()?;
    serialize_to_file(views, None, &pending.temp_path().join(MODEL_FILE))
        .with_context(|| format!("writing {}", out.join(MODEL_FILE).display()))?;
    copy_tokenizer(first, pending.temp_path())?;
    config.write(pending.temp_path())?;
    pending
        .commit()
        .with_context(|| out.display().to_string())?;
    Ok(())
}

/// The bytes of a run's `model.safetensors`.
fn read_weights(run: &Path) -> Result<Vec<u8>> {
    let path = run.join(MODEL_FILE);
    if !path.is_file() {
        bail!(
            "{}: no {MODEL_FILE} (a run directory of an earlier version can be converted with \
             `vidcls export --format run`)",
            run.display()
        );
    }
    read(&path)
}

fn deserialize<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The first place where two JSON values differ, as `path: a vs b`.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|key| {
                let null = Value::Null;
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                first_difference(
                    a.get(key).unwrap_or(&null),
                    b.get(key).unwrap_or(&null),
                    child,
                )
            })
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let a = serde_json::json!({"encoder": {"hidden": 64, "layers": 2}, "classes": 200});
        let b = serde_json::json!({"encoder": {"hidden": 128, "layers": 2}, "classes": 200});
        assert_eq!(
            first_difference(&a, &b, String::new()).unwrap(),
            "encoder.hidden: 64 vs 128"
        );
        assert_eq!(first_difference(&a, &a, String::new()), None);
    }
}
