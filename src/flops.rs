//! Analytic count of the floating-point operations of one forward pass of the classifier.
//!
//! Only matrix products are counted, at 2 FLOPs per multiply-add (normalizations, softmax,
//! GELU, masks and additions are left out: they are a fraction of a percent). For one video
//! with `F` frame slots and `L` text ids:
//!
//! - Swin, per frame slot: patch embedding `N0 * C0 * 3 * p^2` multiply-adds (`N0` patches of
//!   `C0` features, patch side `p`); per block of a stage with `N` tokens of `C` features,
//!   window `w` (clamped to the map) and MLP ratio `r`: `3 N C^2` (qkv) + `2 N w^2 C`
//!   (scores and weighted sum) + `N C^2` (projection) + `2 r N C^2` (MLP); per patch merging
//!   `(N / 4) * 4C * 2C`. Swin-T at 224 px: 4.49 G multiply-adds.
//! - `video_dense`: `F * D * H` (`D` backbone features, `H` hidden size).
//! - A BERT layer on `T` tokens (text layers with `T = L`, visual layers with `T = F`), FFN size
//!   `I`: `4 T H^2` (query, key, value, output) + `2 T^2 H` (scores and weighted sum) +
//!   `2 T H I` (FFN).
//! - A cross-modality layer: the shared cross-attention in both directions
//!   `4 (L + F) H^2 + 4 L F H`, self-attention on both streams `4 (L + F) H^2 + 2 (L^2 + F^2) H`,
//!   FFN on both streams `2 (L + F) H I`.
//! - Pooler `H^2`, classifier `H * classes`.
//!
//! The seed model (8 frames, 388 ids) comes to about 183 GFLOP per video: 72 for Swin, 72 for
//! the 12 text layers, 40 for the 5 cross-modality layers.

use vidcls_model::{SwinConfig, VideoModelConfig};

/// FLOPs of one video through [`VideoClassifier::forward`](vidcls_model::VideoClassifier)
/// with `frames` frame slots (raw frames through the backbone, or pre-extracted features when
/// `with_backbone` is false) and `text_len` ids.
pub fn classifier_flops(
    config: &VideoModelConfig,
    frames: usize,
    text_len: usize,
    with_backbone: bool,
) -> f64 {
    let swin = &config.encoder.swin;
    let two_stream = &config.encoder.two_stream;
    let hidden = two_stream.bert.hidden_size as f64;
    let ffn = two_stream.bert.intermediate_size as f64;
    let (f, l) = (frames as f64, text_len as f64);

    let bert_layer =
        |t: f64| 4.0 * t * hidden * hidden + 2.0 * t * t * hidden + 2.0 * t * hidden * ffn;
    let cross_layer = 4.0 * (l + f) * hidden * hidden
        + 4.0 * l * f * hidden
        + 4.0 * (l + f) * hidden * hidden
        + 2.0 * (l * l + f * f) * hidden
        + 2.0 * (l + f) * hidden * ffn;

    let mut multiply_adds = f * swin.num_features() as f64 * hidden
        + two_stream.text_layers as f64 * bert_layer(l)
        + two_stream.visual_layers as f64 * bert_layer(f)
        + two_stream.cross_layers as f64 * cross_layer
        + hidden * hidden
        + hidden * config.num_classes as f64;
    if with_backbone {
        multiply_adds += f * swin_multiply_adds(swin);
    }
    2.0 * multiply_adds
}

/// Multiply-adds of the Swin backbone on one image.
fn swin_multiply_adds(swin: &SwinConfig) -> f64 {
    let side = swin.img_size / swin.patch_size;
    let mut total =
        (side * side * swin.embed_dim * swin.in_channels * swin.patch_size * swin.patch_size)
            as f64;
    let stages = swin.depths.len();
    for (stage, &depth) in swin.depths.iter().enumerate() {
        let side = side >> stage;
        let tokens = (side * side) as f64;
        let channels = (swin.embed_dim << stage) as f64;
        let window = swin.window_size.min(side) as f64;
        let block = 3.0 * tokens * channels * channels
            + 2.0 * tokens * window * window * channels
            + tokens * channels * channels
            + 2.0 * swin.mlp_ratio * tokens * channels * channels;
        total += depth as f64 * block;
        if stage + 1 < stages {
            total += tokens / 4.0 * 4.0 * channels * 2.0 * channels;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swin_tiny_matches_its_published_cost() {
        let giga = swin_multiply_adds(&SwinConfig::tiny()) / 1e9;
        assert!((giga - 4.49).abs() < 0.02, "{giga}");
    }

    #[test]
    fn seed_model_is_about_180_gflop_per_video() {
        let giga = classifier_flops(&VideoModelConfig::seed(), 8, 388, true) / 1e9;
        assert!((175.0..190.0).contains(&giga), "{giga}");
        let features_only = classifier_flops(&VideoModelConfig::seed(), 8, 388, false) / 1e9;
        assert!((giga - features_only - 72.0).abs() < 1.0, "{features_only}");
    }
}
