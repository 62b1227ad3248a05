//! JPEG decoding with libjpeg-turbo's decoder (through mozjpeg, built from source), so that
//! frames decode to the same pixels as Pillow's, which uses libjpeg-turbo: integer IDCT and
//! "fancy" chroma upsampling, both libjpeg's defaults.

use std::os::raw::c_int;

use mozjpeg::{ColorSpace, Decompress, Marker};
use mozjpeg_sys::{JWRN_JPEG_EOF, jpeg_common_struct, jpeg_error_mgr, jpeg_std_error};

/// A decoded image: RGB bytes, row-major.
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes.
    pub pixels: Vec<u8>,
}

/// Whether `bytes` start like a JPEG file.
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Decodes a JPEG to RGB as Pillow's `Image.open(...).convert("RGB")` does: grayscale is
/// replicated, CMYK (inverted when an Adobe marker is present, as Pillow's "CMYK;I") is
/// converted with Pillow's `cmyk2rgb`.
///
/// Like Pillow, it refuses truncated files (libjpeg would pad them with grey) and, before
/// decoding, images of more than `max_pixels` pixels.
pub fn decode_jpeg(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    // libjpeg reports errors by unwinding through our error manager with the message.
    std::panic::catch_unwind(|| decode_unchecked(bytes, max_pixels)).unwrap_or_else(|payload| {
        Err(payload
            .downcast::<String>()
            .map_or_else(|_| "corrupt JPEG data".to_string(), |message| *message))
    })
}

/// libjpeg's standard error manager, with errors unwinding instead of exiting and the
/// end-of-data warning (libjpeg then pads the image with grey) turned into an error; other
/// warnings stay silent, as in Pillow.
fn error_manager() -> jpeg_error_mgr {
    // SAFETY: jpeg_std_error fills every field of the zeroed struct (pointers to static
    // message tables and default handlers), which we then override.
    let mut manager: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { jpeg_std_error(&mut manager) };
    manager.error_exit = Some(unwind_error);
    manager.emit_message = Some(unwind_on_truncation);
    manager
}

extern "C-unwind" fn unwind_error(cinfo: &mut jpeg_common_struct) {
    // SAFETY: libjpeg calls this with its error manager installed.
    let code = unsafe { (*cinfo.err).msg_code };
    std::panic::resume_unwind(Box::new(format!(
        "corrupt JPEG data (libjpeg error {code})"
    )));
}

extern "C-unwind" fn unwind_on_truncation(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: libjpeg calls this with its error manager installed.
    let code = unsafe { (*cinfo.err).msg_code };
    if level < 0 && code == JWRN_JPEG_EOF as c_int {
        std::panic::resume_unwind(Box::new(
            "truncated JPEG: the data ends before the image does".to_string(),
        ));
    }
}

fn decode_unchecked(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    let decompress = Decompress::with_err(error_manager())
        .with_markers(&[Marker::APP(14)])
        .from_mem(bytes)
        .map_err(|e| e.to_string())?;
    let adobe = decompress
        .markers()
        .any(|marker| marker.data.starts_with(b"Adobe"));
    let (width, height) = decompress.size();
    check_pixels(width as u64, height as u64, max_pixels)?;
    let cmyk = matches!(
        decompress.color_space(),
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK
    );
    let pixels = if cmyk {
        let mut started = decompress
            .to_colorspace(ColorSpace::JCS_CMYK)
            .map_err(|e| e.to_string())?;
        let raw: Vec<u8> = started.read_scanlines::<u8>().map_err(|e| e.to_string())?;
        started.finish().map_err(|e| e.to_string())?;
        cmyk_to_rgb(&raw, adobe)
    } else {
        let mut started = decompress.rgb().map_err(|e| e.to_string())?;
        let rgb: Vec<u8> = started.read_scanlines::<u8>().map_err(|e| e.to_string())?;
        started.finish().map_err(|e| e.to_string())?;
        rgb
    };
    if pixels.len() != width * height * 3 {
        return Err(format!(
            "truncated JPEG: {} of {} bytes",
            pixels.len(),
            width * height * 3
        ));
    }
    Ok(RgbImage {
        width,
        height,
        pixels,
    })
}

/// Refuses an image of more than `max_pixels` pixels before it is decoded (Pillow's
/// decompression-bomb check).
pub fn check_pixels(width: u64, height: u64, max_pixels: u64) -> Result<(), String> {
    if width * height > max_pixels {
        return Err(format!(
            "image of {width} x {height} = {} pixels exceeds the limit of {max_pixels} pixels \
             (a decompression bomb?)",
            width * height
        ));
    }
    Ok(())
}

/// Pillow's `cmyk2rgb`, after its "CMYK;I" unpacking when the file is Adobe-inverted.
fn cmyk_to_rgb(cmyk: &[u8], inverted: bool) -> Vec<u8> {
    let muldiv255 = |a: u32, b: u32| {
        let tmp = a * b + 128;
        ((tmp >> 8) + tmp) >> 8
    };
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for pixel in cmyk.chunks_exact(4) {
        let value = |i: usize| if inverted { 255 - pixel[i] } else { pixel[i] } as u32;
        let nk = 255 - value(3);
        for channel in 0..3 {
            rgb.push(nk.saturating_sub(muldiv255(value(channel), nk)) as u8);
        }
    }
    rgb
}
