//! Fuzz targets of what `load_model` reads (see the book's "Fuzzing" chapter): the
//! `config.json` of run directories (fine-tuning, pre-training and legacy layouts, with valid
//! weights next to it), and reference checkpoint files (safetensors, `.pth`) and the BERT
//! `config.json`, whose shapes and sizes become the configuration of the model that is built.
//! Each target mutates small valid files built here and checks that loading returns (`Ok` or
//! `Err`) without panicking.
//!
//! ```sh
//! cargo test --release -p vidcls-training --test fuzz_run_config                # 64 cases each
//! PROPTEST_CASES=100000 cargo test --release -p vidcls-training --test fuzz_run_config
//! ```

#[path = "../../tests/fuzz/checkpoints.rs"]
mod checkpoints;
#[path = "../../tests/fuzz/mutate.rs"]
mod mutate;

use std::path::Path;
use std::sync::LazyLock;

use burn::backend::Flex;
use checkpoints::{
    Kind, StoredTensor, pickle_seed, pth_bytes, safetensors_bytes, safetensors_seed, state_dict,
    storages, tiny_config,
};
use mutate::{JSON_TOKENS, Seed, cases, check, json_strings};
use proptest::prelude::*;
use vidcls_training::checkpoint::{RunConfig, RunWeights, load_model};
use vidcls_training::config::{PretrainingConfig, TrainingConfig};

static CLASSIFIER: LazyLock<Vec<StoredTensor>> = LazyLock::new(|| state_dict(Kind::Classifier));
static PRETRAIN: LazyLock<Vec<StoredTensor>> = LazyLock::new(|| state_dict(Kind::Pretrain));

/// JSON values that configurations do not hold but might be given.
const CONFIG_TOKENS: [&str; 8] = [
    "\"pgd\"",
    "{\"pgd\": {\"steps\": 0, \"alpha\": 0.0, \"eps\": 0.0}}",
    "{\"fgm\": {\"eps\": -1.0}}",
    "\"seed\"",
    "\"compact\"",
    "\"adamw\"",
    "[0, 0, 0, 0]",
    "[4294967296]",
];

/// A JSON seed: its quoted strings, JSON syntax and [`CONFIG_TOKENS`] are the tokens.
fn json_seed(name: &'static str, json: String) -> Seed {
    let strings = json_strings(json.as_bytes());
    Seed::new(name, json.into_bytes())
        .tokens(strings)
        .tokens(JSON_TOKENS)
        .tokens(CONFIG_TOKENS)
}

/// Run directory configurations: a fine-tuning run, a pre-training run, and the legacy layout
/// (the model configuration alone).
static RUN_CONFIGS: LazyLock<Vec<Seed>> = LazyLock::new(|| {
    let run = |training: Option<TrainingConfig>, pretraining: Option<PretrainingConfig>| {
        let config = RunConfig {
            model: tiny_config(),
            training,
            pretraining,
        };
        serde_json::to_string_pretty(&config).unwrap()
    };
    vec![
        json_seed("run_finetune", run(Some(TrainingConfig::tiny()), None)),
        json_seed(
            "run_pretrain",
            run(
                Some(TrainingConfig::tiny()),
                Some(PretrainingConfig::default()),
            ),
        ),
        json_seed(
            "run_legacy_model_only",
            serde_json::to_string_pretty(&tiny_config()).unwrap(),
        ),
    ]
});

/// The weights next to a run seed's configuration.
static CLASSIFIER_FILE: LazyLock<Vec<u8>> = LazyLock::new(|| safetensors_bytes(&CLASSIFIER));
static PRETRAIN_FILE: LazyLock<Vec<u8>> = LazyLock::new(|| safetensors_bytes(&PRETRAIN));

/// The BERT configuration (`config.json` of a BERT directory) of the tiny models.
static BERT_CONFIGS: LazyLock<Vec<Seed>> = LazyLock::new(|| {
    let bert = serde_json::to_string_pretty(&tiny_config().encoder.two_stream.bert).unwrap();
    vec![json_seed("bert_config", bert)]
});

static SAFETENSORS: LazyLock<Vec<Seed>> = LazyLock::new(|| {
    vec![
        safetensors_seed("safetensors_classifier_f32", &CLASSIFIER),
        safetensors_seed("safetensors_pretrain_f32", &PRETRAIN),
    ]
});

static PICKLES: LazyLock<Vec<Seed>> = LazyLock::new(|| {
    vec![
        pickle_seed("pickle_classifier_f32", &CLASSIFIER),
        pickle_seed("pickle_pretrain_f32", &PRETRAIN),
    ]
});

/// Reads a run directory's configuration, checks its settings, and loads its model.
fn load_run_dir(dir: &Path) {
    if let Ok(config) = RunConfig::read(dir) {
        if let Some(training) = &config.training {
            let _ = training.validate();
        }
        if let Some(pretraining) = &config.pretraining {
            let _ = pretraining.validate();
        }
    }
    let _ = load_model::<Flex>(dir, None, RunWeights::Model, &Default::default());
}

/// A BERT directory holding `config` as its `config.json`.
fn bert_dir(config: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    dir
}

/// Loads a reference checkpoint file (`bytes`, as `checkpoint.<extension>`) with the BERT
/// configuration `bert`.
fn load_checkpoint_file(bytes: &[u8], extension: &str, bert: &[u8]) {
    let bert = bert_dir(bert);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("checkpoint.{extension}"));
    std::fs::write(&path, bytes).unwrap();
    let _ = load_model::<Flex>(
        &path,
        Some(bert.path()),
        RunWeights::Model,
        &Default::default(),
    );
}

proptest! {
    #![proptest_config(mutate::config())]

    /// Run directories whose `config.json` is mutated (sizes zero, huge or negative, types,
    /// keys), next to valid weights.
    #[test]
    fn fuzz_run_config(case in cases(&RUN_CONFIGS)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), case.bytes(&RUN_CONFIGS)).unwrap();
        let weights: &[u8] = if case.seed == "run_pretrain" { &PRETRAIN_FILE } else { &CLASSIFIER_FILE };
        std::fs::write(dir.path().join("model.safetensors"), weights).unwrap();
        check(&case, || load_run_dir(dir.path()))?;
    }

    /// Mutated safetensors checkpoints: their shapes become the configuration of the model
    /// that is built.
    #[test]
    fn fuzz_checkpoint_safetensors(case in cases(&SAFETENSORS)) {
        let bytes = case.bytes(&SAFETENSORS);
        check(&case, || load_checkpoint_file(&bytes, "safetensors", &BERT_CONFIGS[0].bytes))?;
    }

    /// `.pth` checkpoints whose pickle is mutated, in a valid zip with valid storages.
    #[test]
    fn fuzz_checkpoint_pth(case in cases(&PICKLES)) {
        let tensors: &[StoredTensor] = if case.seed == "pickle_pretrain_f32" { &PRETRAIN } else { &CLASSIFIER };
        let pth = pth_bytes(&case.bytes(&PICKLES), &storages(tensors));
        check(&case, || load_checkpoint_file(&pth, "pth", &BERT_CONFIGS[0].bytes))?;
    }

    /// A valid classifier checkpoint with a mutated BERT `config.json` (heads, sizes).
    #[test]
    fn fuzz_bert_config(case in cases(&BERT_CONFIGS)) {
        let bert = case.bytes(&BERT_CONFIGS);
        check(&case, || load_checkpoint_file(&CLASSIFIER_FILE, "safetensors", &bert))?;
    }
}

/// The seeds load: run directories of each layout, checkpoint files with the BERT config.
#[test]
fn fuzz_seeds_load() {
    let device = Default::default();
    for seed in RUN_CONFIGS.iter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), &seed.bytes).unwrap();
        let weights: &[u8] = if seed.name == "run_pretrain" {
            &PRETRAIN_FILE
        } else {
            &CLASSIFIER_FILE
        };
        std::fs::write(dir.path().join("model.safetensors"), weights).unwrap();
        let config = RunConfig::read(dir.path()).unwrap();
        if let Some(training) = &config.training {
            training.validate().unwrap();
        }
        load_model::<Flex>(dir.path(), None, RunWeights::Model, &device)
            .unwrap_or_else(|e| panic!("{}: {e:#}", seed.name));
    }
    let bert = bert_dir(&BERT_CONFIGS[0].bytes);
    let files = [
        (SAFETENSORS[0].bytes.clone(), "safetensors"),
        (SAFETENSORS[1].bytes.clone(), "safetensors"),
        (pth_bytes(&PICKLES[0].bytes, &storages(&CLASSIFIER)), "pth"),
        (pth_bytes(&PICKLES[1].bytes, &storages(&PRETRAIN)), "pth"),
    ];
    for (index, (bytes, extension)) in files.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("checkpoint.{extension}"));
        std::fs::write(&path, bytes).unwrap();
        load_model::<Flex>(&path, Some(bert.path()), RunWeights::Model, &device)
            .unwrap_or_else(|e| panic!("file {index}: {e:#}"));
    }
}
