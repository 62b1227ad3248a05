//! Fuzz targets of the data parsers (see the book's "Fuzzing" chapter): annotation JSON files,
//! frames zips and the JPEG/PNG frames in them, features zips and their `.npy` arrays, and the
//! `id,category_id` CSV files of `vidcls evaluate`. Each target mutates small valid seed files
//! built here and checks that the parser returns (`Ok` or `Err`) without panicking.
//!
//! ```sh
//! cargo test --release -p vidcls-datasets --test fuzz_parsers                  # 64 cases each
//! PROPTEST_CASES=100000 cargo test --release -p vidcls-datasets --test fuzz_parsers
//! ```

#[path = "../../tests/support/archive.rs"]
mod archive;
#[path = "../../tests/fuzz/mutate.rs"]
mod mutate;
#[path = "../../tests/support/npy.rs"]
mod npy_file;
use archive::{crc32, zip};

use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::LazyLock;

use mutate::{Case, JSON_TOKENS, Seed, ZIP_TOKENS, cases, check, find_all, json_strings};
use npy_file::npy;
use proptest::prelude::*;
use vidcls_datasets::annotations::{read_annotations, read_labels};
use vidcls_datasets::features::FeatureReader;
use vidcls_datasets::frames::{decode_and_crop, load_frames};
use vidcls_datasets::submission::{align, read_category_csv};

// --- Seeds -----------------------------------------------------------------------------------

/// A JSON seed: its quoted strings and JSON syntax are the tokens.
fn json_seed(name: &'static str, text: &str) -> Seed {
    let strings = json_strings(text.as_bytes());
    Seed::new(name, text.as_bytes().to_vec())
        .tokens(strings)
        .tokens(JSON_TOKENS)
}

fn annotation_seeds() -> Vec<Seed> {
    vec![
        json_seed(
            "annotations_labeled",
            r#"[{"id":"1234567890123456789","title":"标题 title","asr":"语音 \"asr\"","ocr":[{"time":0,"text":"文字"},{"time":12,"text":"x\u00e9\n"}],"category_id":"0801"},
 {"id":"2","title":"","asr":"","ocr":[],"category_id":"0000"}]"#,
        ),
        json_seed(
            "annotations_unlabeled",
            r#"[{"id":"3","title":"t","asr":"a","ocr":[{"time":-1,"text":""}]},{"id":"4"}]"#,
        ),
    ]
}

/// An RGB test pattern of `width x height` pixels.
fn pattern(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 37 % 256) as u8,
            (y * 53 % 256) as u8,
            ((x + y) * 11) as u8,
        ])
    })
}

/// An image encoded by the `image` crate.
fn encode(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// A JPEG written by mozjpeg (progressive, optimized scans): RGB, or CMYK with its Adobe marker.
fn mozjpeg(width: usize, height: usize, color_space: mozjpeg::ColorSpace) -> Vec<u8> {
    let channels = if color_space == mozjpeg::ColorSpace::JCS_CMYK {
        4
    } else {
        3
    };
    let pixels: Vec<u8> = (0..width * height * channels)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut compress = mozjpeg::Compress::new(color_space);
    compress.set_size(width, height);
    compress.set_quality(80.0);
    let mut started = compress.start_compress(Vec::new()).unwrap();
    started.write_scanlines(&pixels).unwrap();
    started.finish().unwrap()
}

/// Offsets of a JPEG's marker segment lengths and frame header fields (big-endian).
fn jpeg_fields(bytes: &[u8]) -> Vec<usize> {
    let mut fields = Vec::new();
    for start in find_all(bytes, &[0xFF]) {
        let Some(&marker) = bytes.get(start + 1) else {
            continue;
        };
        if matches!(marker, 0x00 | 0x01 | 0xD0..=0xD9 | 0xFF) {
            continue;
        }
        // Segment length.
        fields.push(start + 2);
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            // Start of frame: precision, height, width, components, first component's
            // sampling factors and table.
            fields.extend([5, 7, 9, 11, 12].map(|offset| start + offset));
        } else if marker == 0xDA {
            // Start of scan: components, spectral selection, approximation.
            fields.extend([4, 5, 6].map(|offset| start + offset));
        }
    }
    fields
}

const JPEG_TOKENS: [&[u8]; 14] = [
    b"\xFF\xD8",
    b"\xFF\xD9",
    b"\xFF\xC0",
    b"\xFF\xC2",
    b"\xFF\xC4",
    b"\xFF\xDB",
    b"\xFF\xDA",
    b"\xFF\xDD\x00\x04\x00\x01",
    b"\xFF\xD0",
    b"\xFF\xEE\x00\x0EAdobe\x00\x64\x00\x00\x00\x00\x02",
    b"\xFF\xE0",
    b"JFIF\x00",
    b"Adobe",
    b"\xFF\xFF",
];

fn jpeg_seed(name: &'static str, bytes: Vec<u8>) -> Seed {
    let fields = jpeg_fields(&bytes);
    Seed::new(name, bytes).fields(fields).tokens(JPEG_TOKENS)
}

fn jpeg_seeds() -> Vec<Seed> {
    vec![
        jpeg_seed(
            "jpeg_baseline_rgb",
            encode(pattern(20, 14).into(), image::ImageFormat::Jpeg),
        ),
        jpeg_seed(
            "jpeg_gray",
            encode(
                image::DynamicImage::from(pattern(8, 9)).into_luma8().into(),
                image::ImageFormat::Jpeg,
            ),
        ),
        jpeg_seed(
            "jpeg_progressive_rgb",
            mozjpeg(17, 11, mozjpeg::ColorSpace::JCS_RGB),
        ),
        jpeg_seed(
            "jpeg_cmyk_adobe",
            mozjpeg(9, 8, mozjpeg::ColorSpace::JCS_CMYK),
        ),
    ]
}

/// The chunks of a PNG as (start, data length), as far as they fit in the file.
fn png_chunks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let mut start = 8;
    while start + 12 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[start..start + 4].try_into().unwrap()) as usize;
        if length > bytes.len() - start - 12 {
            break;
        }
        chunks.push((start, length));
        start += 12 + length;
    }
    chunks
}

/// Recomputes the CRCs of a mutated PNG's chunks, so that the mutations reach the decoder.
fn fix_png_crcs(bytes: &mut [u8]) {
    for (start, length) in png_chunks(bytes) {
        let crc = crc32(&bytes[start + 4..start + 8 + length]);
        bytes[start + 8 + length..start + 12 + length].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Offsets of a PNG's chunk lengths and header fields (big-endian).
fn png_fields(bytes: &[u8]) -> Vec<usize> {
    let mut fields = Vec::new();
    for (start, _) in png_chunks(bytes) {
        fields.push(start);
        if &bytes[start + 4..start + 8] == b"IHDR" {
            // Width, height, bit depth, colour type, compression, filter, interlace.
            fields.extend([8, 12, 16, 17, 18, 19, 20].map(|offset| start + offset));
        }
    }
    fields
}

const PNG_TOKENS: [&[u8]; 10] = [
    b"IHDR", b"IDAT", b"IEND", b"PLTE", b"tRNS", b"gAMA", b"acTL", b"fcTL", b"fdAT", b"iCCP",
];

fn png_seed(name: &'static str, image: image::DynamicImage) -> Seed {
    let bytes = encode(image, image::ImageFormat::Png);
    let fields = png_fields(&bytes);
    Seed::new(name, bytes)
        .fields(fields)
        .tokens(PNG_TOKENS)
        .fixup(fix_png_crcs)
}

fn png_seeds() -> Vec<Seed> {
    let rgb = image::DynamicImage::from(pattern(9, 7));
    vec![
        png_seed("png_rgb8", rgb.clone()),
        png_seed("png_luma_alpha8", rgb.clone().into_luma_alpha8().into()),
        png_seed("png_rgb16", rgb.into_rgb16().into()),
    ]
}

/// A zip seed: its header fields, zip signatures and entry names are what mutations aim at.
fn zip_seed(name: &'static str, entries: &[(&str, &[u8])], deflated: bool) -> Seed {
    let bytes = zip(entries, deflated);
    let fields = mutate::zip_fields(&bytes);
    Seed::new(name, bytes)
        .fields(fields)
        .tokens(ZIP_TOKENS)
        .tokens(entries.iter().map(|(name, _)| name.as_bytes()))
}

/// The video of the frames seeds, and where its zip goes.
const FRAMES_VIDEO: &str = "1234567890";

fn frames_zip_seeds() -> Vec<Seed> {
    let jpeg = encode(pattern(20, 14).into(), image::ImageFormat::Jpeg);
    let progressive = mozjpeg(10, 12, mozjpeg::ColorSpace::JCS_RGB);
    let png = encode(pattern(9, 7).into(), image::ImageFormat::Png);
    let entries: [(&str, &[u8]); 4] = [
        ("frames/", b""),
        ("frames/000.jpg", &jpeg),
        ("frames/001.png", &png),
        ("frames/002.jpg", &progressive),
    ];
    vec![
        zip_seed("frames_zip_deflated", &entries, true),
        zip_seed("frames_zip_stored", &entries, false),
    ]
}

/// Values `0, 1/8, 2/8, ...` as little-endian float16 bytes.
fn f16_data(count: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|i| half::f16::from_f32(i as f32 / 8.0).to_le_bytes())
        .collect()
}

/// Values `-3.5, -2.5, ...` as float32 bytes.
fn f32_data(count: usize, big_endian: bool) -> Vec<u8> {
    (0..count)
        .flat_map(|i| {
            let value = i as f32 - 3.5;
            if big_endian {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            }
        })
        .collect()
}

/// Columns of the features seeds.
const FEATURE_DIM: usize = 4;

const NPY_TOKENS: [&[u8]; 22] = [
    b"'<f2'",
    b"'<f4'",
    b"'>f4'",
    b"'<f8'",
    b"'|u1'",
    b"'<i8'",
    b"'|b1'",
    b"'<c8'",
    b"'|O'",
    b"'|V8'",
    b"'<U4'",
    b"'<M8[s]'",
    b"[('a', '<f4'), ('b', '<f4')]",
    b"True",
    b"False",
    b"'descr'",
    b"'shape'",
    b"'fortran_order'",
    b"()",
    b"(4,)",
    b"\x93NUMPY",
    b"\n",
];

fn npy_seed(name: &'static str, bytes: Vec<u8>) -> Seed {
    let header_len = if bytes[6] == 1 { 10 } else { 12 };
    let data_start = bytes.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
    Seed::new(name, bytes)
        .fields(vec![6, 8, header_len, data_start])
        .tokens(NPY_TOKENS)
}

fn npy_seeds() -> Vec<Seed> {
    vec![
        npy_seed(
            "npy_f16_c_30x4",
            npy(1, "<f2", false, "(30, 4)", &f16_data(30 * FEATURE_DIM)),
        ),
        npy_seed(
            "npy_f32_fortran_3x4",
            npy(1, "<f4", true, "(3, 4)", &f32_data(3 * FEATURE_DIM, false)),
        ),
        npy_seed(
            "npy_f32_big_endian_2x4",
            npy(1, ">f4", false, "(2, 4)", &f32_data(2 * FEATURE_DIM, true)),
        ),
        npy_seed(
            "npy_v2_f32_5x4",
            npy(2, "<f4", false, "(5, 4)", &f32_data(5 * FEATURE_DIM, false)),
        ),
        // Valid .npy, refused dtype (an error, not a panic).
        npy_seed("npy_f64_2x4", npy(1, "<f8", false, "(2, 4)", &[0x3F; 64])),
    ]
}

/// The second, valid array of the features zips that the npy target writes.
fn valid_npy() -> Vec<u8> {
    npy(1, "<f2", false, "(9, 4)", &f16_data(9 * FEATURE_DIM))
}

fn features_zip_seeds() -> Vec<Seed> {
    let f16 = npy(1, "<f2", false, "(30, 4)", &f16_data(30 * FEATURE_DIM));
    let f32 = npy(1, "<f4", true, "(3, 4)", &f32_data(3 * FEATURE_DIM, false));
    let entries: [(&str, &[u8]); 2] = [("v1.npy", &f16), ("v2.npy", &f32)];
    vec![
        zip_seed("features_zip_deflated", &entries, true),
        zip_seed("features_zip_stored", &entries, false),
    ]
}

/// Category ids of the taxonomy (and one that is not).
const CATEGORY_TOKENS: [&str; 9] = ["0000", "0001", "0801", "9999", ",", "\n", "\r\n", " ", ""];

fn csv_seeds() -> Vec<Seed> {
    let seed = |name, text: &str| Seed::new(name, text.as_bytes().to_vec()).tokens(CATEGORY_TOKENS);
    vec![
        seed("csv_truth", "a,0801\nb,0000\nc,0001\n"),
        seed("csv_result_crlf", "c,0000\r\na,0801\r\nb, 0001 \r\n\r\n"),
    ]
}

static ANNOTATIONS: LazyLock<Vec<Seed>> = LazyLock::new(annotation_seeds);
static JPEGS: LazyLock<Vec<Seed>> = LazyLock::new(jpeg_seeds);
static PNGS: LazyLock<Vec<Seed>> = LazyLock::new(png_seeds);
static FRAMES_ZIPS: LazyLock<Vec<Seed>> = LazyLock::new(frames_zip_seeds);
static NPYS: LazyLock<Vec<Seed>> = LazyLock::new(npy_seeds);
static FEATURES_ZIPS: LazyLock<Vec<Seed>> = LazyLock::new(features_zip_seeds);
static CSVS: LazyLock<Vec<Seed>> = LazyLock::new(csv_seeds);

// --- What each target runs -------------------------------------------------------------------

/// A temporary file holding `bytes`.
fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file
}

fn parse_annotations(path: &Path) {
    if let Ok(videos) = read_annotations(path) {
        let _ = read_labels(path, &videos);
    }
}

/// Loads the frames of [`FRAMES_VIDEO`] from `zip`, written where `load_frames` looks.
fn parse_frames_zip(zip: &[u8]) -> vidcls_datasets::visual::VisualSample {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join(&FRAMES_VIDEO[FRAMES_VIDEO.len() - 3..]);
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(nested.join(format!("{FRAMES_VIDEO}.zip")), zip).unwrap();
    load_frames(dir.path(), FRAMES_VIDEO, 3)
}

/// Opens a features zip and loads both videos and a missing one.
fn parse_features_zip(zip: &[u8]) -> Vec<vidcls_datasets::visual::VisualSample> {
    let file = temp_file(zip);
    match FeatureReader::open(file.path(), FEATURE_DIM) {
        Ok(reader) => ["v1", "v2", "absent"]
            .iter()
            .map(|video| reader.load(video, 8))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Reads a result and a ground truth as `vidcls evaluate` does, and pairs them.
fn parse_csvs(result: &[u8], truth: &[u8]) {
    let (result_file, truth_file) = (temp_file(result), temp_file(truth));
    let result = read_category_csv(result_file.path());
    let truth = read_category_csv(truth_file.path());
    if let (Ok(result), Ok(truth)) = (result, truth) {
        let _ = align(&result, result_file.path(), &truth, truth_file.path());
    }
}

// --- The targets -----------------------------------------------------------------------------

proptest! {
    #![proptest_config(mutate::config())]

    /// `read_annotations` (and `read_labels`) on mutated annotation files.
    #[test]
    fn fuzz_annotations_json(case in cases(&ANNOTATIONS)) {
        let file = temp_file(&case.bytes(&ANNOTATIONS));
        check(&case, || parse_annotations(file.path()))?;
    }

    /// `decode_and_crop` on mutated JPEGs (baseline, grayscale, progressive, CMYK).
    #[test]
    fn fuzz_frames_jpeg(case in cases(&JPEGS)) {
        let bytes = case.bytes(&JPEGS);
        check(&case, || decode_and_crop(&bytes))?;
    }

    /// `decode_and_crop` on mutated PNGs (chunk CRCs repaired).
    #[test]
    fn fuzz_frames_png(case in cases(&PNGS)) {
        let bytes = case.bytes(&PNGS);
        check(&case, || decode_and_crop(&bytes))?;
    }

    /// `load_frames` on mutated frames zips.
    #[test]
    fn fuzz_frames_zip(case in cases(&FRAMES_ZIPS)) {
        let zip = case.bytes(&FRAMES_ZIPS);
        check(&case, || parse_frames_zip(&zip))?;
    }

    /// `FeatureReader` on valid zips holding a mutated `.npy` array (and a valid one).
    #[test]
    fn fuzz_features_npy(case in cases(&NPYS), deflated in any::<bool>()) {
        let (mutated, valid) = (case.bytes(&NPYS), valid_npy());
        let zip = zip(&[("v1.npy", &mutated), ("v2.npy", &valid)], deflated);
        check(&case, || parse_features_zip(&zip))?;
    }

    /// `FeatureReader` on mutated features zips.
    #[test]
    fn fuzz_features_zip(case in cases(&FEATURES_ZIPS)) {
        let zip = case.bytes(&FEATURES_ZIPS);
        check(&case, || parse_features_zip(&zip))?;
    }

    /// `read_category_csv` and `align` (what `vidcls evaluate` runs) on a mutated result and
    /// a mutated ground truth.
    #[test]
    fn fuzz_evaluate_csv(result in cases(&CSVS), truth in cases(&CSVS)) {
        let (result_bytes, truth_bytes) = (result.bytes(&CSVS), truth.bytes(&CSVS));
        let case = Case { seed: "csv result and truth", mutations: [result.mutations, truth.mutations].concat() };
        check(&case, || parse_csvs(&result_bytes, &truth_bytes))?;
    }
}

/// The seeds are valid inputs: the targets start from files that parse.
#[test]
fn fuzz_seeds_parse() {
    for seed in ANNOTATIONS.iter() {
        let file = temp_file(&seed.bytes);
        let videos = read_annotations(file.path()).unwrap_or_else(|e| panic!("{}: {e}", seed.name));
        assert_eq!(videos.len(), 2, "{}", seed.name);
    }
    for seed in JPEGS.iter().chain(PNGS.iter()) {
        decode_and_crop(&seed.bytes).unwrap_or_else(|e| panic!("{}: {e}", seed.name));
    }
    let mut fixed = PNGS[0].bytes.clone();
    fix_png_crcs(&mut fixed);
    assert_eq!(fixed, PNGS[0].bytes, "the CRC fix-up keeps valid PNGs");
    for seed in FRAMES_ZIPS.iter() {
        let sample = parse_frames_zip(&seed.bytes);
        assert!(
            sample.issues.is_empty(),
            "{}: {:?}",
            seed.name,
            sample.issues
        );
        assert_eq!(sample.frame_mask, [1, 1, 1], "{}", seed.name);
    }
    for seed in NPYS.iter() {
        let zip = zip(&[("v1.npy", &seed.bytes), ("v2.npy", &valid_npy())], true);
        let samples = parse_features_zip(&zip);
        let refused = seed.name == "npy_f64_2x4";
        assert_eq!(
            samples[0].issues.is_empty(),
            !refused,
            "{}: {:?}",
            seed.name,
            samples[0].issues
        );
        assert!(
            samples[1].issues.is_empty(),
            "{}: {:?}",
            seed.name,
            samples[1].issues
        );
    }
    for seed in FEATURES_ZIPS.iter() {
        let samples = parse_features_zip(&seed.bytes);
        assert!(
            samples[0].issues.is_empty() && samples[1].issues.is_empty(),
            "{}",
            seed.name
        );
        assert_eq!(samples[2].issues.len(), 1, "{}", seed.name);
    }
    let (truth, result) = (temp_file(&CSVS[0].bytes), temp_file(&CSVS[1].bytes));
    let truth_rows = read_category_csv(truth.path()).unwrap();
    let result_rows = read_category_csv(result.path()).unwrap();
    align(&result_rows, result.path(), &truth_rows, truth.path()).unwrap();
}
