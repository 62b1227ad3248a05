//! A deterministic, prefetching burn [`DataLoader`] over a [`VideoDataset`]: batches come in
//! the dataset's order (a training epoch's shuffled order is a view of the dataset, see
//! [`VideoDataset::select`]), the videos of a few batches at a time are preprocessed in
//! parallel on a worker pool, written straight into the batches' buffers, and a background
//! thread keeps a few batches ready while the model works on the current one.
//!
//! Unlike burn's multi-threaded loader, the order never depends on thread timing, so a run is
//! reproducible and can resume in the middle of an epoch ([`DataLoader::slice`]).

use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::Dataset;
use burn::prelude::*;
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::batcher::{VideoBatch, VideoBatcher};
use crate::dataset::{VideoDataset, VideoItem};

/// Batches prepared ahead of the one being consumed (in each stage).
const AHEAD: usize = 2;

/// Batches preprocessed in one parallel pass.
const WINDOW_BATCHES: usize = 4;

/// Batches of a [`VideoDataset`] in its order (see the module documentation).
pub struct VideoLoader<B: Backend> {
    dataset: VideoDataset,
    batcher: VideoBatcher,
    batch_size: usize,
    workers: Arc<ThreadPool>,
    device: B::Device,
}

impl<B: Backend> Clone for VideoLoader<B> {
    fn clone(&self) -> Self {
        VideoLoader {
            dataset: self.dataset.clone(),
            batcher: self.batcher,
            batch_size: self.batch_size,
            workers: self.workers.clone(),
            device: self.device.clone(),
        }
    }
}

impl<B: Backend> VideoLoader<B> {
    /// Batches of `batch_size` videos of `dataset` (the last one may be smaller), their texts
    /// padded with `pad_id`, preprocessed by `workers` threads (0: one per core).
    ///
    /// # Panics
    /// If `batch_size` is 0 or the worker pool cannot be created.
    pub fn new(
        dataset: VideoDataset,
        pad_id: u32,
        batch_size: usize,
        workers: usize,
        device: B::Device,
    ) -> Self {
        assert!(batch_size > 0, "batch size must be positive");
        let workers = ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|index| format!("vidcls-loader-{index}"))
            .build()
            .expect("a thread pool for preprocessing");
        VideoLoader {
            dataset,
            batcher: VideoBatcher::new(pad_id),
            batch_size,
            workers: Arc::new(workers),
            device,
        }
    }

    /// The dataset, in loading order.
    pub fn dataset(&self) -> &VideoDataset {
        &self.dataset
    }

    /// Number of batches.
    pub fn num_batches(&self) -> usize {
        self.dataset.len().div_ceil(self.batch_size)
    }

    /// Videos per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The batches of the videos `range` (whole batches, the last one possibly smaller), with
    /// their video counts, preprocessed in one parallel pass.
    fn preprocess_window(&self, range: Range<usize>) -> Vec<(VideoBatch<B>, usize)> {
        let per_video = self.dataset.visual_values_per_video();
        let sizes: Vec<usize> = range
            .clone()
            .step_by(self.batch_size)
            .map(|start| (range.end - start).min(self.batch_size))
            .collect();
        let mut buffers: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&size| vec![0.0; size * per_video])
            .collect();
        let slots: Vec<&mut [f32]> = buffers
            .iter_mut()
            .zip(&sizes)
            .flat_map(|(buffer, &size)| split_slots(buffer, per_video, size))
            .collect();
        let mut items: Vec<VideoItem> = self.workers.install(|| {
            range
                .clone()
                .into_par_iter()
                .zip(slots)
                .map(|(index, slot)| {
                    let mut item = self.dataset.get(index).expect("an index of the dataset");
                    let values = std::mem::take(&mut item.visual.values);
                    assert_eq!(
                        values.len(),
                        slot.len(),
                        "video {}: its visual input does not have the dataset's size",
                        item.id
                    );
                    slot.copy_from_slice(&values);
                    item
                })
                .collect()
        });
        buffers
            .into_iter()
            .zip(sizes)
            .map(|(visual, size)| {
                let rest = items.split_off(size);
                let batch = std::mem::replace(&mut items, rest);
                (
                    self.batcher.batch_with_visual(batch, visual, &self.device),
                    size,
                )
            })
            .collect()
    }
}

impl<B: Backend> DataLoader<B, VideoBatch<B>> for VideoLoader<B> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<VideoBatch<B>> + 'a> {
        // One thread drives the worker pool: each parallel pass preprocesses `WINDOW_BATCHES`
        // batches (so that rayon balances the videos' uneven costs over more of them than one
        // batch holds), and each worker writes its video's visual values straight into the
        // batch's buffer while they are still in its cache; the batches are then only wrapped
        // into tensors (no copy) and queued while the pool preprocesses the next window.
        let (sender, receiver) = sync_channel(AHEAD);
        let loader = self.clone();
        std::thread::Builder::new()
            .name("vidcls-loader".into())
            .spawn(move || {
                let len = loader.dataset.len();
                let window = loader.batch_size * WINDOW_BATCHES;
                for start in (0..len).step_by(window) {
                    for batch in loader.preprocess_window(start..(start + window).min(len)) {
                        if sender.send(batch).is_err() {
                            return;
                        }
                    }
                }
            })
            .expect("a thread for the data loader");
        Box::new(VideoLoaderIterator {
            receiver,
            progress: Progress::new(0, self.dataset.len()),
        })
    }

    fn num_items(&self) -> usize {
        self.dataset.len()
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, VideoBatch<B>>> {
        Arc::new(VideoLoader {
            device: device.clone(),
            ..self.clone()
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, VideoBatch<B>>> {
        Arc::new(VideoLoader {
            dataset: self.dataset.slice(start, end),
            ..self.clone()
        })
    }
}

/// `buffer` cut into `count` consecutive slots of `per_video` values.
fn split_slots(buffer: &mut [f32], per_video: usize, count: usize) -> Vec<&mut [f32]> {
    if per_video == 0 {
        return std::iter::repeat_with(<&mut [f32]>::default)
            .take(count)
            .collect();
    }
    buffer.chunks_mut(per_video).collect()
}

/// The batches of one pass over a [`VideoLoader`].
struct VideoLoaderIterator<B: Backend> {
    receiver: Receiver<(VideoBatch<B>, usize)>,
    progress: Progress,
}

impl<B: Backend> Iterator for VideoLoaderIterator<B> {
    type Item = VideoBatch<B>;

    fn next(&mut self) -> Option<VideoBatch<B>> {
        let (batch, count) = self.receiver.recv().ok()?;
        self.progress.items_processed += count;
        Some(batch)
    }
}

impl<B: Backend> DataLoaderIterator<VideoBatch<B>> for VideoLoaderIterator<B> {
    fn progress(&self) -> Progress {
        self.progress.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::VisualSource;
    use crate::synth::{SynthConfig, write_synthetic_dataset};
    use crate::tokenizer::TextEncoder;
    use burn::backend::Flex;

    #[test]
    fn batches_come_in_dataset_order_and_slices_resume() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = SynthConfig {
            labeled: 0,
            unlabeled: 0,
            test: 7,
            seed: 3,
            ..SynthConfig::default()
        };
        write_synthetic_dataset(&data, &config, &|| {}).unwrap();
        let text = Arc::new(TextEncoder::from_dir(&data.join("bert")).unwrap());
        let dataset = VideoDataset::unlabeled(
            &data.join("annotations/test.json"),
            VisualSource::frames(&data.join("zip_frames/test")).unwrap(),
            text,
            2,
        )
        .unwrap()
        .with_frame_side(8)
        .unwrap();
        let ids: Vec<String> = dataset.annotations().iter().map(|v| v.id.clone()).collect();
        let order = vec![6, 0, 5, 1, 4, 2, 3];
        let loader =
            VideoLoader::<Flex>::new(dataset.select(order.clone()), 0, 3, 2, Default::default());
        assert_eq!(loader.num_batches(), 3);
        let expected: Vec<&str> = order.iter().map(|&i| ids[i].as_str()).collect();
        let mut iterator = loader.iter();
        let mut seen = Vec::new();
        for batch in iterator.by_ref() {
            assert!(
                matches!(batch.visual, crate::batcher::VisualBatch::Frames(ref f) if f.dims()[3] == 8)
            );
            seen.extend(batch.ids);
        }
        assert_eq!(seen, expected);
        assert_eq!(iterator.progress().items_processed, 7);

        let rest: Vec<String> = loader
            .slice(3, 7)
            .iter()
            .flat_map(|batch| batch.ids)
            .collect();
        assert_eq!(rest, expected[3..]);
    }
}
