//! vidcls datasets: reading the WeChat Big Data Challenge 2022 data and preprocessing it exactly
//! as the reference does (see the book's "Data format" and "Preprocessing" chapters).
//!
//! - [`annotations`]: the JSON annotation files; [`taxonomy`]: the 200 categories.
//! - [`text`], [`keywords`], [`tokenizer`]: the text pipeline and the 388-id layout.
//! - [`frames`], [`features`]: raw frames (decode, resize, crop, normalize) and pre-extracted
//!   features, with the reference's frame selection.
//! - [`dataset`], [`batcher`]: burn-dataset datasets and the batcher producing model tensors.
//! - [`split`]: stratified train/validation split and resampling; [`synth`]: synthetic data.

pub mod annotations;
pub mod batcher;
pub mod dataset;
pub mod error;
pub mod features;
pub mod frames;
pub mod jpeg;
pub mod keywords;
pub mod loader;
pub mod output;
pub mod prefetch;
pub mod python_text;
pub mod resize;
pub mod split;
pub mod submission;
pub mod synth;
pub mod taxonomy;
pub mod text;
pub mod tokenizer;
pub mod video_id;
pub mod visual;

pub use error::DataError;
