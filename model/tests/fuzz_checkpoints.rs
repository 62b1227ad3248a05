//! Fuzz targets of the checkpoint readers (see the book's "Fuzzing" chapter): safetensors files
//! and PyTorch `.pth` files (their pickle, and their zip) read by `reference_tensor_shapes`, the
//! configuration inference, and `load_reference_weights` into tiny models. Each target mutates
//! small valid checkpoints built here and checks that the loader returns (`Ok` or `Err`) without
//! panicking.
//!
//! ```sh
//! cargo test --release -p vidcls-model --test fuzz_checkpoints                 # 64 cases each
//! PROPTEST_CASES=100000 cargo test --release -p vidcls-model --test fuzz_checkpoints
//! ```

#[path = "../../tests/fuzz/checkpoints.rs"]
mod checkpoints;
#[path = "../../tests/fuzz/mutate.rs"]
mod mutate;

use std::path::Path;
use std::sync::LazyLock;

use burn::backend::Flex;
use checkpoints::{
    Kind, StoredTensor, mixed_dtypes, pickle_seed, pth_bytes, pth_zip_seed, safetensors_seed,
    state_dict, storages, tiny_config,
};
use mutate::{Seed, cases, check};
use proptest::prelude::*;
use vidcls_model::loader::{
    infer_classifier_config, infer_pretrain_config, load_reference_weights, reference_tensor_shapes,
};

static CLASSIFIER: LazyLock<Vec<StoredTensor>> = LazyLock::new(|| state_dict(Kind::Classifier));
static PRETRAIN: LazyLock<Vec<StoredTensor>> = LazyLock::new(|| state_dict(Kind::Pretrain));

static SAFETENSORS: LazyLock<Vec<Seed>> = LazyLock::new(|| {
    vec![
        safetensors_seed("safetensors_classifier_f32", &CLASSIFIER),
        safetensors_seed("safetensors_pretrain_f32", &PRETRAIN),
        safetensors_seed(
            "safetensors_classifier_mixed_dtypes",
            &mixed_dtypes(&CLASSIFIER),
        ),
    ]
});

/// Pickle seeds and the storages that the target zips them with.
struct Pickles {
    seeds: Vec<Seed>,
    storages: Vec<Vec<(String, Vec<u8>)>>,
}

static PICKLES: LazyLock<Pickles> = LazyLock::new(|| {
    let mixed = mixed_dtypes(&CLASSIFIER);
    Pickles {
        seeds: vec![
            pickle_seed("pickle_classifier_f32", &CLASSIFIER),
            pickle_seed("pickle_pretrain_f32", &PRETRAIN),
            pickle_seed("pickle_classifier_mixed_dtypes", &mixed),
        ],
        storages: vec![storages(&CLASSIFIER), storages(&PRETRAIN), storages(&mixed)],
    }
});

static PTH_ZIPS: LazyLock<Vec<Seed>> =
    LazyLock::new(|| vec![pth_zip_seed("pth_zip_classifier_f32", &CLASSIFIER)]);

/// What the loader does with a checkpoint file: its tensor shapes, the configurations inferred
/// from them, and strict loads into a tiny classifier and pre-training model.
fn load_checkpoint(path: &Path) {
    if let Ok(shapes) = reference_tensor_shapes(path) {
        let bert = &tiny_config().encoder.two_stream.bert;
        for bert in [None, Some(bert)] {
            let _ = infer_classifier_config(&shapes, bert);
            let _ = infer_pretrain_config(&shapes, bert);
        }
    }
    let device = Default::default();
    let mut classifier = tiny_config().init_classifier::<Flex>(&device);
    let _ = load_reference_weights(&mut classifier, path);
    let mut pretrain = tiny_config().init_pretrain::<Flex>(&device);
    let _ = load_reference_weights(&mut pretrain, path);
}

/// Writes `bytes` as `checkpoint.<extension>` in a new temporary directory.
fn write_checkpoint(bytes: &[u8], extension: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("checkpoint.{extension}"));
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

proptest! {
    #![proptest_config(mutate::config())]

    /// Mutated safetensors files (header length, shapes, data offsets, dtypes, data).
    #[test]
    fn fuzz_safetensors(case in cases(&SAFETENSORS)) {
        let (_dir, path) = write_checkpoint(&case.bytes(&SAFETENSORS), "safetensors");
        check(&case, || load_checkpoint(&path))?;
    }

    /// `.pth` files whose pickle is mutated (storage classes, numels, shapes, strides, names),
    /// in a valid zip with valid storages.
    #[test]
    fn fuzz_pth_pickle(case in cases(&PICKLES.seeds)) {
        let index = PICKLES.seeds.iter().position(|seed| seed.name == case.seed).unwrap();
        let pth = pth_bytes(&case.bytes(&PICKLES.seeds), &PICKLES.storages[index]);
        let (_dir, path) = write_checkpoint(&pth, "pth");
        check(&case, || load_checkpoint(&path))?;
    }

    /// Mutated `.pth` zips (headers, sizes, entry names).
    #[test]
    fn fuzz_pth_zip(case in cases(&PTH_ZIPS)) {
        let (_dir, path) = write_checkpoint(&case.bytes(&PTH_ZIPS), "pth");
        check(&case, || load_checkpoint(&path))?;
    }
}

/// The float seeds are valid checkpoints of the tiny models; the mixed-dtype ones are valid
/// files whose tensor shapes read.
#[test]
fn fuzz_seeds_load() {
    let device = Default::default();
    let bert = &tiny_config().encoder.two_stream.bert;
    let pth = |index: usize| pth_bytes(&PICKLES.seeds[index].bytes, &PICKLES.storages[index]);
    let files = [
        (&SAFETENSORS[0].bytes, "safetensors", Some(Kind::Classifier)),
        (&SAFETENSORS[1].bytes, "safetensors", Some(Kind::Pretrain)),
        (&SAFETENSORS[2].bytes, "safetensors", None),
        (&pth(0), "pth", Some(Kind::Classifier)),
        (&pth(1), "pth", Some(Kind::Pretrain)),
        (&pth(2), "pth", None),
        (&PTH_ZIPS[0].bytes, "pth", Some(Kind::Classifier)),
    ];
    for (index, (bytes, extension, kind)) in files.into_iter().enumerate() {
        let (_dir, path) = write_checkpoint(bytes, extension);
        let shapes = reference_tensor_shapes(&path).unwrap_or_else(|e| panic!("file {index}: {e}"));
        match kind {
            Some(Kind::Classifier) => {
                let inferred = infer_classifier_config(&shapes, Some(bert)).unwrap();
                assert_eq!(inferred.num_classes, 3);
                let mut model = tiny_config().init_classifier::<Flex>(&device);
                load_reference_weights(&mut model, &path)
                    .unwrap_or_else(|e| panic!("file {index}: {e}"));
            }
            Some(Kind::Pretrain) => {
                infer_pretrain_config(&shapes, Some(bert)).unwrap();
                let mut model = tiny_config().init_pretrain::<Flex>(&device);
                load_reference_weights(&mut model, &path)
                    .unwrap_or_else(|e| panic!("file {index}: {e}"));
            }
            None => assert_eq!(shapes.len(), CLASSIFIER.len()),
        }
    }
}
