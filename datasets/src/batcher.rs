//! Batching preprocessed videos into the tensors the model takes.

use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;

use crate::dataset::VideoItem;

/// The visual part of a batch.
#[derive(Debug, Clone)]
pub enum VisualBatch<B: Backend> {
    /// Raw frames `[B, F, 3, side, side]` (224 px as the reference crops them, or smaller).
    Frames(Tensor<B, 5>),
    /// Pre-extracted features `[B, F, D]`.
    Features(Tensor<B, 3>),
}

/// A batch of videos.
#[derive(Debug, Clone)]
pub struct VideoBatch<B: Backend> {
    /// Frames or features.
    pub visual: VisualBatch<B>,
    /// `[B, F]`, 1 for real frames.
    pub frame_mask: Tensor<B, 2, Int>,
    /// `[B, L]` token ids.
    pub input_ids: Tensor<B, 2, Int>,
    /// `[B, L]`, 1 for real tokens.
    pub attention_mask: Tensor<B, 2, Int>,
    /// `[B]` level-2 class ids, when the split is labeled.
    pub labels: Option<Tensor<B, 1, Int>>,
    /// The video ids, in batch order.
    pub ids: Vec<String>,
    /// Problems met while preprocessing these videos.
    pub issues: Vec<String>,
}

impl<B: Backend> VisualBatch<B> {
    /// Videos `range` of the batch, on `device`.
    fn videos(&self, range: std::ops::Range<usize>, device: &B::Device) -> Self {
        match self {
            VisualBatch::Frames(frames) => {
                VisualBatch::Frames(frames.clone().slice(range).to_device(device))
            }
            VisualBatch::Features(features) => {
                VisualBatch::Features(features.clone().slice(range).to_device(device))
            }
        }
    }
}

impl<B: Backend> VideoBatch<B> {
    /// Videos in the batch.
    pub fn len(&self) -> usize {
        self.input_ids.dims()[0]
    }

    /// Whether the batch holds no video.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch cut into consecutive shards, one per device and each moved there: the first
    /// `len % devices` shards hold one video more than the others; devices beyond the batch's
    /// videos get none (fewer shards). The problems met while preprocessing stay with the
    /// first shard.
    pub fn shard(mut self, devices: &[B::Device]) -> Vec<VideoBatch<B>> {
        let videos = self.len();
        let parts = devices.len().min(videos).max(1);
        let mut start = 0;
        let mut issues = Some(std::mem::take(&mut self.issues));
        (0..parts)
            .map(|part| {
                let end = start + videos / parts + usize::from(part < videos % parts);
                let range = start..end;
                start = end;
                let device = &devices[part];
                let int_rows = |tensor: &Tensor<B, 2, Int>| {
                    tensor.clone().slice(range.clone()).to_device(device)
                };
                VideoBatch {
                    visual: self.visual.videos(range.clone(), device),
                    frame_mask: int_rows(&self.frame_mask),
                    input_ids: int_rows(&self.input_ids),
                    attention_mask: int_rows(&self.attention_mask),
                    labels: self
                        .labels
                        .as_ref()
                        .map(|labels| labels.clone().slice(range.clone()).to_device(device)),
                    ids: self.ids.get(range.clone()).unwrap_or_default().to_vec(),
                    issues: issues.take().unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// Builds [`VideoBatch`]es; texts of unequal length (the `compact` layout) are padded with
/// `pad_id` to the longest in the batch.
#[derive(Debug, Clone, Copy)]
pub struct VideoBatcher {
    pad_id: u32,
}

impl VideoBatcher {
    /// A batcher padding texts with the given `[PAD]` id.
    pub fn new(pad_id: u32) -> Self {
        VideoBatcher { pad_id }
    }
}

impl VideoBatcher {
    /// Batches `items` whose visual values are already laid out, video after video, in
    /// `visual` (each item's own `visual.values` is not read): the training loader writes
    /// them there as it preprocesses, so that a batch is never copied again.
    ///
    /// # Panics
    /// If `visual` does not hold `max_frames * values_per_frame` values per item.
    pub fn batch_with_visual<B: Backend>(
        &self,
        items: Vec<VideoItem>,
        visual: Vec<f32>,
        device: &B::Device,
    ) -> VideoBatch<B> {
        let batch_size = items.len();
        let frames = items.first().map_or(0, |item| item.visual.frame_mask.len());
        let per_frame = items.first().map_or(0, |item| item.visual.values_per_frame);
        let frame_side = items.first().and_then(|item| item.visual.frame_side);
        assert_eq!(
            visual.len(),
            batch_size * frames * per_frame,
            "a batch's visual values do not match its videos"
        );
        let text_len = items
            .iter()
            .map(|item| item.input_ids.len())
            .max()
            .unwrap_or(0);

        let mut frame_mask = Vec::with_capacity(batch_size * frames);
        let mut input_ids = Vec::with_capacity(batch_size * text_len);
        let mut attention_mask = Vec::with_capacity(batch_size * text_len);
        let mut labels = Vec::with_capacity(batch_size);
        let mut ids = Vec::with_capacity(batch_size);
        let mut issues = Vec::new();
        for item in items {
            frame_mask.extend(item.visual.frame_mask.iter().map(|&m| m as i64));
            let padding = text_len - item.input_ids.len();
            input_ids.extend(item.input_ids.iter().map(|&id| id as i64));
            input_ids.extend(std::iter::repeat_n(self.pad_id as i64, padding));
            attention_mask.extend(item.attention_mask.iter().map(|&m| m as i64));
            attention_mask.extend(std::iter::repeat_n(0, padding));
            labels.extend(item.label.map(|label| label as i64));
            ids.push(item.id);
            issues.extend(item.issues);
        }

        let visual_data = |shape: Vec<usize>| TensorData::new(visual, shape);
        let visual = if let Some(side) = frame_side {
            VisualBatch::Frames(Tensor::from_data(
                visual_data(vec![batch_size, frames, 3, side, side]),
                device,
            ))
        } else {
            VisualBatch::Features(Tensor::from_data(
                visual_data(vec![batch_size, frames, per_frame]),
                device,
            ))
        };
        let int_2d = |data: Vec<i64>, width: usize| {
            Tensor::from_data(TensorData::new(data, [batch_size, width]), device)
        };
        VideoBatch {
            visual,
            frame_mask: int_2d(frame_mask, frames),
            input_ids: int_2d(input_ids, text_len),
            attention_mask: int_2d(attention_mask, text_len),
            labels: (labels.len() == batch_size && batch_size > 0)
                .then(|| Tensor::from_data(TensorData::new(labels, [batch_size]), device)),
            ids,
            issues,
        }
    }
}

impl<B: Backend> Batcher<B, VideoItem, VideoBatch<B>> for VideoBatcher {
    fn batch(&self, items: Vec<VideoItem>, device: &B::Device) -> VideoBatch<B> {
        let mut visual =
            Vec::with_capacity(items.iter().map(|item| item.visual.values.len()).sum());
        for item in &items {
            visual.extend_from_slice(&item.visual.values);
        }
        self.batch_with_visual(items, visual, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::visual::VisualSample;
    use burn::backend::Flex;

    fn item(id: &str, ids: Vec<u32>, visual: VisualSample, label: Option<usize>) -> VideoItem {
        let mut visual = visual;
        visual.frame_mask[0] = 1;
        visual.slot_mut(0).fill(1.5);
        VideoItem {
            id: id.into(),
            attention_mask: vec![1; ids.len()],
            input_ids: ids,
            visual,
            label,
            issues: vec![format!("issue of {id}")],
        }
    }

    #[test]
    fn batches_features_with_padding_and_labels() {
        let device = Default::default();
        let items = vec![
            item(
                "a",
                vec![2, 7, 3],
                VisualSample::empty_features(2, 4),
                Some(5),
            ),
            item("b", vec![2, 3], VisualSample::empty_features(2, 4), Some(9)),
        ];
        let batch: VideoBatch<Flex> = VideoBatcher::new(0).batch(items, &device);
        let VisualBatch::Features(features) = &batch.visual else {
            panic!("expected features");
        };
        assert_eq!(features.dims(), [2, 2, 4]);
        assert_eq!(
            batch
                .input_ids
                .to_data()
                .convert::<i64>()
                .to_vec::<i64>()
                .unwrap(),
            vec![2, 7, 3, 2, 3, 0]
        );
        assert_eq!(
            batch
                .attention_mask
                .to_data()
                .convert::<i64>()
                .to_vec::<i64>()
                .unwrap(),
            vec![1, 1, 1, 1, 1, 0]
        );
        assert_eq!(
            batch
                .frame_mask
                .to_data()
                .convert::<i64>()
                .to_vec::<i64>()
                .unwrap(),
            vec![1, 0, 1, 0]
        );
        assert_eq!(
            batch
                .labels
                .unwrap()
                .to_data()
                .convert::<i64>()
                .to_vec::<i64>()
                .unwrap(),
            vec![5, 9]
        );
        assert_eq!(batch.ids, vec!["a", "b"]);
        assert_eq!(batch.issues.len(), 2);
    }

    #[test]
    fn batches_frames_without_labels() {
        let device = Default::default();
        let items = vec![item(
            "a",
            vec![2, 3],
            VisualSample::empty_frames(2, 224),
            None,
        )];
        let batch: VideoBatch<Flex> = VideoBatcher::new(0).batch(items, &device);
        let VisualBatch::Frames(frames) = &batch.visual else {
            panic!("expected frames");
        };
        assert_eq!(frames.dims(), [1, 2, 3, 224, 224]);
        // A 12-value slot is a 2 px frame here, not a feature vector.
        let items = vec![item(
            "a",
            vec![2, 3],
            VisualSample::empty_frames(2, 2),
            None,
        )];
        let batch: VideoBatch<Flex> = VideoBatcher::new(0).batch(items, &device);
        let VisualBatch::Frames(frames) = &batch.visual else {
            panic!("expected frames");
        };
        assert_eq!(frames.dims(), [1, 2, 3, 2, 2]);
        assert!(batch.labels.is_none());
    }

    #[test]
    fn shards_cover_the_batch_in_order() {
        let device = Default::default();
        let items: Vec<VideoItem> = (0..5)
            .map(|video| {
                item(
                    &format!("v{video}"),
                    vec![2, 10 + video as u32, 3],
                    VisualSample::empty_features(2, 4),
                    Some(video),
                )
            })
            .collect();
        let batch: VideoBatch<Flex> = VideoBatcher::new(0).batch(items, &device);
        let shards = batch.shard(&[device; 3]);
        let ids: Vec<Vec<String>> = shards.iter().map(|shard| shard.ids.clone()).collect();
        assert_eq!(ids, [vec!["v0", "v1"], vec!["v2", "v3"], vec!["v4"]]);
        let labels: Vec<Vec<i64>> = shards
            .iter()
            .map(|shard| {
                let labels = shard.labels.clone().expect("labels");
                labels.into_data().convert::<i64>().to_vec().unwrap()
            })
            .collect();
        assert_eq!(labels, [vec![0, 1], vec![2, 3], vec![4]]);
        let tokens: Vec<i64> = shards[1]
            .input_ids
            .to_data()
            .convert::<i64>()
            .to_vec()
            .unwrap();
        assert_eq!(tokens, [2, 12, 3, 2, 13, 3]);
        let VisualBatch::Features(features) = &shards[2].visual else {
            panic!("expected features");
        };
        assert_eq!(features.dims(), [1, 2, 4]);
        assert_eq!(
            shards
                .iter()
                .map(|shard| shard.issues.len())
                .collect::<Vec<_>>(),
            [5, 0, 0]
        );
        // More devices than videos: one shard per video.
        let single: VideoBatch<Flex> = VideoBatcher::new(0).batch(
            vec![item(
                "a",
                vec![2, 3],
                VisualSample::empty_features(2, 4),
                Some(1),
            )],
            &device,
        );
        assert_eq!(single.shard(&[device; 4]).len(), 1);
    }
}
