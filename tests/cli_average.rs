//! `vidcls average` against NumPy: three variants of a small classifier, exported as run
//! directories, average bit for bit to what `np.mean` computes
//! (`scripts/make_average_fixtures.py` wrote the hashes of the expected tensors); checkpoints
//! of different configurations are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn vidcls() -> Command {
    Command::cargo_bin("vidcls").unwrap()
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// The classifier fixture with every tensor named in `transformed` mapped to
/// `value * scale + offset` (f32), written to `path`.
fn write_variant(path: &Path, transformed: &[&str], scale: f32, offset: f32) {
    let bytes = std::fs::read(fixture("model/predict/classifier.safetensors")).unwrap();
    let source = SafeTensors::deserialize(&bytes).unwrap();
    let data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = source
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = if transformed.contains(&name.as_str()) {
                view.data()
                    .chunks_exact(4)
                    .flat_map(|b| {
                        let value = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        (value * scale + offset).to_le_bytes()
                    })
                    .collect()
            } else {
                view.data().to_vec()
            };
            (name, view.dtype(), view.shape().to_vec(), data)
        })
        .collect();
    let views = data
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect::<Vec<_>>();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Exports a safetensors classifier as a run directory.
fn export_run(weights: &Path, run: &Path) {
    vidcls()
        .args(["export", "--format", "run", "--checkpoint"])
        .arg(weights)
        .arg("--bert-dir")
        .arg(fixture("pipeline/bert"))
        .arg("--output")
        .arg(run)
        .assert()
        .success();
}

#[test]
fn averaging_matches_numpy_bit_for_bit() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("average/expected.json")).unwrap())
            .unwrap();
    let transformed: Vec<&str> = expected["transformed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (k, (scale, offset)) in expected["scales"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected["offsets"].as_array().unwrap())
        .enumerate()
    {
        let weights = dir.path().join(format!("variant{k}.safetensors"));
        write_variant(
            &weights,
            &transformed,
            scale.as_f64().unwrap() as f32,
            offset.as_f64().unwrap() as f32,
        );
        let run = dir.path().join(format!("run{k}"));
        export_run(&weights, &run);
        runs.push(run);
    }

    let average = dir.path().join("average");
    vidcls()
        .arg("average")
        .arg("--checkpoints")
        .args(&runs)
        .arg("--output")
        .arg(&average)
        .assert()
        .success();
    let bytes = std::fs::read(average.join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let hashes: HashMap<String, String> = file
        .tensors()
        .into_iter()
        .filter(|(_, view)| view.dtype() == Dtype::F32)
        .map(|(name, view)| (name, format!("{:x}", Sha256::digest(view.data()))))
        .collect();
    let expected_hashes = expected["sha256"].as_object().unwrap();
    assert_eq!(hashes.len(), expected_hashes.len());
    for (name, hash) in expected_hashes {
        assert_eq!(
            hashes.get(name).map(String::as_str),
            hash.as_str(),
            "tensor {name}"
        );
    }
    // The averaged run directory is a complete run: it predicts without --bert-dir.
    assert!(average.join("config.json").is_file());
    assert!(average.join("vocab.txt").is_file());

    // An output that is not empty is refused.
    vidcls()
        .arg("average")
        .arg("--checkpoints")
        .args(&runs[..2])
        .arg("--output")
        .arg(&average)
        .assert()
        .failure()
        .stderr(predicates::str::contains("not empty"));
}

#[test]
fn checkpoints_of_different_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    export_run(&fixture("model/predict/classifier.safetensors"), &run);
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    for entry in std::fs::read_dir(&run).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, other.join(path.file_name().unwrap())).unwrap();
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(other.join("config.json")).unwrap()).unwrap();
    config["model"]["classifier_dropout"] = Value::from(0.5);
    std::fs::write(other.join("config.json"), config.to_string()).unwrap();

    let output = dir.path().join("average");
    vidcls()
        .arg("average")
        .arg("--checkpoints")
        .arg(&run)
        .arg(&other)
        .arg("--output")
        .arg(&output)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("classifier_dropout"))
        .stderr(predicates::str::contains("configuration differs"));
    assert!(!output.exists());

    // One checkpoint is a usage error.
    vidcls()
        .arg("average")
        .arg("--checkpoints")
        .arg(&run)
        .arg("--output")
        .arg(&output)
        .assert()
        .code(2);
}
