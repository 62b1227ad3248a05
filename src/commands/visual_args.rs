//! The `--frames DIR | --features ZIP` choice shared by the commands that read videos.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use vidcls_datasets::dataset::VisualSource;
use vidcls_datasets::features::{FEATURE_DIM, FeatureReader};

/// Where the videos' visual input comes from.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct VisualArgs {
    /// Directory of raw frame zips: `<DIR>/<last 3 chars of id>/<id>.zip` (or `<DIR>/<id>.zip`).
    #[arg(long, value_name = "DIR")]
    pub frames: Option<PathBuf>,
    /// Zip of pre-extracted features, one `<id>.npy` float16/float32 `[n, 768]` per video.
    #[arg(long, value_name = "ZIP")]
    pub features: Option<PathBuf>,
}

impl VisualArgs {
    /// Opens the chosen source (features of the reference's 768 dimensions).
    pub fn source(&self) -> Result<VisualSource> {
        self.source_with_feature_dim(FEATURE_DIM)
    }

    /// Opens the chosen source, features having `dim` dimensions.
    pub fn source_with_feature_dim(&self, dim: usize) -> Result<VisualSource> {
        Ok(match (&self.frames, &self.features) {
            (Some(dir), _) => VisualSource::frames(dir)?,
            (None, Some(zip)) => VisualSource::Features(Arc::new(FeatureReader::open(zip, dim)?)),
            (None, None) => anyhow::bail!("give --frames DIR or --features ZIP"),
        })
    }
}
