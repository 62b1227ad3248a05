//! JPEG decoding with libjpeg-turbo's decoder (through mozjpeg, built from source), so that
//! frames decode to the same pixels as Pillow's, which uses libjpeg-turbo: integer IDCT and
//! "fancy" chroma upsampling, both libjpeg's defaults.

use mozjpeg::{ColorSpace, Decompress, Marker};

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
pub fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage, String> {
    // libjpeg reports corrupt data by unwinding through mozjpeg's error manager.
    std::panic::catch_unwind(|| decode_unchecked(bytes))
        .unwrap_or_else(|_| Err("corrupt JPEG data".to_string()))
}

fn decode_unchecked(bytes: &[u8]) -> Result<RgbImage, String> {
    let decompress = Decompress::with_markers(&[Marker::APP(14)])
        .from_mem(bytes)
        .map_err(|e| e.to_string())?;
    let adobe = decompress
        .markers()
        .any(|marker| marker.data.starts_with(b"Adobe"));
    let (width, height) = decompress.size();
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
