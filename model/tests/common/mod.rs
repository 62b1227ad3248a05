//! Shared helpers of the model tests: the fixture directory written by
//! `scripts/make_model_fixtures.py`, its tensors, and closeness checks.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::prelude::*;
use burn_store::{ModuleStore, SafetensorsStore};
use vidcls_model::VideoModelConfig;

/// Backend of the parity tests.
pub type TestBackend = Flex;

/// Largest absolute error tolerated against the PyTorch reference.
pub const TOLERANCE: f32 = 1e-4;

/// Path of a file of `tests/fixtures/model/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/model")
        .join(name)
}

/// The `VideoModelConfig` of the fixture models.
pub fn fixture_config() -> VideoModelConfig {
    VideoModelConfig::load(fixture("config.json")).expect("fixture config.json parses")
}

/// Inputs and reference outputs (`io.safetensors`).
pub struct Io {
    store: SafetensorsStore,
    device: Device<TestBackend>,
}

impl Io {
    /// Opens `io.safetensors`.
    pub fn open() -> Self {
        Self {
            store: SafetensorsStore::from_file(fixture("io.safetensors")),
            device: Default::default(),
        }
    }

    fn data(&mut self, name: &str) -> TensorData {
        self.store
            .get_snapshot(name)
            .expect("io.safetensors is readable")
            .unwrap_or_else(|| panic!("no tensor {name} in io.safetensors"))
            .to_data()
            .expect("tensor data")
    }

    /// A float tensor.
    pub fn float<const D: usize>(&mut self, name: &str) -> Tensor<TestBackend, D> {
        let data = self.data(name).convert::<f32>();
        Tensor::from_data(data, &self.device)
    }

    /// An integer tensor.
    pub fn int<const D: usize>(&mut self, name: &str) -> Tensor<TestBackend, D, Int> {
        let data = self.data(name).convert::<i32>();
        Tensor::from_data(data, &self.device)
    }
}

/// Asserts that two tensors have the same shape and differ by at most [`TOLERANCE`];
/// returns the largest absolute difference.
pub fn assert_close<const D: usize>(
    what: &str,
    actual: Tensor<TestBackend, D>,
    expected: Tensor<TestBackend, D>,
) -> f32 {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shapes differ");
    let error: f32 = (actual - expected).abs().max().into_scalar();
    println!("{what}: max abs error {error:.3e}");
    assert!(
        error <= TOLERANCE,
        "{what}: max abs error {error} > {TOLERANCE}"
    );
    error
}
