//! burn-dataset [`Dataset`]s over the competition's splits: each item is preprocessed on demand
//! (text pipeline + tokenization, frame decoding or feature reading), so nothing beyond the
//! items in flight is held in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use burn::data::dataset::Dataset;

use crate::annotations::{VideoAnnotation, read_annotations, read_labels};
use crate::error::DataError;
use crate::features::{FEATURE_DIM, FeatureReader};
use crate::frames::{CROP_SIZE, check_frames_dir, load_frames};
use crate::text::text_segments;
use crate::tokenizer::TextEncoder;
use crate::visual::VisualSample;

/// Where the visual input of the videos comes from.
#[derive(Clone)]
pub enum VisualSource {
    /// Raw frames: `<dir>/<id[-3:]>/<id>.zip` (or `<dir>/<id>.zip`).
    Frames(PathBuf),
    /// Pre-extracted features: a zip of `<id>.npy`.
    Features(Arc<FeatureReader>),
}

impl VisualSource {
    /// Raw frames under `dir`, which must be a directory.
    pub fn frames(dir: &Path) -> Result<Self, DataError> {
        check_frames_dir(dir)?;
        Ok(VisualSource::Frames(dir.to_path_buf()))
    }

    /// Pre-extracted 768-dimensional features in the zip at `path`.
    pub fn features(path: &Path) -> Result<Self, DataError> {
        Ok(VisualSource::Features(Arc::new(FeatureReader::open(
            path,
            FEATURE_DIM,
        )?)))
    }

    /// Loads the visual input of one video.
    pub fn load(&self, video_id: &str, max_frames: usize) -> VisualSample {
        match self {
            VisualSource::Frames(dir) => load_frames(dir, video_id, max_frames),
            VisualSource::Features(reader) => reader.load(video_id, max_frames),
        }
    }
}

/// One preprocessed video.
#[derive(Debug, Clone)]
pub struct VideoItem {
    /// The video id.
    pub id: String,
    /// Token ids of the text.
    pub input_ids: Vec<u32>,
    /// Attention mask of the text.
    pub attention_mask: Vec<u32>,
    /// Frames or features, with the frame mask.
    pub visual: VisualSample,
    /// Level-2 class id (labeled split only).
    pub label: Option<usize>,
    /// Problems met while preprocessing, each naming the file and the video.
    pub issues: Vec<String>,
}

/// The videos of one annotation file (or of several, see [`VideoDataset::concat`]) with their
/// visual source.
#[derive(Clone)]
pub struct VideoDataset {
    videos: Arc<Vec<VideoAnnotation>>,
    labels: Option<Arc<Vec<usize>>>,
    view: Option<Arc<Vec<usize>>>,
    text: Arc<TextEncoder>,
    /// The visual source of each part, with the index of the part's first video.
    visual: Arc<Vec<(usize, VisualSource)>>,
    max_frames: usize,
    frame_side: usize,
    visual_cache: Option<Arc<RwLock<HashMap<usize, VisualSample>>>>,
}

impl VideoDataset {
    /// An unlabeled or test split (labels, if any, are ignored).
    pub fn unlabeled(
        annotations: &Path,
        visual: VisualSource,
        text: Arc<TextEncoder>,
        max_frames: usize,
    ) -> Result<Self, DataError> {
        Ok(VideoDataset {
            videos: Arc::new(read_annotations(annotations)?),
            labels: None,
            view: None,
            text,
            visual: Arc::new(vec![(0, visual)]),
            max_frames,
            frame_side: CROP_SIZE,
            visual_cache: None,
        })
    }

    /// A labeled split: every video must have a known `category_id`.
    pub fn labeled(
        annotations: &Path,
        visual: VisualSource,
        text: Arc<TextEncoder>,
        max_frames: usize,
    ) -> Result<Self, DataError> {
        let mut dataset = Self::unlabeled(annotations, visual, text, max_frames)?;
        dataset.labels = Some(Arc::new(read_labels(annotations, &dataset.videos)?));
        Ok(dataset)
    }

    /// The videos of several datasets as one unlabeled dataset (e.g. the unlabeled, labeled
    /// and test splits for pre-training), each with its own visual source. The parts must be
    /// whole files (no views) prepared alike (text, frame slots, frame size); their labels are
    /// dropped.
    ///
    /// # Errors
    /// If there are no parts, a part is a view, or the parts are prepared differently.
    pub fn concat(parts: Vec<VideoDataset>) -> Result<Self, DataError> {
        let first = parts
            .first()
            .cloned()
            .ok_or_else(|| DataError::Invalid("no datasets to concatenate".into()))?;
        let mut videos = Vec::new();
        let mut visual = Vec::new();
        for part in &parts {
            if part.view.is_some()
                || part.max_frames != first.max_frames
                || part.frame_side != first.frame_side
                || !Arc::ptr_eq(&part.text, &first.text)
            {
                return Err(DataError::Invalid(
                    "datasets to concatenate must be whole files prepared alike".into(),
                ));
            }
            for (start, source) in part.visual.iter() {
                visual.push((videos.len() + start, source.clone()));
            }
            videos.extend(part.videos.iter().cloned());
        }
        Ok(VideoDataset {
            videos: Arc::new(videos),
            labels: None,
            visual: Arc::new(visual),
            visual_cache: None,
            ..first
        })
    }

    /// The visual source of a video of the underlying files.
    fn source(&self, video_index: usize) -> &VisualSource {
        let part = self
            .visual
            .partition_point(|(start, _)| *start <= video_index)
            .saturating_sub(1);
        &self.visual[part].1
    }

    /// A view of the given video indices (a split part, or a resampled list with repeats).
    pub fn select(&self, indices: Vec<usize>) -> Self {
        VideoDataset {
            view: Some(Arc::new(indices)),
            ..self.clone()
        }
    }

    /// The same videos with their frames shrunk from the reference's 224 px crops to
    /// `side x side` pixels by block averaging (see [`VisualSample::downscaled`]); features are
    /// not affected. For small models trained on small frames.
    ///
    /// # Errors
    /// If `side` does not divide 224.
    pub fn with_frame_side(self, side: usize) -> Result<Self, DataError> {
        if side == 0 || !CROP_SIZE.is_multiple_of(side) {
            return Err(DataError::Invalid(format!(
                "frame size {side} does not divide the {CROP_SIZE} px crops \
                 (use 224, 112, 56, 32, 28, 16, ...)"
            )));
        }
        Ok(VideoDataset {
            frame_side: side,
            ..self
        })
    }

    /// The same videos, each one's visual input kept in memory once loaded, so that later
    /// epochs skip decoding (views made from this dataset share the memory). Meant for small
    /// inputs: see [`visual_values_per_video`](Self::visual_values_per_video).
    pub fn with_visual_cache(self) -> Self {
        VideoDataset {
            visual_cache: Some(Arc::default()),
            ..self
        }
    }

    /// Values (f32) of one video's visual input as the model takes it: `max_frames` slots of
    /// frames at the configured size, or of feature rows.
    pub fn visual_values_per_video(&self) -> usize {
        let per_frame = self
            .visual
            .iter()
            .map(|(_, source)| match source {
                VisualSource::Frames(_) => 3 * self.frame_side * self.frame_side,
                VisualSource::Features(reader) => reader.dim(),
            })
            .max()
            .unwrap_or(0);
        self.max_frames * per_frame
    }

    /// The items `start..end` of this dataset (of its view, if it is one), as a view.
    pub fn slice(&self, start: usize, end: usize) -> Self {
        let end = end.min(self.len());
        let start = start.min(end);
        self.select(
            (start..end)
                .filter_map(|index| self.video_index(index))
                .collect(),
        )
    }

    /// All annotations of the underlying file.
    pub fn annotations(&self) -> &[VideoAnnotation] {
        &self.videos
    }

    /// Level-2 labels of all videos of the underlying file, if labeled.
    pub fn labels(&self) -> Option<&[usize]> {
        self.labels.as_deref().map(Vec::as_slice)
    }

    /// Frame slots per video.
    pub fn max_frames(&self) -> usize {
        self.max_frames
    }

    fn video_index(&self, index: usize) -> Option<usize> {
        match &self.view {
            Some(view) => view.get(index).copied(),
            None => (index < self.videos.len()).then_some(index),
        }
    }

    /// Preprocesses one video of the underlying file.
    pub fn item(&self, video_index: usize) -> VideoItem {
        let video = &self.videos[video_index];
        let visual = self.visual_sample(video_index);
        let mut issues = visual.issues.clone();
        let (input_ids, attention_mask) = match self.text.encode(&text_segments(video)) {
            Ok(encoded) => (encoded.input_ids, encoded.attention_mask),
            Err(e) => {
                issues.push(format!("video {}: {e}", video.id));
                (Vec::new(), Vec::new())
            }
        };
        VideoItem {
            id: video.id.clone(),
            input_ids,
            attention_mask,
            visual,
            label: self.labels.as_ref().map(|labels| labels[video_index]),
            issues,
        }
    }
}

impl VideoDataset {
    /// The visual input of one video of the underlying file (from the cache when kept).
    fn visual_sample(&self, video_index: usize) -> VisualSample {
        let cached = self.visual_cache.as_ref().and_then(|cache| {
            let cache = cache
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            cache.get(&video_index).cloned()
        });
        if let Some(sample) = cached {
            return sample;
        }
        let sample = self
            .source(video_index)
            .load(&self.videos[video_index].id, self.max_frames)
            .downscaled(self.frame_side);
        if let Some(cache) = &self.visual_cache {
            cache
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(video_index, sample.clone());
        }
        sample
    }
}

impl Dataset<VideoItem> for VideoDataset {
    fn get(&self, index: usize) -> Option<VideoItem> {
        self.video_index(index)
            .map(|video_index| self.item(video_index))
    }

    fn len(&self) -> usize {
        self.view
            .as_ref()
            .map_or(self.videos.len(), |view| view.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/pipeline")
            .join(name)
    }

    fn open(frames: &Path, text: &Arc<TextEncoder>, max_frames: usize) -> VideoDataset {
        VideoDataset::unlabeled(
            &fixture("annotations.json"),
            VisualSource::Frames(frames.to_path_buf()),
            text.clone(),
            max_frames,
        )
        .unwrap()
    }

    #[test]
    fn concatenated_datasets_read_each_part_from_its_own_source() {
        let text = Arc::new(TextEncoder::from_dir(&fixture("bert")).unwrap());
        let with_frames = open(&fixture("frames"), &text, 8);
        // An empty directory: every video lacks its zip.
        let empty = tempfile::tempdir().unwrap();
        let without = open(empty.path(), &text, 8);
        let both = VideoDataset::concat(vec![with_frames.clone(), without.clone()]).unwrap();
        let videos = with_frames.len();
        assert_eq!(both.len(), 2 * videos);
        assert!(both.labels().is_none());
        let masks = |dataset: &VideoDataset, range: std::ops::Range<usize>| -> Vec<Vec<u32>> {
            range
                .map(|i| dataset.get(i).unwrap().visual.frame_mask)
                .collect()
        };
        assert_eq!(masks(&both, 0..videos), masks(&with_frames, 0..videos));
        assert_eq!(masks(&both, videos..2 * videos), masks(&without, 0..videos));
        assert_ne!(masks(&with_frames, 0..videos), masks(&without, 0..videos));
        for i in 0..videos {
            assert_eq!(
                both.get(videos + i).unwrap().id,
                with_frames.get(i).unwrap().id
            );
        }

        let other_slots = open(&fixture("frames"), &text, 4);
        assert!(VideoDataset::concat(vec![with_frames.clone(), other_slots]).is_err());
        assert!(VideoDataset::concat(vec![with_frames.select(vec![0])]).is_err());
        assert!(VideoDataset::concat(Vec::new()).is_err());
    }
}
