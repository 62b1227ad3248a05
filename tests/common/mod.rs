//! Helpers of the training CLI tests: interrupting a run and reading its files.

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use safetensors::{Dtype, SafeTensors};

/// The bytes of a file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Optimizer steps that a run directory's `steps.csv` holds.
pub fn steps_logged(run: &Path) -> usize {
    std::fs::read_to_string(run.join("steps.csv"))
        .map(|text| text.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

/// Starts `vidcls args` writing the run directory `run` and kills it once it has logged
/// `steps` optimizer steps.
pub fn kill_after_steps(args: &[String], run: &Path, steps: usize) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vidcls"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while steps_logged(run) < steps {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "the run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The rows of a run's `metrics.csv` without their last column (the epoch's wall time).
pub fn metrics_without_time(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|line| line.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

/// The values of every float tensor of a safetensors file (all must be f32; Swin's integer
/// position-index buffers are left out).
pub fn f32_tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = read(path);
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = file
        .tensors()
        .into_iter()
        .filter(|(_, view)| view.dtype() != Dtype::I64)
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F32, "{name} of {}", path.display());
            let values = view
                .data()
                .chunks_exact(4)
                .map(|bytes| f32::from_le_bytes(bytes.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}
