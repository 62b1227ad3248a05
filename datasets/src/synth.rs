//! A synthetic dataset in the competition's layout, for demos, tests and benchmarks.
//!
//! Each category leaves a learnable trace: keywords in the title, ocr and asr (an invented
//! Chinese word and an invented Latin word per category), and a colour and stripe texture in
//! the frames. Noise makes it realistic: empty texts, missing frames zips, empty zips, 0 to 32
//! frames, frame sizes from a few pixels to portrait 1080 x 1920, grayscale JPEGs, PNGs, runs of
//! '嗯', unsorted ocr, and a skewed (Zipf-like) category distribution. Output is deterministic
//! for a seed.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use crate::annotations::{OcrItem, VideoAnnotation};
use crate::error::DataError;
use crate::taxonomy::Taxonomy;

/// How many videos of each split to generate.
#[derive(Debug, Clone, Copy)]
pub struct SynthConfig {
    /// Labeled videos (`annotations/labeled.json`).
    pub labeled: usize,
    /// Unlabeled videos (`annotations/unlabeled.json`).
    pub unlabeled: usize,
    /// Test videos (`annotations/test.json` + `test_ground_truth.csv`).
    pub test: usize,
    /// Random seed.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            labeled: 1000,
            unlabeled: 500,
            test: 200,
            seed: 2022,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct SynthSummary {
    /// Videos per split, in (split, count) order.
    pub videos: Vec<(String, usize)>,
    /// Frames written.
    pub frames: usize,
    /// Videos left without a frames zip.
    pub missing_zips: usize,
}

/// Common characters of filler text.
const FILLER_CHARS: &str = "我你他她们这那个一不了人在有是为以于上下来去大小中国年月日时分今天明后好看的地得和与也都就还要会能说做想知道家里外面多少很真最新老开心快乐生活分享视频朋友工作学习今日热点搞笑美丽城市风景音乐";
/// Latin filler words.
const FILLER_WORDS: [&str; 16] = [
    "video", "vlog", "daily", "life", "share", "new", "hot", "top", "best", "fun", "wow", "live",
    "show", "day", "time", "world",
];
/// Syllables of the invented per-category Latin words.
const SYLLABLES: [&str; 20] = [
    "ba", "ko", "mi", "ru", "te", "za", "lo", "ne", "pi", "su", "da", "fe", "gu", "ha", "ji", "wo",
    "xi", "yo", "qa", "ve",
];
const PUNCTUATION: [&str; 8] = ["，", "。", "！", "？", ",", ".", "!", "😀"];

/// The per-category trace: a Chinese keyword (two characters) and a Latin keyword.
fn category_words(class: usize) -> (String, String) {
    let base = 0x5000 + (class as u32 * 2);
    let chinese: String = [base, base + 1]
        .iter()
        .map(|&code| char::from_u32(code).expect("CJK code point"))
        .collect();
    let latin = format!(
        "{}{}",
        SYLLABLES[class % SYLLABLES.len()],
        SYLLABLES[(class / SYLLABLES.len()) % SYLLABLES.len()]
    );
    (chinese, latin)
}

/// The per-category colour (RGB) and stripe frequency/orientation.
fn category_look(class: usize) -> ([f32; 3], f32, bool) {
    let hue = (class as f32 * 0.618_034) % 1.0;
    let rgb = [0.0f32, 1.0 / 3.0, 2.0 / 3.0]
        .map(|shift| 0.5 + 0.4 * (std::f32::consts::TAU * (hue + shift)).cos());
    let frequency = 2.0 + (class % 7) as f32 * 1.5;
    (rgb, frequency, class.is_multiple_of(2))
}

/// The `vocab.txt` of the synthetic data: special tokens, then everything its texts use.
pub fn synthetic_vocab() -> Vec<String> {
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    let num_classes = Taxonomy::get().num_classes();
    let mut push = |token: String| {
        if !vocab.contains(&token) {
            vocab.push(token);
        }
    };
    for c in FILLER_CHARS.chars().chain('0'..='9') {
        push(c.to_string());
    }
    for p in PUNCTUATION.iter().filter(|p| **p != "😀") {
        push(p.to_string());
    }
    for word in FILLER_WORDS {
        push(word.to_string());
    }
    for class in 0..num_classes {
        let (chinese, latin) = category_words(class);
        chinese.chars().for_each(|c| push(c.to_string()));
        push(latin);
    }
    for digit in '0'..='9' {
        push(format!("##{digit}"));
    }
    vocab
}

/// A small BERT `config.json` matching [`synthetic_vocab`].
pub fn synthetic_bert_config(vocab_size: usize) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0
    })
}

/// Zipf-like class weights: the k-th most frequent class has weight 1 / (k + 1)^0.8, the order
/// of classes shuffled by the seed.
fn class_sampler(rng: &mut StdRng, num_classes: usize) -> Vec<(usize, f64)> {
    let mut classes: Vec<usize> = (0..num_classes).collect();
    for i in (1..classes.len()).rev() {
        classes.swap(i, rng.random_range(0..=i));
    }
    let weights: Vec<f64> = (0..num_classes)
        .map(|rank| 1.0 / (rank as f64 + 1.0).powf(0.8))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = 0.0;
    classes
        .into_iter()
        .zip(weights)
        .map(|(class, weight)| {
            cumulative += weight / total;
            (class, cumulative)
        })
        .collect()
}

fn sample_class(rng: &mut StdRng, sampler: &[(usize, f64)]) -> usize {
    let u: f64 = rng.random();
    sampler
        .iter()
        .find(|(_, cumulative)| u <= *cumulative)
        .map_or(sampler[sampler.len() - 1].0, |(class, _)| *class)
}

fn filler(rng: &mut StdRng, chars: usize) -> String {
    let pool: Vec<char> = FILLER_CHARS.chars().collect();
    let mut out = String::new();
    for i in 0..chars {
        match rng.random_range(0..20) {
            0 => out.push_str(PUNCTUATION[rng.random_range(0..PUNCTUATION.len())]),
            1 if i > 0 => {
                out.push(' ');
                out.push_str(FILLER_WORDS[rng.random_range(0..FILLER_WORDS.len())]);
                out.push(' ');
            }
            2 => out.push_str(&rng.random_range(0..100).to_string()),
            _ => out.push(pool[rng.random_range(0..pool.len())]),
        }
    }
    out
}

/// Text with the category's trace inserted with probability `p`.
fn traced_text(rng: &mut StdRng, class: usize, chars: usize, p: f64) -> String {
    let mut text = filler(rng, chars);
    if rng.random_bool(p) {
        let (chinese, latin) = category_words(class);
        let word = if rng.random_bool(0.5) {
            chinese
        } else {
            format!(" {latin} ")
        };
        let at = rng.random_range(0..=text.chars().count());
        let byte = text.char_indices().nth(at).map_or(text.len(), |(b, _)| b);
        text.insert_str(byte, &word);
    }
    text
}

struct FramePlan {
    count: usize,
    width: u32,
    height: u32,
    gray: bool,
    png: bool,
}

fn plan_frames(rng: &mut StdRng) -> Option<FramePlan> {
    let roll = rng.random_range(0..100);
    if roll < 4 {
        return None; // no zip at all
    }
    let count = if roll < 7 {
        0
    } else {
        rng.random_range(1..=32)
    };
    let (width, height, count) = match rng.random_range(0..100) {
        0..3 => (rng.random_range(1..16), rng.random_range(1..16), count),
        3..75 => {
            let w = rng.random_range(48..200);
            (w, w * rng.random_range(5..20) / 10, count)
        }
        75..95 => {
            let (w, h) = [(320, 240), (360, 640), (480, 360)][rng.random_range(0..3)];
            (w, h, count)
        }
        95..98 => (720, 1280, count.min(4)),
        _ => (1080, 1920, count.min(2)),
    };
    Some(FramePlan {
        count,
        width,
        height,
        gray: rng.random_bool(0.05),
        png: rng.random_bool(0.03),
    })
}

/// Smooth-ish noise in [-1, 1): a hash of the 4 x 4 block, the channel and a per-frame salt.
fn block_noise(x: usize, y: usize, channel: usize, salt: u64) -> f32 {
    let mut h = ((x >> 2) as u64) << 40 ^ ((y >> 2) as u64) << 16 ^ (channel as u64) ^ salt;
    h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// One frame: the category colour with stripes, a blob of light and block noise.
fn render_frame(
    rng: &mut StdRng,
    class: usize,
    plan: &FramePlan,
    traced: bool,
    t: usize,
) -> Vec<u8> {
    let (colour, frequency, vertical) = if traced {
        category_look(class)
    } else {
        category_look(rng.random_range(0..Taxonomy::get().num_classes()))
    };
    let (w, h) = (plan.width as usize, plan.height as usize);
    let brightness: f32 = rng.random_range(0.7..1.2);
    let blob = (rng.random_range(0.0..1.0f32), rng.random_range(0.0..1.0f32));
    let salt: u64 = rng.random();
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            let phase = if vertical { u } else { v };
            let stripe =
                0.5 + 0.5 * (std::f32::consts::TAU * (frequency * phase + t as f32 * 0.1)).sin();
            let d = (u - blob.0).powi(2) + (v - blob.1).powi(2);
            let blob_light = (-d * 30.0).exp() * 0.4;
            for (channel, base) in colour.iter().enumerate() {
                let noise = 0.04 * block_noise(x, y, channel, salt);
                let value = (base * (0.6 + 0.4 * stripe) + blob_light + noise) * brightness;
                pixels.push((value.clamp(0.0, 1.0) * 255.0) as u8);
            }
        }
    }
    if plan.gray {
        pixels = pixels
            .chunks_exact(3)
            .map(|p| ((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000) as u8)
            .collect();
    }
    pixels
}

fn encode_frame(pixels: &[u8], plan: &FramePlan) -> Result<Vec<u8>, String> {
    let colour = if plan.gray {
        ExtendedColorType::L8
    } else {
        ExtendedColorType::Rgb8
    };
    let mut out = Vec::new();
    if plan.png {
        PngEncoder::new(&mut out)
            .write_image(pixels, plan.width, plan.height, colour)
            .map_err(|e| e.to_string())?;
    } else {
        JpegEncoder::new_with_quality(&mut out, 85)
            .write_image(pixels, plan.width, plan.height, colour)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn write_frames_zip(
    path: &Path,
    video_id: &str,
    rng: &mut StdRng,
    class: usize,
    plan: &FramePlan,
) -> Result<(), DataError> {
    let io = |e: std::io::Error| DataError::io(path, e);
    fs::create_dir_all(path.parent().expect("zip path has a parent")).map_err(io)?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(File::create(path).map_err(io)?));
    let traced = rng.random_bool(0.8);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for t in 0..plan.count {
        let pixels = render_frame(rng, class, plan, traced, t);
        let bytes = encode_frame(&pixels, plan).map_err(|e| DataError::Video {
            path: path.to_path_buf(),
            video_id: video_id.to_string(),
            message: format!("cannot encode frame {t}: {e}"),
        })?;
        let extension = if plan.png { "png" } else { "jpg" };
        zip.start_file(format!("{t}.{extension}"), options)
            .map_err(|e| io(std::io::Error::other(e)))?;
        zip.write_all(&bytes).map_err(io)?;
    }
    zip.finish().map_err(|e| io(std::io::Error::other(e)))?;
    Ok(())
}

fn video_id(seed: u64, split: usize, index: usize) -> String {
    let mixed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add((split as u64) << 40 | index as u64)
        .wrapping_mul(1_442_695_040_888_963_407);
    format!("{:019}", mixed % 10u64.pow(19))
}

fn make_video(
    seed: u64,
    split: usize,
    index: usize,
    class: usize,
    out: &Path,
    split_name: &str,
) -> Result<(VideoAnnotation, usize), DataError> {
    let mut rng = StdRng::seed_from_u64(seed ^ ((split as u64 + 1) << 48) ^ index as u64);
    let id = video_id(seed, split, index);
    let title = if rng.random_bool(0.05) {
        String::new()
    } else {
        {
            let chars = rng.random_range(1..40);
            traced_text(&mut rng, class, chars, 0.7)
        }
    };
    let ocr = if rng.random_bool(0.15) {
        Vec::new()
    } else {
        (0..rng.random_range(1..6))
            .map(|_| {
                let (time, chars) = (rng.random_range(0..30), rng.random_range(2..40));
                OcrItem {
                    time,
                    text: traced_text(&mut rng, class, chars, 0.3),
                }
            })
            .collect()
    };
    let asr = if rng.random_bool(0.2) {
        String::new()
    } else {
        let chars = rng.random_range(5..200);
        let mut asr = traced_text(&mut rng, class, chars, 0.4);
        if rng.random_bool(0.3) {
            asr.insert_str(0, &"嗯".repeat(rng.random_range(1..6)));
        }
        asr
    };
    let mut frames = 0;
    if let Some(plan) = plan_frames(&mut rng) {
        let tail = &id[id.len() - 3..];
        let path = out
            .join("zip_frames")
            .join(split_name)
            .join(tail)
            .join(format!("{id}.zip"));
        write_frames_zip(&path, &id, &mut rng, class, &plan)?;
        frames = plan.count;
    }
    let category_id = Taxonomy::get().category_id(class)?.to_string();
    Ok((
        VideoAnnotation {
            id,
            title,
            asr,
            ocr,
            category_id: Some(category_id),
        },
        frames,
    ))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), DataError> {
    let io = |e: std::io::Error| DataError::io(path, e);
    let mut writer = BufWriter::new(File::create(path).map_err(io)?);
    serde_json::to_writer(&mut writer, value).map_err(|e| io(std::io::Error::other(e)))?;
    writer.flush().map_err(io)
}

/// Writes a synthetic dataset into `out` (which must not exist or be empty). It is built in a
/// sibling temporary directory and renamed into place at the end, so an interrupted run leaves
/// no half-written dataset behind. `progress` is called once per finished video.
pub fn write_synthetic_dataset(
    out: &Path,
    config: &SynthConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<SynthSummary, DataError> {
    if out.exists()
        && fs::read_dir(out)
            .map_err(|e| DataError::io(out, e))?
            .next()
            .is_some()
    {
        return Err(DataError::Invalid(format!(
            "{}: output directory exists and is not empty",
            out.display()
        )));
    }
    let staging = staging_dir(out);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    }
    let result = write_into(&staging, config, progress);
    match result {
        Ok(summary) => {
            if out.exists() {
                fs::remove_dir(out).map_err(|e| DataError::io(out, e))?;
            }
            fs::rename(&staging, out).map_err(|e| DataError::io(out, e))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn staging_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map_or("dataset".into(), |n| n.to_string_lossy().to_string());
    out.with_file_name(format!(".{name}.partial"))
}

fn write_into(
    out: &Path,
    config: &SynthConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<SynthSummary, DataError> {
    let annotations_dir = out.join("annotations");
    let bert_dir = out.join("bert");
    for dir in [&annotations_dir, &bert_dir] {
        fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    let vocab = synthetic_vocab();
    let vocab_path = bert_dir.join("vocab.txt");
    fs::write(&vocab_path, vocab.join("\n") + "\n").map_err(|e| DataError::io(&vocab_path, e))?;
    write_json(
        &bert_dir.join("config.json"),
        &synthetic_bert_config(vocab.len()),
    )?;

    let mut rng = StdRng::seed_from_u64(config.seed);
    let sampler = class_sampler(&mut rng, Taxonomy::get().num_classes());
    let mut summary = SynthSummary::default();
    let splits = [
        ("labeled", config.labeled),
        ("unlabeled", config.unlabeled),
        ("test", config.test),
    ];
    for (split, (name, count)) in splits.iter().enumerate() {
        let classes: Vec<usize> = (0..*count)
            .map(|_| sample_class(&mut rng, &sampler))
            .collect();
        let made: Vec<(VideoAnnotation, usize)> = classes
            .par_iter()
            .enumerate()
            .map(|(index, &class)| {
                let video = make_video(config.seed, split, index, class, out, name);
                progress();
                video
            })
            .collect::<Result<_, _>>()?;
        summary.frames += made.iter().map(|(_, frames)| frames).sum::<usize>();
        let frames_dir = out.join("zip_frames").join(name);
        summary.missing_zips += made
            .iter()
            .filter(|(video, _)| crate::frames::frames_zip_path(&frames_dir, &video.id).is_none())
            .count();
        let mut videos: Vec<VideoAnnotation> = made.into_iter().map(|(video, _)| video).collect();
        if *name == "test" {
            let truth: String = videos
                .iter()
                .map(|v| {
                    format!(
                        "{},{}\n",
                        v.id,
                        v.category_id.as_deref().unwrap_or_default()
                    )
                })
                .collect();
            let path = out.join("test_ground_truth.csv");
            fs::write(&path, truth).map_err(|e| DataError::io(&path, e))?;
        }
        if *name != "labeled" {
            videos.iter_mut().for_each(|video| video.category_id = None);
        }
        write_json(&annotations_dir.join(format!("{name}.json")), &videos)?;
        summary.videos.push((name.to_string(), *count));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_covers_category_words() {
        let vocab = synthetic_vocab();
        assert_eq!(&vocab[..5], &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
        let (chinese, latin) = category_words(17);
        assert!(vocab.contains(&latin));
        assert!(chinese.chars().all(|c| vocab.contains(&c.to_string())));
        let unique: std::collections::HashSet<_> = vocab.iter().collect();
        assert_eq!(unique.len(), vocab.len());
    }

    #[test]
    fn ids_are_19_digits_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|i| video_id(3, 0, i)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 19 && id.bytes().all(|b| b.is_ascii_digit()))
        );
    }
}
