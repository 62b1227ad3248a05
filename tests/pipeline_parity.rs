//! Parity of the data pipeline with the independent Python reference
//! (`scripts/make_pipeline_fixtures.py`: transformers' BertTokenizer, scikit-learn's
//! TfidfVectorizer and f1_score, Pillow + torchvision transforms).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use vidcls_datasets::annotations::{OcrItem, VideoAnnotation};
use vidcls_datasets::dataset::{VideoDataset, VisualSource};
use vidcls_datasets::frames::{DEFAULT_MAX_FRAMES, load_frames_with, select_frames};
use vidcls_datasets::taxonomy::Taxonomy;
use vidcls_datasets::text::text_segments;
use vidcls_datasets::tokenizer::TextEncoder;
use vidcls_training::metric::score;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipeline")
}

fn encoder() -> Arc<TextEncoder> {
    Arc::new(TextEncoder::from_dir(&fixtures().join("bert")).unwrap())
}

#[derive(Deserialize)]
struct TextCase {
    name: String,
    title: String,
    asr: String,
    ocr: Vec<OcrItem>,
    input_ids: Vec<u32>,
    attention_mask: Vec<u32>,
    title_segment: String,
    ocr_segment: String,
    asr_segment: String,
}

/// A text case whose ids differ for one tokenizer directory (by index in `text_cases.jsonl`).
#[derive(Deserialize)]
struct IdsOverride {
    case: usize,
    name: String,
    input_ids: Vec<u32>,
    attention_mask: Vec<u32>,
}

/// Runs every case of `text_cases.jsonl` through the tokenizer of `tokenizer_dir` (under the
/// fixtures); `overrides` names a file of the cases whose expected ids differ for that tokenizer.
fn check_text_cases(tokenizer_dir: &str, overrides: Option<&str>) {
    let encoder = TextEncoder::from_dir(&fixtures().join(tokenizer_dir)).unwrap();
    let mut overrides: HashMap<usize, IdsOverride> = overrides
        .map(|file| std::fs::read_to_string(fixtures().join(file)).unwrap())
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str::<IdsOverride>(line).unwrap())
        .map(|item| (item.case, item))
        .collect();
    let content = std::fs::read_to_string(fixtures().join("text_cases.jsonl")).unwrap();
    let mut failures = Vec::new();
    let mut total = 0;
    for (index, line) in content.lines().enumerate() {
        let mut case: TextCase = serde_json::from_str(line).unwrap();
        if let Some(item) = overrides.remove(&index) {
            assert_eq!(item.name, case.name, "override of case {index}");
            case.input_ids = item.input_ids;
            case.attention_mask = item.attention_mask;
        }
        total += 1;
        let video = VideoAnnotation {
            id: case.name.clone(),
            title: case.title.clone(),
            asr: case.asr.clone(),
            ocr: case.ocr.clone(),
            category_id: None,
        };
        let segments = text_segments(&video);
        let encoded = encoder.encode(&segments).unwrap();
        let same_segments = (
            segments.title.as_str(),
            segments.ocr.as_str(),
            segments.asr.as_str(),
        ) == (
            case.title_segment.as_str(),
            case.ocr_segment.as_str(),
            case.asr_segment.as_str(),
        );
        if !same_segments
            || encoded.input_ids != case.input_ids
            || encoded.attention_mask != case.attention_mask
        {
            failures.push(format!(
                "case {index} {:?}: segments equal: {same_segments}; ours {:?} / ref {:?}; first id diff at {:?}",
                case.name,
                segments.title,
                case.title_segment,
                encoded.input_ids.iter().zip(&case.input_ids).position(|(a, b)| a != b)
            ));
        }
    }
    assert!(
        overrides.is_empty(),
        "overrides for unknown cases: {:?}",
        overrides.keys().collect::<Vec<_>>()
    );
    assert!(
        total >= 300,
        "expected the fixture's 300+ cases, found {total}"
    );
    assert!(
        failures.is_empty(),
        "{tokenizer_dir}: {} of {total} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `bert/` has only `vocab.txt`: the WordPiece tokenizer vidcls builds, against the slow
/// `BertTokenizer`.
#[test]
fn text_pipeline_matches_reference_on_all_cases() {
    assert!(!fixtures().join("bert/tokenizer.json").exists());
    check_text_cases("bert", None);
}

/// `bert_fast/` is `BertTokenizerFast.save_pretrained` of the same vocabulary: the
/// `tokenizer.json` path, against that fast tokenizer.
#[test]
fn text_pipeline_from_tokenizer_json_matches_reference_on_all_cases() {
    assert!(fixtures().join("bert_fast/tokenizer.json").is_file());
    check_text_cases("bert_fast", Some("text_cases_bert_fast.jsonl"));
}

#[derive(Deserialize)]
struct ExpectedVideo {
    id: String,
    input_ids: Vec<u32>,
    attention_mask: Vec<u32>,
    frame_indices: Vec<usize>,
    frame_mask: Vec<u32>,
    frame_mean: Vec<f64>,
}

fn expected_videos() -> Vec<ExpectedVideo> {
    std::fs::read_to_string(fixtures().join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn full_pipeline_matches_reference_per_video() {
    let dataset = VideoDataset::unlabeled(
        &fixtures().join("annotations.json"),
        VisualSource::frames(&fixtures().join("frames")).unwrap(),
        encoder(),
        DEFAULT_MAX_FRAMES,
    )
    .unwrap();
    let expected = expected_videos();
    assert_eq!(expected.len(), dataset.annotations().len());
    assert!(expected.len() >= 12);
    for (index, want) in expected.iter().enumerate() {
        let item = dataset.item(index);
        assert_eq!(item.id, want.id);
        assert_eq!(item.input_ids, want.input_ids, "input ids of {}", want.id);
        assert_eq!(
            item.attention_mask, want.attention_mask,
            "mask of {}",
            want.id
        );
        assert_eq!(
            item.visual.frame_indices, want.frame_indices,
            "frame indices of {}",
            want.id
        );
        assert_eq!(
            item.visual.frame_mask, want.frame_mask,
            "frame mask of {}",
            want.id
        );
        for (slot, (ours, theirs)) in item
            .visual
            .slot_means()
            .iter()
            .zip(&want.frame_mean)
            .enumerate()
        {
            assert!(
                (ours - theirs).abs() <= 1e-3,
                "video {} slot {slot}: frame mean {ours} vs {theirs}",
                want.id
            );
        }
    }
}

fn read_pixels(path: &Path) -> (Vec<u64>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<u8>().unwrap())
}

#[test]
fn decoded_resized_cropped_pixels_match_pillow() {
    let frames_dir = fixtures().join("frames");
    let mut histogram: HashMap<u8, usize> = HashMap::new();
    let mut frames = 0;
    for want in expected_videos() {
        let path = fixtures().join("pixels").join(format!("{}.npy", want.id));
        if !path.exists() {
            assert!(
                want.frame_mask.iter().all(|&m| m == 0),
                "pixels missing for {}",
                want.id
            );
            continue;
        }
        let (shape, reference) = read_pixels(&path);
        assert_eq!(&shape[1..], &[224, 224, 3]);
        let per_frame = 224 * 224 * 3;
        let mut seen = 0;
        load_frames_with(&frames_dir, &want.id, DEFAULT_MAX_FRAMES, |slot, frame| {
            let theirs = &reference[slot * per_frame..(slot + 1) * per_frame];
            for (a, b) in frame.0.iter().zip(theirs) {
                *histogram.entry(a.abs_diff(*b)).or_default() += 1;
            }
            seen += 1;
        });
        assert_eq!(seen as u64, shape[0], "frames decoded for {}", want.id);
        frames += seen;
    }
    let total: usize = histogram.values().sum();
    let mut rows: Vec<_> = histogram.iter().collect();
    rows.sort();
    println!("|ours - Pillow| histogram over {frames} frames, {total} values: {rows:?}");
    let within_one = histogram
        .iter()
        .filter(|(d, _)| **d <= 1)
        .map(|(_, n)| n)
        .sum::<usize>();
    let worst = histogram.keys().max().copied().unwrap_or(0);
    assert!(frames >= 20, "too few frames compared: {frames}");
    assert!(
        within_one as f64 >= 0.99 * total as f64,
        "only {within_one}/{total} within +-1: {rows:?}"
    );
    assert!(worst <= 4, "a value is off by {worst}: {rows:?}");
}

#[derive(Deserialize)]
struct Selection {
    n: Vec<usize>,
    indices: Vec<Vec<usize>>,
}

#[test]
fn frame_selection_matches_reference_for_0_to_40_frames() {
    let selection: Selection =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("selection.json")).unwrap())
            .unwrap();
    assert_eq!(selection.n, (0..=40).collect::<Vec<_>>());
    for (n, want) in selection.n.iter().zip(&selection.indices) {
        assert_eq!(&select_frames(*n, DEFAULT_MAX_FRAMES), want, "n = {n}");
    }
}

#[derive(Deserialize)]
struct MetricCase {
    truth: Vec<String>,
    pred: Vec<String>,
    lv1_acc: f64,
    lv2_acc: f64,
    lv1_f1_micro: f64,
    lv1_f1_macro: f64,
    lv2_f1_micro: f64,
    lv2_f1_macro: f64,
    mean_f1: f64,
}

#[test]
fn metric_matches_scikit_learn() {
    let cases: Vec<MetricCase> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("metric_cases.json")).unwrap(),
    )
    .unwrap();
    let taxonomy = Taxonomy::get();
    let lv2 =
        |ids: &[String]| -> Vec<usize> { ids.iter().map(|id| taxonomy.lv2(id).unwrap()).collect() };
    assert!(cases.iter().any(|case| case.truth.len() >= 2000));
    for (index, case) in cases.iter().enumerate() {
        let ours = score(&lv2(&case.truth), &lv2(&case.pred));
        let pairs = [
            ("lv1_acc", ours.lv1_acc, case.lv1_acc),
            ("lv2_acc", ours.lv2_acc, case.lv2_acc),
            ("lv1_f1_micro", ours.lv1_f1_micro, case.lv1_f1_micro),
            ("lv1_f1_macro", ours.lv1_f1_macro, case.lv1_f1_macro),
            ("lv2_f1_micro", ours.lv2_f1_micro, case.lv2_f1_micro),
            ("lv2_f1_macro", ours.lv2_f1_macro, case.lv2_f1_macro),
            ("mean_f1", ours.mean_f1, case.mean_f1),
        ];
        for (name, a, b) in pairs {
            assert!(
                (a - b).abs() <= 1e-9,
                "case {index}: {name} {a} vs scikit-learn {b}"
            );
        }
    }
}
