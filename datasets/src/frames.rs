//! Raw frames: the zip of JPEGs of each video, the reference's frame selection, and the image
//! preprocessing (Resize(256) with Pillow's antialiased bilinear filter, CenterCrop(224),
//! ToTensor, Normalize).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::jpeg::{RgbImage, check_pixels, decode_jpeg, is_jpeg};
use crate::resize::resize_window;
use crate::video_id::check_video_id;
use crate::visual::{VisualSample, read_entry, sorted_entries};

/// Frames per video in the reference.
pub const DEFAULT_MAX_FRAMES: usize = 8;
/// The shorter side after resizing.
pub const RESIZE_SHORT_SIDE: u32 = 256;
/// The side of the centre crop, the model's input size.
pub const CROP_SIZE: usize = 224;
/// Values per preprocessed frame (`3 x 224 x 224`).
pub const FRAME_VALUES: usize = 3 * CROP_SIZE * CROP_SIZE;
/// ImageNet channel means used by Normalize.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations used by Normalize.
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The most pixels a frame may have: twice Pillow's `Image.MAX_IMAGE_PIXELS` (89,478,485),
/// where Pillow raises `DecompressionBombError`. Larger images are refused before decoding.
pub const MAX_IMAGE_PIXELS: u64 = 2 * 89_478_485;

/// The reference's frame selection: which of `n` frames (in sorted order) are used.
///
/// With `max` slots: all frames if `n <= max`; the first `max` if `n <= 3 * max`; otherwise
/// every `n / max`-th frame from the first, `max` of them. (The reference has `max` = 8.)
pub fn select_frames(n: usize, max: usize) -> Vec<usize> {
    if n <= 3 * max {
        (0..n.min(max)).collect()
    } else {
        (0..n).step_by(n / max).take(max).collect()
    }
}

/// The last 3 characters of a video id (`id[-3:]`), the name of its frames sub-directory.
fn id_tail(video_id: &str) -> &str {
    let start = video_id
        .char_indices()
        .rev()
        .nth(2)
        .map_or(0, |(start, _)| start);
    &video_id[start..]
}

/// Where a video's frames zip is: `<dir>/<last 3 chars of id>/<id>.zip`, else `<dir>/<id>.zip`.
pub fn frames_zip_path(frames_dir: &Path, video_id: &str) -> Option<PathBuf> {
    let nested = frames_dir
        .join(id_tail(video_id))
        .join(format!("{video_id}.zip"));
    let flat = frames_dir.join(format!("{video_id}.zip"));
    [nested, flat].into_iter().find(|path| path.is_file())
}

/// Checks that a frames directory exists and is a directory: a wrong `--frames` must not
/// silently give every video empty frame slots.
pub fn check_frames_dir(dir: &Path) -> Result<(), DataError> {
    match std::fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(DataError::Invalid(format!(
            "{}: not a directory (--frames takes the directory of the frame zips)",
            dir.display()
        ))),
        Err(e) => Err(DataError::Invalid(format!(
            "{}: cannot read the frames directory: {e}",
            dir.display()
        ))),
    }
}

/// An RGB frame after Resize(256) + CenterCrop(224): 224 x 224 x 3 bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CroppedFrame(pub Vec<u8>);

/// Decodes an image (JPEG or PNG, any colour mode, converted to RGB), resizes its shorter side
/// to 256 exactly as Pillow's `resize(..., BILINEAR)` does, and takes the centre 224 x 224.
pub fn decode_and_crop(bytes: &[u8]) -> Result<CroppedFrame, String> {
    let image = decode_rgb(bytes)?;
    if image.width == 0 || image.height == 0 {
        return Err("empty image".into());
    }
    let (new_width, new_height) = resized_size(image.width as u32, image.height as u32);
    let (new_width, new_height) = (new_width as usize, new_height as usize);
    Ok(CroppedFrame(resize_window(
        &image.pixels,
        image.width,
        image.height,
        new_width,
        new_height,
        (crop_offset(new_width), crop_offset(new_height)),
        (CROP_SIZE, CROP_SIZE),
    )))
}

/// Decodes to RGB: JPEGs with libjpeg-turbo's decoder, other formats with the `image` crate;
/// images above [`MAX_IMAGE_PIXELS`] are refused before decoding.
fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    if is_jpeg(bytes) {
        return decode_jpeg(bytes, MAX_IMAGE_PIXELS);
    }
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())
    };
    let (width, height) = reader()?.into_dimensions().map_err(|e| e.to_string())?;
    check_pixels(width as u64, height as u64, MAX_IMAGE_PIXELS)?;
    let rgb = reader()?.decode().map_err(|e| e.to_string())?.to_rgb8();
    Ok(RgbImage {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        pixels: rgb.into_raw(),
    })
}

/// torchvision's Resize(256) output size: shorter side 256, longer `int(256 * long / short)`.
pub fn resized_size(width: u32, height: u32) -> (u32, u32) {
    let long_side =
        |long: u32, short: u32| ((RESIZE_SHORT_SIDE as f64 * long as f64) / short as f64) as u32;
    if width <= height {
        (RESIZE_SHORT_SIDE, long_side(height, width))
    } else {
        (long_side(width, height), RESIZE_SHORT_SIDE)
    }
}

/// torchvision's CenterCrop offset: `round((size - 224) / 2)`, half to even.
pub fn crop_offset(size: usize) -> usize {
    ((size - CROP_SIZE) as f64 / 2.0).round_ties_even() as usize
}

/// ToTensor + Normalize: writes the `[3, 224, 224]` float tensor of a frame into `out`.
pub fn normalize_into(frame: &CroppedFrame, out: &mut [f32]) {
    let plane = CROP_SIZE * CROP_SIZE;
    for (channel, plane_out) in out[..FRAME_VALUES].chunks_exact_mut(plane).enumerate() {
        let (mean, std) = (MEAN[channel], STD[channel]);
        for (value, pixel) in plane_out.iter_mut().zip(frame.0.chunks_exact(3)) {
            *value = (pixel[channel] as f32 / 255.0 - mean) / std;
        }
    }
}

/// Loads the selected frames of one video from its zip into `[max_frames, 3, 224, 224]`.
///
/// Problems (no zip, an empty zip, an undecodable frame) are recorded in the sample's
/// `issues`, and the affected slots stay empty; the caller decides whether that is an error.
pub fn load_frames(frames_dir: &Path, video_id: &str, max_frames: usize) -> VisualSample {
    load_frames_with(frames_dir, video_id, max_frames, |_, _| {})
}

/// Like [`load_frames`], also handing each decoded and cropped frame (slot, pixels) to `inspect`.
pub fn load_frames_with(
    frames_dir: &Path,
    video_id: &str,
    max_frames: usize,
    inspect: impl FnMut(usize, &CroppedFrame),
) -> VisualSample {
    load_selected_frames(frames_dir, video_id, max_frames, select_frames, inspect)
}

/// Loads the first `max_frames` frames of one video (frames `0..min(n, max_frames)`, what the
/// reference's feature extractor reads) into `[max_frames, 3, 224, 224]`; problems are
/// recorded as by [`load_frames`].
pub fn load_first_frames(frames_dir: &Path, video_id: &str, max_frames: usize) -> VisualSample {
    let first = |n: usize, max: usize| (0..n.min(max)).collect();
    load_selected_frames(frames_dir, video_id, max_frames, first, |_, _| {})
}

/// Loads the frames that `select(n, max_frames)` picks of the `n` frames of one video.
fn load_selected_frames(
    frames_dir: &Path,
    video_id: &str,
    max_frames: usize,
    select: impl Fn(usize, usize) -> Vec<usize>,
    mut inspect: impl FnMut(usize, &CroppedFrame),
) -> VisualSample {
    let mut sample = VisualSample::empty_frames(max_frames, CROP_SIZE);
    if let Err(message) = check_video_id(video_id) {
        sample
            .issues
            .push(format!("{}: {message}", frames_dir.display()));
        return sample;
    }
    let Some(path) = frames_zip_path(frames_dir, video_id) else {
        sample.issues.push(format!(
            "{}: video {video_id}: no frames zip (looked for {video_id}.zip in {0}/{1}/ and {0}/)",
            frames_dir.display(),
            id_tail(video_id)
        ));
        return sample;
    };
    let problem = |message: String| format!("{}: video {video_id}: {message}", path.display());
    let mut archive = match File::open(&path)
        .map_err(|e| e.to_string())
        .and_then(|file| zip::ZipArchive::new(BufReader::new(file)).map_err(|e| e.to_string()))
    {
        Ok(archive) => archive,
        Err(message) => {
            sample
                .issues
                .push(problem(format!("cannot open zip: {message}")));
            return sample;
        }
    };
    let entries = sorted_entries(&archive);
    if entries.is_empty() {
        sample.issues.push(problem("zip has no frames".into()));
        return sample;
    }
    let selected = select(entries.len(), max_frames);
    for (slot, &entry) in selected.iter().enumerate() {
        let (index, name) = &entries[entry];
        let decoded = archive
            .by_index(*index)
            .map_err(|e| e.to_string())
            .and_then(read_entry)
            .and_then(|bytes| decode_and_crop(&bytes));
        match decoded {
            Ok(frame) => {
                inspect(slot, &frame);
                normalize_into(&frame, sample.slot_mut(slot));
                sample.frame_mask[slot] = 1;
            }
            Err(message) => sample.issues.push(problem(format!(
                "frame {name:?} cannot be decoded: {message}"
            ))),
        }
    }
    sample.frame_indices = selected;
    sample
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_rule() {
        assert_eq!(select_frames(0, 8), Vec::<usize>::new());
        assert_eq!(select_frames(5, 8), vec![0, 1, 2, 3, 4]);
        assert_eq!(select_frames(24, 8), (0..8).collect::<Vec<_>>());
        assert_eq!(select_frames(25, 8), vec![0, 3, 6, 9, 12, 15, 18, 21]);
        assert_eq!(select_frames(32, 8), vec![0, 4, 8, 12, 16, 20, 24, 28]);
    }

    #[test]
    fn undecodable_frames_and_missing_zips_are_reported() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let zip_path = dir.path().join("789").join("123456789.zip");
        std::fs::create_dir_all(zip_path.parent().unwrap()).unwrap();
        let mut zip = zip::ZipWriter::new(File::create(&zip_path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        let mut jpeg = Vec::new();
        image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]))
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Png,
            )
            .unwrap();
        zip.start_file("b.png", options).unwrap();
        zip.write_all(&jpeg).unwrap();
        zip.start_file("a.jpg", options).unwrap();
        zip.write_all(b"\xff\xd8\xff garbage").unwrap();
        zip.finish().unwrap();

        let sample = load_frames(dir.path(), "123456789", 8);
        assert_eq!(sample.frame_indices, vec![0, 1]);
        assert_eq!(sample.frame_mask, vec![0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(sample.issues.len(), 1);
        assert!(
            sample.issues[0].contains("video 123456789") && sample.issues[0].contains("\"a.jpg\"")
        );
        assert!(sample.slot(0).iter().all(|&v| v == 0.0));
        let red = (200.0 / 255.0 - MEAN[0]) / STD[0];
        assert!((sample.slot(1)[0] - red).abs() < 1e-6);

        assert_eq!(id_tail("ab"), "ab");
        assert_eq!(id_tail("x中文字"), "中文字");
        let missing = load_frames(dir.path(), "000", 8);
        assert!(
            missing.issues[0].contains("no frames zip"),
            "{:?}",
            missing.issues
        );
    }

    #[test]
    fn first_frames_are_read_in_order_without_the_spread_selection() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut zip = zip::ZipWriter::new(File::create(dir.path().join("42.zip")).unwrap());
        for index in (0..100u8).rev() {
            let mut png = Vec::new();
            image::RgbImage::from_pixel(4, 4, image::Rgb([index * 2, 0, 0]))
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            let name = format!("{index:03}.png");
            zip.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(&png).unwrap();
        }
        zip.finish().unwrap();

        let first = load_first_frames(dir.path(), "42", 32);
        assert!(first.issues.is_empty(), "{:?}", first.issues);
        assert_eq!(first.frame_indices, (0..32).collect::<Vec<_>>());
        assert_eq!(first.frame_mask, vec![1; 32]);
        let red = |slot: usize| first.slot(slot)[0] * STD[0] + MEAN[0];
        assert!((red(31) - 31.0 * 2.0 / 255.0).abs() < 1e-5);
        let spread = load_frames(dir.path(), "42", 32).frame_indices;
        assert_eq!(spread[..3], [0, 3, 6]);
    }

    /// A noisy `width x height` JPEG encoded by the `image` crate.
    fn noisy_jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 37 + y * 11) as u8, (x * y) as u8, (x ^ y) as u8])
        });
        let mut jpeg = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        jpeg
    }

    #[test]
    fn truncated_jpegs_are_refused() {
        let jpeg = noisy_jpeg(64, 48);
        assert!(decode_and_crop(&jpeg).is_ok());
        let error = decode_and_crop(&jpeg[..jpeg.len() / 2]).unwrap_err();
        assert!(error.contains("truncated JPEG"), "{error}");
        let without_end_marker = decode_and_crop(&jpeg[..jpeg.len() - 2]).unwrap_err();
        assert!(
            without_end_marker.contains("truncated JPEG"),
            "{without_end_marker}"
        );
    }

    #[test]
    fn decompression_bombs_are_refused_before_decoding() {
        let mut jpeg = noisy_jpeg(16, 16);
        // The baseline frame header: FF C0, length, precision, height, width.
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 7].copy_from_slice(&20000u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&20000u16.to_be_bytes());
        let error = decode_and_crop(&jpeg).unwrap_err();
        assert!(
            error.contains("20000 x 20000 = 400000000 pixels exceeds"),
            "{error}"
        );
        assert!(check_pixels(13_000, 13_000, MAX_IMAGE_PIXELS).is_ok());
    }

    #[test]
    fn resize_and_crop_geometry() {
        assert_eq!(resized_size(640, 480), (341, 256));
        assert_eq!(resized_size(1080, 1920), (256, 455));
        assert_eq!(resized_size(7, 5), (358, 256));
        assert_eq!(crop_offset(256), 16);
        assert_eq!(crop_offset(341), 58); // 58.5 rounds to even
        assert_eq!(crop_offset(343), 60); // 59.5 rounds to even
    }
}
