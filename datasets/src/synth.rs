//! A synthetic dataset in the competition's layout, for demos, tests and benchmarks.
//!
//! Each category leaves a learnable trace: keywords in the title, ocr and asr (an invented
//! Chinese word and an invented Latin word per category), and a colour and stripe texture in
//! the frames. Noise makes it realistic: empty texts, missing frames zips, empty zips, 0 to 32
//! frames, frame sizes from a few pixels to portrait 1080 x 1920, grayscale JPEGs, PNGs, runs of
//! '嗯', unsorted ocr, and a skewed (Zipf-like) category distribution. Output is deterministic
//! for a seed.
//!
//! For benchmarks, [`SynthConfig`] can make the task harder: fewer categories
//! ([`SynthConfig::categories`]), weaker keyword traces ([`SynthConfig::text_cue`]) and fewer
//! videos whose frames show their category's look ([`SynthConfig::frame_cue`]). Their defaults
//! give exactly the dataset that the generator wrote before they existed.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use crate::annotations::{OcrItem, VideoAnnotation};
use crate::error::DataError;
use crate::output::PendingDir;
use crate::taxonomy::Taxonomy;

/// Probability that a title carries its category's keyword, at a text cue of 1.
const TITLE_CUE: f64 = 0.7;
/// Probability that an ocr item carries its category's keyword, at a text cue of 1.
const OCR_CUE: f64 = 0.3;
/// Probability that an asr carries its category's keyword, at a text cue of 1.
const ASR_CUE: f64 = 0.4;
/// The largest [`SynthConfig::text_cue`]: it makes every non-empty title carry its keyword.
pub const MAX_TEXT_CUE: f64 = 1.0 / TITLE_CUE;
/// The default [`SynthConfig::frame_cue`].
pub const DEFAULT_FRAME_CUE: f64 = 0.8;
/// Mixed into the seed of the RNG that chooses [`SynthConfig::categories`] categories, so that
/// this choice draws nothing from the other RNGs.
const CATEGORY_SEED_SALT: u64 = 0x0C47_E602_1E55_A17D;

/// How many videos of each split to generate, and how strong the category traces are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    /// Labeled videos (`annotations/labeled.json`).
    pub labeled: usize,
    /// Unlabeled videos (`annotations/unlabeled.json`).
    pub unlabeled: usize,
    /// Test videos (`annotations/test.json` + `test_ground_truth.csv`).
    pub test: usize,
    /// Random seed.
    pub seed: u64,
    /// How many of the taxonomy's categories the videos (all splits) are drawn from, 1 to 200.
    /// They are chosen from the seed and spread over the level-1 groups: the groups in a seeded
    /// order, each group's categories in a seeded order, taken round-robin (one category of each
    /// group, then a second one of each group that has one, ...) until there are this many. The
    /// videos keep the skewed (Zipf-like) distribution over them.
    pub categories: usize,
    /// Multiplies the probabilities that a title, an ocr item and an asr carry their category's
    /// keyword (0.7, 0.3 and 0.4 at 1), from 0 (no keywords) to [`MAX_TEXT_CUE`].
    pub text_cue: f64,
    /// Probability that a video's frames show its category's colour and stripes (otherwise
    /// those of a random category), 0 to 1.
    pub frame_cue: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            labeled: 1000,
            unlabeled: 500,
            test: 200,
            seed: 2022,
            categories: Taxonomy::get().num_classes(),
            text_cue: 1.0,
            frame_cue: DEFAULT_FRAME_CUE,
        }
    }
}

impl SynthConfig {
    /// Checks that the category count and the cues are in range.
    pub fn validate(&self) -> Result<(), DataError> {
        let num_classes = Taxonomy::get().num_classes();
        if !(1..=num_classes).contains(&self.categories) {
            return Err(DataError::Invalid(format!(
                "categories must be 1 to {num_classes}, got {}",
                self.categories
            )));
        }
        if !(0.0..=MAX_TEXT_CUE).contains(&self.text_cue) {
            return Err(DataError::Invalid(format!(
                "text cue must be 0 to 1/{TITLE_CUE} (~{MAX_TEXT_CUE:.4}), got {}",
                self.text_cue
            )));
        }
        if !(0.0..=1.0).contains(&self.frame_cue) {
            return Err(DataError::Invalid(format!(
                "frame cue must be 0 to 1, got {}",
                self.frame_cue
            )));
        }
        Ok(())
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

/// The `count` level-2 classes that the videos are drawn from (see [`SynthConfig::categories`]),
/// chosen by an RNG of their own, seeded from `seed`; all of them when `count` is their number.
fn chosen_classes(seed: u64, count: usize) -> Vec<usize> {
    let taxonomy = Taxonomy::get();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_lv1: Vec<usize> = Vec::new();
    for class in 0..taxonomy.num_classes() {
        let lv1 = taxonomy
            .lv1_of_lv2(class)
            .expect("a level-2 class of the taxonomy");
        match group_lv1.iter().position(|&g| g == lv1) {
            Some(group) => groups[group].push(class),
            None => {
                group_lv1.push(lv1);
                groups.push(vec![class]);
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(seed ^ CATEGORY_SEED_SALT);
    groups.shuffle(&mut rng);
    groups.iter_mut().for_each(|group| group.shuffle(&mut rng));
    let rounds = groups.iter().map(Vec::len).max().unwrap_or(0);
    (0..rounds)
        .flat_map(|round| {
            groups
                .iter()
                .filter_map(move |group| group.get(round).copied())
        })
        .take(count)
        .collect()
}

/// Zipf-like class weights over the `chosen` classes: the k-th most frequent one has weight
/// 1 / (k + 1)^0.8, their order given by a shuffle of all `num_classes` classes by the seed.
fn class_sampler(rng: &mut StdRng, num_classes: usize, chosen: &[usize]) -> Vec<(usize, f64)> {
    let mut classes: Vec<usize> = (0..num_classes).collect();
    for i in (1..classes.len()).rev() {
        classes.swap(i, rng.random_range(0..=i));
    }
    classes.retain(|class| chosen.contains(class));
    let weights: Vec<f64> = (0..classes.len())
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
    frame_cue: f64,
) -> Result<(), DataError> {
    let io = |e: std::io::Error| DataError::io(path, e);
    fs::create_dir_all(path.parent().expect("zip path has a parent")).map_err(io)?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(File::create(path).map_err(io)?));
    let traced = rng.random_bool(frame_cue);
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
    config: &SynthConfig,
    split: usize,
    index: usize,
    class: usize,
    out: &Path,
    split_name: &str,
) -> Result<(VideoAnnotation, usize), DataError> {
    let seed = config.seed;
    let mut rng = StdRng::seed_from_u64(seed ^ ((split as u64 + 1) << 48) ^ index as u64);
    let id = video_id(seed, split, index);
    let cue = |p: f64| (p * config.text_cue).min(1.0);
    let title = if rng.random_bool(0.05) {
        String::new()
    } else {
        {
            let chars = rng.random_range(1..40);
            traced_text(&mut rng, class, chars, cue(TITLE_CUE))
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
                    text: traced_text(&mut rng, class, chars, cue(OCR_CUE)),
                }
            })
            .collect()
    };
    let asr = if rng.random_bool(0.2) {
        String::new()
    } else {
        let chars = rng.random_range(5..200);
        let mut asr = traced_text(&mut rng, class, chars, cue(ASR_CUE));
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
        write_frames_zip(&path, &id, &mut rng, class, &plan, config.frame_cue)?;
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
/// sibling temporary directory and renamed into place at the end ([`PendingDir`]), so an
/// interrupted run leaves no half-written dataset behind. `progress` is called once per finished video. Fails before
/// writing anything when [`SynthConfig::validate`] does.
pub fn write_synthetic_dataset(
    out: &Path,
    config: &SynthConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<SynthSummary, DataError> {
    config.validate()?;
    let pending = PendingDir::create(out).map_err(|e| match e.kind() {
        // Not an I/O failure: a plain message.
        std::io::ErrorKind::AlreadyExists => DataError::Invalid(format!("{}: {e}", out.display())),
        _ => DataError::io(out, e),
    })?;
    let summary = write_into(pending.temp_path(), config, progress)?;
    pending.commit().map_err(|e| DataError::io(out, e))?;
    Ok(summary)
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
    let sampler = class_sampler(
        &mut rng,
        Taxonomy::get().num_classes(),
        &chosen_classes(config.seed, config.categories),
    );
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
                let video = make_video(config, split, index, class, out, name);
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
    use std::path::PathBuf;

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

    /// FNV-1a over the files under `parts` of `root` (relative path, then bytes), in path order.
    fn tree_hash(root: &Path, parts: &[&str]) -> u64 {
        fn files(path: &Path, out: &mut Vec<PathBuf>) {
            if path.is_dir() {
                for entry in fs::read_dir(path).unwrap() {
                    files(&entry.unwrap().path(), out);
                }
            } else {
                out.push(path.to_path_buf());
            }
        }
        let mut paths = Vec::new();
        for part in parts {
            files(&root.join(part), &mut paths);
        }
        paths.sort();
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for path in paths {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            for byte in relative.bytes().chain(fs::read(&path).unwrap()) {
                hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }

    /// Writes a dataset into a new temporary directory; returns the directory and the dataset.
    fn synth(config: &SynthConfig) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("data");
        write_synthetic_dataset(&out, config, &|| {}).unwrap();
        (dir, out)
    }

    const SMALL: SynthConfig = SynthConfig {
        labeled: 40,
        unlabeled: 10,
        test: 30,
        seed: 11,
        categories: 200,
        text_cue: 1.0,
        frame_cue: DEFAULT_FRAME_CUE,
    };
    const TEXTS: [&str; 2] = ["annotations", "test_ground_truth.csv"];

    /// Whether any text of `video` carries its category's keyword.
    fn has_keyword(video: &VideoAnnotation) -> bool {
        let class = Taxonomy::get()
            .lv2(video.category_id.as_deref().unwrap())
            .unwrap();
        let (chinese, latin) = category_words(class);
        let latin = format!(" {latin} ");
        std::iter::once(&video.title)
            .chain(video.ocr.iter().map(|item| &item.text))
            .chain([&video.asr])
            .any(|text| text.contains(&chinese) || text.contains(&latin))
    }

    /// The hashes were computed with the generator as it was before the category count and the
    /// cues existed: their defaults must give the same bytes. The frames hash also changes when
    /// the JPEG, PNG or zip encoders change their output; the texts hash does not.
    #[test]
    fn defaults_give_the_original_dataset() {
        assert_eq!(SMALL.categories, SynthConfig::default().categories);
        let (_dir, out) = synth(&SMALL);
        assert_eq!(tree_hash(&out, &TEXTS), 0x12e9_7ea6_7f94_bfad);
        assert_eq!(tree_hash(&out, &["zip_frames"]), 0xa02f_270d_3086_6c72);
        let labeled =
            crate::annotations::read_annotations(&out.join("annotations/labeled.json")).unwrap();
        assert!(labeled.iter().filter(|video| has_keyword(video)).count() > 20);
    }

    #[test]
    fn frame_cue_changes_frames_only() {
        let (_dir, out) = synth(&SynthConfig {
            frame_cue: 0.0,
            ..SMALL
        });
        assert_eq!(tree_hash(&out, &TEXTS), 0x12e9_7ea6_7f94_bfad);
        assert_ne!(tree_hash(&out, &["zip_frames"]), 0xa02f_270d_3086_6c72);
    }

    #[test]
    fn few_categories_and_no_text_cue() {
        let config = SynthConfig {
            categories: 5,
            text_cue: 0.0,
            ..SMALL
        };
        let (_dir, out) = synth(&config);
        let labeled =
            crate::annotations::read_annotations(&out.join("annotations/labeled.json")).unwrap();
        let truth = fs::read_to_string(out.join("test_ground_truth.csv")).unwrap();
        let ids: std::collections::BTreeSet<&str> = labeled
            .iter()
            .map(|video| video.category_id.as_deref().unwrap())
            .chain(truth.lines().map(|line| line.split_once(',').unwrap().1))
            .collect();
        let mut chosen: Vec<&str> = chosen_classes(config.seed, 5)
            .into_iter()
            .map(|class| Taxonomy::get().category_id(class).unwrap())
            .collect();
        chosen.sort_unstable();
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), chosen);
        assert!(!labeled.iter().any(has_keyword));
    }

    #[test]
    fn chosen_classes_spread_over_level1_groups() {
        let taxonomy = Taxonomy::get();
        let groups: std::collections::BTreeSet<usize> = (0..taxonomy.num_classes())
            .map(|class| taxonomy.lv1_of_lv2(class).unwrap())
            .collect();
        let chosen = chosen_classes(7, groups.len());
        let lv1: std::collections::BTreeSet<usize> = chosen
            .iter()
            .map(|&class| taxonomy.lv1_of_lv2(class).unwrap())
            .collect();
        assert_eq!(lv1, groups);
        let mut all = chosen_classes(7, taxonomy.num_classes());
        assert_eq!(all[..groups.len()], chosen[..]);
        all.sort_unstable();
        assert_eq!(all, (0..taxonomy.num_classes()).collect::<Vec<_>>());
        assert_eq!(chosen_classes(7, 50), chosen_classes(7, 50));
        assert_ne!(chosen_classes(7, 50), chosen_classes(8, 50));
    }

    #[test]
    fn validate_rejects_out_of_range_values() {
        let with = |categories, text_cue, frame_cue| SynthConfig {
            categories,
            text_cue,
            frame_cue,
            ..SMALL
        };
        assert!(with(1, 0.0, 0.0).validate().is_ok());
        assert!(with(200, MAX_TEXT_CUE, 1.0).validate().is_ok());
        for config in [
            with(0, 1.0, 0.8),
            with(201, 1.0, 0.8),
            with(50, -0.1, 0.8),
            with(50, 1.5, 0.8),
            with(50, f64::NAN, 0.8),
            with(50, 1.0, 1.01),
            with(50, 1.0, f64::NAN),
        ] {
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("must be"), "{error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("data");
        assert!(write_synthetic_dataset(&out, &with(0, 1.0, 0.8), &|| {}).is_err());
        assert!(!out.exists());
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
