//! Hostile inputs, one case per class of the hardening issue, built at run time from the
//! committed fixtures: each asserts the exit code, a message naming the file, tensor or video,
//! and that no output that looks complete is left behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
#[path = "support/archive.rs"]
mod archive;
#[path = "support/npy.rs"]
mod npy_file;
use archive::{crc32, zip};

use npy_file::npy;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn checkpoint() -> PathBuf {
    fixtures().join("model/predict/classifier.safetensors")
}

fn frames() -> PathBuf {
    fixtures().join("pipeline/frames")
}

fn annotations() -> PathBuf {
    fixtures().join("pipeline/annotations.json")
}

/// `vidcls predict` of `annotations` with `checkpoint` into `output` (plus `extra` flags).
fn predict(checkpoint: &Path, annotations: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut command = Command::cargo_bin("vidcls").unwrap();
    command
        .arg("predict")
        .arg("--checkpoint")
        .arg(checkpoint)
        .arg("--bert-dir")
        .arg(fixtures().join("pipeline/bert"))
        .arg("--annotations")
        .arg(annotations)
        .arg("--output")
        .arg(output)
        .args(extra);
    command
}

/// Runs `command`, expects exit code `code` and a message containing every one of `names`;
/// returns stderr.
fn fails(command: &mut Command, code: i32, names: &[&str]) -> String {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    for name in names {
        assert!(stderr.contains(name), "{name:?} not in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The files left in `dir` (temporary outputs included).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A copy of the fixture checkpoint with every tensor rewritten by `rewrite(name, values)`,
/// which returns the new dtype and bytes.
fn rewritten_checkpoint(
    path: &Path,
    rewrite: impl Fn(&str, Vec<f32>) -> (Dtype, Vec<u8>),
) -> PathBuf {
    let bytes = std::fs::read(checkpoint()).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let rewritten: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let (dtype, data) = if view.dtype() == Dtype::F32 {
                let values = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect();
                rewrite(&name, values)
            } else {
                (view.dtype(), view.data().to_vec())
            };
            (name, dtype, view.shape().to_vec(), data)
        })
        .collect();
    let views: HashMap<String, TensorView> = rewritten
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data).unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(&views, None, path).unwrap();
    path.to_path_buf()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn half_and_double_precision_checkpoints_predict_like_float32() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("f32.csv");
    predict(&checkpoint(), &annotations(), &reference, &["--frames"])
        .arg(frames())
        .assert()
        .success();
    let expected = std::fs::read_to_string(&reference).unwrap();
    let f64_checkpoint = rewritten_checkpoint(&dir.path().join("f64.safetensors"), |_, values| {
        let bytes = values
            .iter()
            .flat_map(|&v| f64::from(v).to_le_bytes())
            .collect();
        (Dtype::F64, bytes)
    });
    let f16_checkpoint = rewritten_checkpoint(&dir.path().join("f16.safetensors"), |_, values| {
        let bytes = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        (Dtype::F16, bytes)
    });
    for (name, converted) in [("f64", f64_checkpoint), ("f16", f16_checkpoint)] {
        let output = dir.path().join(format!("{name}.csv"));
        predict(&converted, &annotations(), &output, &["--frames"])
            .arg(frames())
            .assert()
            .success();
        let predicted = std::fs::read_to_string(&output).unwrap();
        if name == "f64" {
            assert_eq!(predicted, expected, "{name}");
        } else {
            assert_eq!(
                predicted.lines().count(),
                expected.lines().count(),
                "{name}"
            );
        }
    }
}

#[test]
fn integer_and_non_finite_weights_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("result.csv");
    let nan = rewritten_checkpoint(&dir.path().join("nan.safetensors"), |name, mut values| {
        if name == "classifier.weight" {
            values[3] = f32::NAN;
        }
        (Dtype::F32, f32_bytes(&values))
    });
    fails(
        predict(&nan, &annotations(), &output, &["--frames"]).arg(frames()),
        1,
        &["nan.safetensors", "classifier", "non-finite value NaN"],
    );
    // A Linear's bias, and a LayerNorm's weight (PyTorch's name for Burn's `gamma`), named as
    // the model's parameter is.
    for (file, tensor, named) in [
        ("int.safetensors", "classifier.bias", "classifier.bias"),
        (
            "int_norm.safetensors",
            "encoder.bert.embeddings.LayerNorm.weight",
            "embeddings.layer_norm.weight",
        ),
    ] {
        integer_weights_are_refused(dir.path(), &output, file, [tensor, named]);
    }
    assert!(!output.exists());
}

/// `predict` refuses a checkpoint whose tensor `tensor` holds integers, naming the file and
/// the tensor (`named`: the model parameter's name).
fn integer_weights_are_refused(dir: &Path, output: &Path, file: &str, [tensor, named]: [&str; 2]) {
    let integers = rewritten_checkpoint(&dir.join(file), |name, values| {
        if name == tensor {
            let bytes = values
                .iter()
                .flat_map(|&v| (v as i32).to_le_bytes())
                .collect();
            (Dtype::I32, bytes)
        } else {
            (Dtype::F32, f32_bytes(&values))
        }
    });
    fails(
        predict(&integers, &annotations(), output, &["--frames"]).arg(frames()),
        1,
        &[file, named, "where float weights are expected"],
    );
}

#[test]
fn outputs_never_replace_inputs_or_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let annotations = dir.path().join("annotations.json");
    std::fs::copy(self::annotations(), &annotations).unwrap();
    let original = std::fs::read(&annotations).unwrap();
    fails(
        predict(&checkpoint(), &annotations, &annotations, &["--frames"]).arg(frames()),
        1,
        &["would replace", "annotations.json"],
    );
    assert_eq!(std::fs::read(&annotations).unwrap(), original);
    let output = dir.path().join("result.csv");
    fails(
        predict(&checkpoint(), &annotations, &output, &["--frames"])
            .arg(frames())
            .arg("--logits")
            .arg(&output),
        1,
        &["would replace", "result.csv"],
    );
    std::fs::write(&output, "keep").unwrap();
    fails(
        predict(&checkpoint(), &annotations, &output, &["--frames"]).arg(frames()),
        1,
        &["result.csv exists", "--overwrite"],
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "keep");
    assert_eq!(entries(dir.path()), ["annotations.json", "result.csv"]);
}

#[test]
fn missing_frames_directories_and_nonsense_flags_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("result.csv");
    fails(
        predict(&checkpoint(), &annotations(), &output, &["--frames"])
            .arg(dir.path().join("no-such-dir")),
        1,
        &["no-such-dir"],
    );
    for flag in ["--batch-size", "--max-frames"] {
        fails(
            predict(
                &checkpoint(),
                &annotations(),
                &output,
                &[flag, "0", "--frames"],
            )
            .arg(frames()),
            2,
            &[flag, "at least 1"],
        );
    }
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn hostile_and_repeated_video_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("result.csv");
    for (name, json, expected) in [
        ("escape.json", r#"[{"id": "../../../etc/passwd"}]"#, "`..`"),
        ("csv.json", r#"[{"id": "1,0101"}]"#, "','"),
        (
            "twice.json",
            r#"[{"id": "7"}, {"id": "7"}]"#,
            "\"7\" (videos 1 and 2)",
        ),
    ] {
        let annotations = dir.path().join(name);
        std::fs::write(&annotations, json).unwrap();
        fails(
            predict(&checkpoint(), &annotations, &output, &["--frames"]).arg(frames()),
            1,
            &[name, expected],
        );
    }
    assert!(!output.exists());
}

#[test]
fn huge_values_are_shortened_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("result.csv");
    std::fs::write(&result, format!("{},0101\n", "9".repeat(1 << 20))).unwrap();
    let stderr = fails(
        Command::cargo_bin("vidcls")
            .unwrap()
            .arg("evaluate")
            .arg("--result")
            .arg(&result)
            .arg("--ground-truth")
            .arg(&result),
        1,
        &["result.csv", "1048576 bytes"],
    );
    assert!(stderr.len() < 2000, "{} bytes of message", stderr.len());
}

#[test]
fn causes_are_printed_once() {
    let stderr = fails(
        Command::cargo_bin("vidcls")
            .unwrap()
            .arg("evaluate")
            .arg("--result")
            .arg("/no/such/result.csv")
            .arg("--ground-truth")
            .arg("/no/such/truth.csv"),
        1,
        &["/no/such/"],
    );
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn interrupted_commands_leave_no_temporary_output() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vidcls"))
        .args([
            "synth",
            "--labeled",
            "100000",
            "--unlabeled",
            "0",
            "--test",
            "0",
        ])
        .arg("--output")
        .arg(dir.path().join("data"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !entries(dir.path())
        .iter()
        .any(|name| name.starts_with(".vidcls-"))
    {
        assert!(Instant::now() < deadline, "synth wrote no temporary output");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SIGTERM, as `kill` sends it.
    std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

// --- Files that lie about their sizes, bombs, and broken frames and features ---------------

/// The id of the one-video data sets below.
const VIDEO: &str = "2410887200350415071";

/// The first frame of the fixture video [`VIDEO`], a real JPEG.
fn fixture_jpeg() -> Vec<u8> {
    use std::io::Read;
    let file = std::fs::File::open(frames().join("071").join(format!("{VIDEO}.zip"))).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut bytes = Vec::new();
    archive
        .by_name("1.jpg")
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// A zip64 archive of one stored entry `name` holding `data`, whose headers claim that it
/// inflates to `claimed` bytes.
fn zip_claiming(name: &str, data: &[u8], claimed: u64) -> Vec<u8> {
    let zip64_extra = |out: &mut Vec<u8>| {
        out.extend(1u16.to_le_bytes());
        out.extend(16u16.to_le_bytes());
        out.extend(claimed.to_le_bytes());
        out.extend((data.len() as u64).to_le_bytes());
    };
    // version, flags, method (stored), time, date, crc, sizes (in the zip64 field), lengths
    let common = |out: &mut Vec<u8>| {
        out.extend(45u16.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(0x21u16.to_le_bytes());
        out.extend(crc32(data).to_le_bytes());
        out.extend(u32::MAX.to_le_bytes());
        out.extend(u32::MAX.to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(20u16.to_le_bytes());
    };
    let mut out = b"PK\x03\x04".to_vec();
    common(&mut out);
    out.extend(name.as_bytes());
    zip64_extra(&mut out);
    out.extend(data);
    let directory = out.len();
    out.extend(b"PK\x01\x02");
    out.extend(45u16.to_le_bytes());
    common(&mut out);
    out.extend([0u8; 14]); // comment length, disk, attributes, local header offset 0
    out.extend(name.as_bytes());
    zip64_extra(&mut out);
    let directory_len = out.len() - directory;
    out.extend(b"PK\x05\x06");
    out.extend([0u8; 4]);
    out.extend(1u16.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend((directory_len as u32).to_le_bytes());
    out.extend((directory as u32).to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// A one-video data set in `dir`: `annotations.json` for [`VIDEO`], `frames/` with
/// `frames_zip` as its zip, `features.zip` with `npy` as its array; returns `dir`.
fn one_video(dir: &Path, frames_zip: &[u8], npy: &[u8]) -> PathBuf {
    std::fs::write(
        dir.join("annotations.json"),
        format!(r#"[{{"id": "{VIDEO}", "title": "标题", "asr": "", "ocr": []}}]"#),
    )
    .unwrap();
    let video_dir = dir.join("frames").join(&VIDEO[VIDEO.len() - 3..]);
    std::fs::create_dir_all(&video_dir).unwrap();
    std::fs::write(video_dir.join(format!("{VIDEO}.zip")), frames_zip).unwrap();
    std::fs::write(
        dir.join("features.zip"),
        zip(&[(&format!("{VIDEO}.npy"), npy)], true),
    )
    .unwrap();
    dir.to_path_buf()
}

/// `vidcls inspect` of the one-video set in `dir`, from `source` (`--frames` or `--features`).
fn inspect(dir: &Path, source: &str, extra: &[&str]) -> Command {
    let mut command = Command::cargo_bin("vidcls").unwrap();
    let path = if source == "--frames" {
        "frames"
    } else {
        "features.zip"
    };
    command
        .arg("inspect")
        .arg("--annotations")
        .arg(dir.join("annotations.json"))
        .arg("--bert-dir")
        .arg(fixtures().join("pipeline/bert"))
        .arg(source)
        .arg(dir.join(path))
        .args(extra);
    command
}

/// 768 float32 features per frame, `frames` frames, all equal to `value`.
fn features(frames: usize, value: f32) -> Vec<u8> {
    f32_bytes(&vec![value; frames * 768])
}

#[test]
fn claimed_sizes_are_never_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = fixture_jpeg();
    let features = features(2, 0.5);
    // 16 TiB claimed by 20 KB frame and feature zips, and a `.npy` shape of 2^40 frames.
    let data = one_video(
        dir.path(),
        &zip_claiming("1.jpg", &jpeg, 1 << 44),
        &npy(1, "<f4", false, "(2, 768)", &features),
    );
    std::fs::write(
        data.join("claiming.zip"),
        // The predict fixture's model takes 32 features per frame.
        zip_claiming(
            &format!("{VIDEO}.npy"),
            &npy(1, "<f4", false, "(2, 32)", &f32_bytes(&[0.5; 64])),
            1 << 44,
        ),
    )
    .unwrap();
    // The claims are ignored: the real bytes are read.
    let out = inspect(&data, "--frames", &["--strict"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.contains(VIDEO) && line.contains("\"frame_mask\":[1,0,0,0,0,0,0,0]"),
        "{line}"
    );
    let out = Command::cargo_bin("vidcls")
        .unwrap()
        .args(["bench", "data", "--json", "--batch-size", "1"])
        .arg("--annotations")
        .arg(data.join("annotations.json"))
        .arg("--frames")
        .arg(data.join("frames"))
        .arg("--bert-dir")
        .arg(fixtures().join("pipeline/bert"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let output = data.join("result.csv");
    predict(
        &checkpoint(),
        &data.join("annotations.json"),
        &output,
        &["--strict", "--features"],
    )
    .arg(data.join("claiming.zip"))
    .assert()
    .success();
    assert!(std::fs::read_to_string(&output).unwrap().starts_with(VIDEO));
    Command::cargo_bin("vidcls")
        .unwrap()
        .arg("extract-features")
        .arg("--swin-weights")
        .arg(fixtures().join("model/predict/swin_official.pth"))
        .arg("--annotations")
        .arg(data.join("annotations.json"))
        .arg("--frames")
        .arg(data.join("frames"))
        .arg("--output")
        .arg(data.join("extracted.zip"))
        .arg("--strict")
        .assert()
        .success();
    // An array whose header claims 2^40 frames is refused, not allocated.
    std::fs::write(
        data.join("features.zip"),
        zip(
            &[(
                &format!("{VIDEO}.npy"),
                &npy(1, "<f4", false, "(1099511627776, 768)", &features),
            )],
            true,
        ),
    )
    .unwrap();
    fails(
        &mut inspect(&data, "--features", &["--strict"]),
        1,
        &[VIDEO, "features.zip"],
    );
    // A safetensors header that claims 1 TiB.
    let checkpoint = data.join("lying.safetensors");
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend(b"{}");
    std::fs::write(&checkpoint, bytes).unwrap();
    fails(
        predict(
            &checkpoint,
            &data.join("annotations.json"),
            &data.join("r.csv"),
            &["--frames"],
        )
        .arg(data.join("frames")),
        1,
        &["lying.safetensors"],
    );
    // A PyTorch checkpoint whose pickle claims a 4 GiB string (found by the fuzz targets).
    let lying_pth = data.join("lying.pth");
    std::fs::write(&lying_pth, pth_with_lying_string()).unwrap();
    fails(
        predict(
            &lying_pth,
            &data.join("annotations.json"),
            &data.join("r.csv"),
            &["--frames"],
        )
        .arg(data.join("frames")),
        1,
        &["lying.pth", "claims 4278190080 bytes"],
    );
    assert!(!data.join("r.csv").exists());
}

/// The fixture `classifier.pth` with the length of the first string of its pickle (a
/// BINUNICODE opcode, `X` + 4 bytes) set to 0xFF000000.
fn pth_with_lying_string() -> Vec<u8> {
    use std::io::Read;
    let file = std::fs::File::open(fixtures().join("model/classifier.pth")).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let entries: Vec<(String, Vec<u8>)> = (0..archive.len())
        .map(|index| {
            let mut entry = archive.by_index(index).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            if entry.name().ends_with("data.pkl") {
                let at = bytes.iter().position(|&b| b == b'X').unwrap();
                bytes[at + 1..at + 5].copy_from_slice(&0xFF00_0000u32.to_le_bytes());
            }
            (entry.name().to_string(), bytes)
        })
        .collect();
    let entries: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect();
    zip(&entries, false)
}

#[test]
fn decompression_bombs_and_truncated_frames_are_bad_frames_of_their_video() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = fixture_jpeg();
    // 20000 x 20000 pixels claimed by the frame header (FF C0, length, precision, h, w).
    let mut bomb = jpeg.clone();
    let sof = bomb
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
        .unwrap();
    bomb[sof + 5..sof + 7].copy_from_slice(&20000u16.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&20000u16.to_be_bytes());
    let truncated = &jpeg[..jpeg.len() / 2];
    let empty = npy(1, "<f4", false, "(2, 768)", &features(2, 0.5));
    for (frame, expected) in [(&bomb[..], "pixels"), (truncated, "truncated")] {
        let data = one_video(dir.path(), &zip(&[("1.jpg", frame)], true), &empty);
        fails(
            &mut inspect(&data, "--frames", &["--strict"]),
            1,
            &[VIDEO, expected],
        );
        // Without --strict the video is reported and its frame slots stay empty.
        let out = inspect(&data, "--frames", &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains(VIDEO) && stderr.contains(expected),
            "{stderr}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"frame_mask\":[0,0,0,0,0,0,0,0]"));
    }
}

#[test]
fn broken_feature_arrays_are_problems_of_their_video() {
    let dir = tempfile::tempdir().unwrap();
    let frames_zip = zip(&[("1.jpg", &fixture_jpeg())], true);
    let mut nan = features(2, 0.5);
    nan[768 * 4 + 4 * 5..768 * 4 + 4 * 6].copy_from_slice(&f32::NAN.to_le_bytes());
    for (array, expected) in [
        (npy(1, "<f4", false, "(2, 768)", &nan), "non-finite"),
        (npy(1, "<f4", false, "(0, 768)", &[]), "no frames"),
        (npy(1, "<i4", false, "(2, 768)", &features(2, 0.5)), "<i4"),
    ] {
        let data = one_video(dir.path(), &frames_zip, &array);
        fails(
            &mut inspect(&data, "--features", &["--strict"]),
            1,
            &[VIDEO, expected],
        );
    }
    // Fortran order: element (frame f, column c) sits at c * frames + f.
    let frames = 2;
    let values: Vec<f32> = (0..frames * 768).map(|i| i as f32).collect();
    let mut fortran = vec![0f32; values.len()];
    for f in 0..frames {
        for c in 0..768 {
            fortran[c * frames + f] = values[f * 768 + c];
        }
    }
    let c_order = one_video(
        dir.path(),
        &frames_zip,
        &npy(1, "<f4", false, "(2, 768)", &f32_bytes(&values)),
    );
    let read = |data: &Path| {
        let out = inspect(data, "--features", &["--strict"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let expected = read(&c_order);
    let f_order = one_video(
        dir.path(),
        &frames_zip,
        &npy(1, "<f4", true, "(2, 768)", &f32_bytes(&fortran)),
    );
    assert_eq!(read(&f_order), expected);
}

#[test]
fn impossible_configurations_and_tokenizers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A BERT directory whose config.json claims 2^40 hidden units.
    let bert = dir.path().join("bert");
    std::fs::create_dir(&bert).unwrap();
    for file in ["vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("pipeline/bert").join(file), bert.join(file)).unwrap();
    }
    std::fs::write(
        bert.join("config.json"),
        r#"{"hidden_size": 1099511627776, "num_hidden_layers": 1, "num_attention_heads": 1,
            "intermediate_size": 128, "vocab_size": 542, "max_position_embeddings": 388}"#,
    )
    .unwrap();
    let output = dir.path().join("result.csv");
    let mut command = Command::cargo_bin("vidcls").unwrap();
    command
        .arg("predict")
        .arg("--checkpoint")
        .arg(fixtures().join("model/classifier.pth"))
        .arg("--bert-dir")
        .arg(&bert)
        .arg("--annotations")
        .arg(annotations())
        .arg("--frames")
        .arg(frames())
        .arg("--output")
        .arg(&output);
    fails(&mut command, 1, &["config.json", "hidden_size"]);
    // A run directory whose heads do not divide the hidden size.
    let run = dir.path().join("run");
    Command::cargo_bin("vidcls")
        .unwrap()
        .args(["export", "--format", "run"])
        .arg("--checkpoint")
        .arg(checkpoint())
        .arg("--bert-dir")
        .arg(fixtures().join("pipeline/bert"))
        .arg("--output")
        .arg(&run)
        .assert()
        .success();
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    let broken = config.replacen(
        "\"num_attention_heads\": 1",
        "\"num_attention_heads\": 3",
        1,
    );
    assert_ne!(broken, config);
    std::fs::write(run.join("config.json"), broken).unwrap();
    fails(
        predict(&run, &annotations(), &output, &["--frames"]).arg(frames()),
        1,
        &["config.json", "heads"],
    );
    // Vocabularies without [MASK], or empty.
    for (vocab, expected) in [
        (
            std::fs::read_to_string(fixtures().join("pipeline/bert/vocab.txt"))
                .unwrap()
                .replace("[MASK]\n", ""),
            "[MASK]",
        ),
        (String::new(), "[PAD]"),
    ] {
        std::fs::write(bert.join("vocab.txt"), vocab).unwrap();
        std::fs::remove_file(bert.join("config.json")).ok();
        fails(
            Command::cargo_bin("vidcls")
                .unwrap()
                .arg("inspect")
                .arg("--annotations")
                .arg(annotations())
                .arg("--frames")
                .arg(frames())
                .arg("--bert-dir")
                .arg(&bert),
            1,
            &["vocab.txt", expected],
        );
    }
    assert!(!output.exists());
}

#[test]
fn zero_frame_slots_and_batches_are_usage_errors() {
    for args in [
        &["inspect", "--max-frames", "0"][..],
        &["bench", "data", "--max-frames", "0"],
        &["bench", "data", "--batch-size", "0"],
    ] {
        let mut command = Command::cargo_bin("vidcls").unwrap();
        command
            .args(args)
            .arg("--annotations")
            .arg(annotations())
            .arg("--frames")
            .arg(frames())
            .arg("--bert-dir")
            .arg(fixtures().join("pipeline/bert"));
        fails(&mut command, 2, &[args[args.len() - 2], "at least 1"]);
    }
}
