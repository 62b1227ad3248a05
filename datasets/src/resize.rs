//! Pillow's antialiased bilinear resampling (`Image.resize(size, Image.BILINEAR)`), exact to the
//! bit for 8-bit RGB: the same coefficients (support scaled by the downscale factor, normalised,
//! 22-bit fixed point), the same two passes (horizontal, then vertical, with 8-bit rounding in
//! between) and the same rounding and clipping.
//!
//! Only the output window that is kept (the centre crop) is computed: every output pixel
//! depends only on its own coefficients, so this gives the same pixels with less work.

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Resampling coefficients of one axis: for each output index, the first input index and the
/// fixed-point weights of the inputs from there on.
struct AxisCoefficients {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for outputs `range` of `out_size`.
fn coefficients(
    in_size: usize,
    out_size: usize,
    range: std::ops::Range<usize>,
) -> AxisCoefficients {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // bilinear support 1.0, scaled
    let inverse = 1.0 / filter_scale;
    let mut first = Vec::with_capacity(range.len());
    let mut weights = Vec::with_capacity(range.len());
    for out in range {
        let center = (out as f64 + 0.5) * scale;
        let min = ((center - support + 0.5) as i64).max(0) as usize;
        let max = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let raw: Vec<f64> = (min..max)
            .map(|x| bilinear((x as f64 - center + 0.5) * inverse))
            .collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if total != 0.0 { w / total } else { w };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                if w < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                }
            })
            .collect();
        first.push(min);
        weights.push(fixed);
    }
    AxisCoefficients { first, weights }
}

fn clip8(value: i32) -> u8 {
    if value >= (1 << PRECISION_BITS << 8) {
        255
    } else if value <= 0 {
        0
    } else {
        (value >> PRECISION_BITS) as u8
    }
}

/// Resizes an RGB image to `out_width x out_height` as Pillow's bilinear filter does and
/// returns only the window `[left, left + crop_width) x [top, top + crop_height)` of the result.
pub fn resize_window(
    pixels: &[u8],
    width: usize,
    height: usize,
    out_width: usize,
    out_height: usize,
    (left, top): (usize, usize),
    (crop_width, crop_height): (usize, usize),
) -> Vec<u8> {
    let need_horizontal = out_width != width;
    let need_vertical = out_height != height;
    let columns = coefficients(width, out_width, left..left + crop_width);
    let rows = coefficients(height, out_height, top..top + crop_height);

    // Horizontal pass over the input rows the kept output rows need (all kept columns).
    let (first_row, last_row) = if need_vertical {
        let last = rows
            .first
            .iter()
            .zip(&rows.weights)
            .map(|(first, w)| first + w.len())
            .max()
            .unwrap_or(0);
        (rows.first.first().copied().unwrap_or(0), last)
    } else {
        (top, top + crop_height)
    };
    let mut horizontal = vec![0u8; (last_row - first_row) * crop_width * 3];
    for (y, out_row) in (first_row..last_row).zip(horizontal.chunks_exact_mut(crop_width * 3)) {
        let in_row = &pixels[y * width * 3..(y + 1) * width * 3];
        if !need_horizontal {
            out_row.copy_from_slice(&in_row[left * 3..(left + crop_width) * 3]);
            continue;
        }
        for (x, out) in out_row.chunks_exact_mut(3).enumerate() {
            let start = columns.first[x];
            let mut sums = [1i32 << (PRECISION_BITS - 1); 3];
            for (k, &w) in columns.weights[x].iter().enumerate() {
                let pixel = &in_row[(start + k) * 3..(start + k) * 3 + 3];
                for c in 0..3 {
                    sums[c] += pixel[c] as i32 * w;
                }
            }
            for c in 0..3 {
                out[c] = clip8(sums[c]);
            }
        }
    }
    if !need_vertical {
        return horizontal;
    }

    // Vertical pass.
    let row_len = crop_width * 3;
    let mut out = vec![0u8; crop_height * row_len];
    for (y, out_row) in out.chunks_exact_mut(row_len).enumerate() {
        let start = rows.first[y] - first_row;
        let mut sums = vec![1i32 << (PRECISION_BITS - 1); row_len];
        for (k, &w) in rows.weights[y].iter().enumerate() {
            let in_row = &horizontal[(start + k) * row_len..(start + k + 1) * row_len];
            for (sum, &value) in sums.iter_mut().zip(in_row) {
                *sum += value as i32 * w;
            }
        }
        for (value, sum) in out_row.iter_mut().zip(sums) {
            *value = clip8(sum);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_when_sizes_match() {
        let pixels: Vec<u8> = (0..4 * 3 * 3).map(|v| v as u8).collect();
        assert_eq!(resize_window(&pixels, 4, 3, 4, 3, (0, 0), (4, 3)), pixels);
        assert_eq!(
            resize_window(&pixels, 4, 3, 4, 3, (1, 1), (2, 1)),
            pixels[15..21].to_vec()
        );
    }

    #[test]
    fn window_equals_crop_of_full_resize() {
        let (w, h) = (37, 23);
        let pixels: Vec<u8> = (0..w * h * 3).map(|v| ((v * 7919) % 251) as u8).collect();
        let full = resize_window(&pixels, w, h, 60, 41, (0, 0), (60, 41));
        let window = resize_window(&pixels, w, h, 60, 41, (5, 9), (30, 20));
        for y in 0..20 {
            assert_eq!(
                &window[y * 90..(y + 1) * 90],
                &full[((y + 9) * 60 + 5) * 3..((y + 9) * 60 + 35) * 3]
            );
        }
        let down = resize_window(&pixels, w, h, 11, 7, (0, 0), (11, 7));
        let flat: Vec<u8> = vec![100; w * h * 3];
        assert!(
            resize_window(&flat, w, h, 11, 7, (0, 0), (11, 7))
                .iter()
                .all(|&v| v == 100)
        );
        assert_eq!(down.len(), 11 * 7 * 3);
    }
}
