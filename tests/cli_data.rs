//! End-to-end tests of the data subcommands: `synth`, `inspect`, `evaluate`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn vidcls() -> Command {
    Command::cargo_bin("vidcls").unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipeline")
}

fn synth(out: &Path, seed: u64) {
    vidcls()
        .args([
            "synth",
            "--labeled",
            "40",
            "--unlabeled",
            "10",
            "--test",
            "12",
            "--seed",
        ])
        .arg(seed.to_string())
        .arg("--out")
        .arg(out)
        .assert()
        .success();
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn synth_writes_the_competition_layout_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    synth(&a, 5);
    synth(&b, 5);
    synth(&c, 6);
    for file in [
        "annotations/labeled.json",
        "annotations/unlabeled.json",
        "annotations/test.json",
        "test_ground_truth.csv",
        "bert/vocab.txt",
        "bert/config.json",
    ] {
        assert_eq!(
            read(&a.join(file)),
            read(&b.join(file)),
            "{file} differs for the same seed"
        );
    }
    assert_ne!(
        read(&a.join("annotations/labeled.json")),
        read(&c.join("annotations/labeled.json"))
    );

    let labeled: Vec<Value> =
        serde_json::from_slice(&read(&a.join("annotations/labeled.json"))).unwrap();
    let test: Vec<Value> = serde_json::from_slice(&read(&a.join("annotations/test.json"))).unwrap();
    assert_eq!(labeled.len(), 40);
    assert!(
        labeled
            .iter()
            .all(|v| v["category_id"].is_string() && v["id"].as_str().unwrap().len() == 19)
    );
    assert!(test.iter().all(|v| v.get("category_id").is_none()));
    let truth = String::from_utf8(read(&a.join("test_ground_truth.csv"))).unwrap();
    assert_eq!(truth.lines().count(), 12);
    for (line, video) in truth.lines().zip(&test) {
        assert!(line.starts_with(video["id"].as_str().unwrap()));
    }
    // Every frames zip of the same seed is byte-identical too.
    let id = labeled
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .find(|id| {
            a.join("zip_frames/labeled")
                .join(&id[16..])
                .join(format!("{id}.zip"))
                .exists()
        });
    let id = id.expect("some labeled video has frames");
    let zip = |root: &Path| {
        read(
            &root
                .join("zip_frames/labeled")
                .join(&id[16..])
                .join(format!("{id}.zip")),
        )
    };
    assert_eq!(zip(&a), zip(&b));
    // No staging directory is left behind.
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("partial"))
    );
}

#[test]
fn synth_refuses_a_non_empty_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
    vidcls()
        .args([
            "synth",
            "--labeled",
            "2",
            "--unlabeled",
            "0",
            "--test",
            "0",
            "--out",
        ])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicates::str::contains("not empty"));
}

/// `vidcls inspect` over the pipeline fixtures' annotations with the given frames directory.
fn inspect_fixture(frames: &Path) -> Command {
    let mut command = vidcls();
    command
        .arg("inspect")
        .arg("--annotations")
        .arg(fixtures().join("annotations.json"))
        .arg("--frames")
        .arg(frames)
        .arg("--bert-dir")
        .arg(fixtures().join("bert"));
    command
}

/// `vidcls evaluate` of a result file against a ground truth.
fn evaluate(result: &Path, truth: &Path) -> Command {
    let mut command = vidcls();
    command
        .arg("evaluate")
        .arg("--result")
        .arg(result)
        .arg("--ground-truth")
        .arg(truth);
    command
}

fn inspect_lines(extra: &[&str]) -> Vec<Value> {
    let output = inspect_fixture(&fixtures().join("frames"))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn inspect_matches_the_python_reference() {
    let expected: Vec<Value> = std::fs::read_to_string(fixtures().join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let lines = inspect_lines(&[]);
    assert_eq!(lines.len(), expected.len());
    for (ours, theirs) in lines.iter().zip(&expected) {
        for key in [
            "id",
            "input_ids",
            "attention_mask",
            "frame_indices",
            "frame_mask",
        ] {
            assert_eq!(ours[key], theirs[key], "{key} of {}", theirs["id"]);
        }
        let means = |v: &Value| -> Vec<f64> {
            v["frame_mean"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        for (a, b) in means(ours).iter().zip(means(theirs)) {
            assert!(
                (a - b).abs() <= 1e-3,
                "frame_mean of {}: {a} vs {b}",
                theirs["id"]
            );
        }
    }
    let id = expected[3]["id"].as_str().unwrap();
    let one = inspect_lines(&["--id", id]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["id"], expected[3]["id"]);
}

#[test]
fn inspect_strict_names_the_video_without_frames() {
    inspect_fixture(&fixtures().join("frames"))
        .arg("--strict")
        .assert()
        .failure()
        .stderr(predicates::str::contains("video").and(predicates::str::contains("zip")));
}

#[test]
fn inspect_reports_bad_input_with_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[{\"id\": \"1\", \"title\": \"a\"},\n {\"id\": 2}]").unwrap();
    vidcls()
        .arg("inspect")
        .arg("--annotations")
        .arg(&bad)
        .arg("--frames")
        .arg(dir.path())
        .arg("--bert-dir")
        .arg(fixtures().join("bert"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("bad.json").and(predicates::str::contains("line 2")));
    inspect_fixture(dir.path())
        .args(["--id", "nope"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("no video nope"));
}

#[test]
fn inspect_reads_pre_extracted_features() {
    use npyz::WriterBuilder;
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let annotations = dir.path().join("a.json");
    std::fs::write(&annotations, r#"[{"id":"v1","title":"猫狗","asr":"","ocr":[]},{"id":"v2","title":"","asr":"","ocr":[]}]"#).unwrap();
    let zip_path = dir.path().join("feats.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    zip.start_file("v1.npy", zip::write::SimpleFileOptions::default())
        .unwrap();
    let mut npy = Vec::new();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[3, 768])
        .writer(&mut npy)
        .begin_nd()
        .unwrap();
    for row in 0..3 {
        for _ in 0..768 {
            writer.push(&half::f16::from_f32(row as f32 + 0.5)).unwrap();
        }
    }
    writer.finish().unwrap();
    zip.write_all(&npy).unwrap();
    zip.finish().unwrap();

    let output = vidcls()
        .arg("inspect")
        .arg("--annotations")
        .arg(&annotations)
        .arg("--features")
        .arg(&zip_path)
        .arg("--bert-dir")
        .arg(fixtures().join("bert"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["frame_indices"], serde_json::json!([0, 1, 2]));
    assert_eq!(
        lines[0]["frame_mask"],
        serde_json::json!([1, 1, 1, 0, 0, 0, 0, 0])
    );
    assert_eq!(lines[0]["frame_mean"][2].as_f64().unwrap(), 2.5);
    assert_eq!(
        lines[1]["frame_mask"],
        serde_json::json!([0, 0, 0, 0, 0, 0, 0, 0])
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("video v2"), "{stderr}");
}

#[test]
fn evaluate_matches_scikit_learn_and_rejects_bad_files() {
    let cases: Vec<Value> =
        serde_json::from_slice(&read(&fixtures().join("metric_cases.json"))).unwrap();
    let (result, truth) = (
        fixtures().join("metric_result.csv"),
        fixtures().join("metric_truth.csv"),
    );
    let output = evaluate(&result, &truth).arg("--json").output().unwrap();
    assert!(output.status.success());
    let ours: Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in [
        "lv1_acc",
        "lv2_acc",
        "lv1_f1_micro",
        "lv1_f1_macro",
        "lv2_f1_micro",
        "lv2_f1_macro",
        "mean_f1",
    ] {
        let (a, b) = (ours[key].as_f64().unwrap(), cases[0][key].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-9, "{key}: {a} vs {b}");
    }
    evaluate(&result, &truth)
        .assert()
        .success()
        .stdout(predicates::str::contains("mean_f1"));

    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.csv");
    std::fs::write(&truth, "1,0000\n2,0001\n").unwrap();
    for (content, message) in [
        ("1,0000\n2,9999\n", "unknown category id"),
        ("1,0000\n2\n", "line 2"),
        ("1,0000\n3,0001\n", "video 3 is not in the ground truth"),
        ("1,0000\n", "1 lines"),
    ] {
        let result = dir.path().join("result.csv");
        std::fs::write(&result, content).unwrap();
        evaluate(&result, &truth)
            .assert()
            .failure()
            .stderr(predicates::str::contains(message));
    }
}
