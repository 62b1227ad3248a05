//! The compute device: Burn's `Flex` CPU backend by default, its CUDA backend with the `cuda`
//! cargo feature.

use anyhow::{Result, bail, ensure};
use burn::prelude::Backend;
use burn::tensor::backend::{Device as _, DeviceId};
use vidcls_model::kernels::MatmulPrecision;

/// Which device runs the tensor work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceKind {
    /// Burn's Flex CPU backend (all cores).
    #[default]
    Cpu,
    /// Burn's CUDA backend, GPU 0 (needs a build with `--features cuda`).
    Cuda,
}

/// Precision of the model's matrix products (`--precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// f32 everywhere.
    #[default]
    F32,
    /// The linear layers' products with bf16 inputs and f32 accumulation (CPUs with
    /// AVX512-BF16; f32 elsewhere, with a warning); softmax, LayerNorm, GELU and attention stay
    /// f32, as under PyTorch's bf16 autocast. CPU only so far.
    Bf16,
}

impl Precision {
    /// The flag's value.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// The precision the CPU's products use (`bf16` falls back to `f32` without AVX512-BF16).
    pub fn effective(self) -> Self {
        match MatmulPrecision::from(self).effective() {
            MatmulPrecision::F32 => Precision::F32,
            MatmulPrecision::Bf16 => Precision::Bf16,
        }
    }
}

impl From<Precision> for MatmulPrecision {
    fn from(precision: Precision) -> Self {
        match precision {
            Precision::F32 => MatmulPrecision::F32,
            Precision::Bf16 => MatmulPrecision::Bf16,
        }
    }
}

/// Work generic over the backend, run on the chosen device by [`run_on`].
pub trait BackendTask {
    /// What the work returns.
    type Output;
    /// Does the work on `device` of backend `B`.
    fn run<B: Backend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Runs `task` on the device `kind`.
pub fn run_on<T: BackendTask>(kind: DeviceKind, task: T) -> Result<T::Output> {
    match kind {
        DeviceKind::Cpu => task.run::<burn::backend::Flex>(burn::backend::flex::FlexDevice),
        DeviceKind::Cuda => run_on_cuda(task),
    }
}

/// Runs `task` on the device `kind` with its matrix products in `precision`.
pub fn run_with_precision<T: BackendTask>(
    kind: DeviceKind,
    precision: Precision,
    task: T,
) -> Result<T::Output> {
    match (kind, precision) {
        (_, Precision::F32) => run_on(kind, task),
        (DeviceKind::Cpu, _) => {
            let products = MatmulPrecision::from(precision);
            if products.effective() != products {
                log::warn!(
                    "this CPU has no bf16 dot-product instruction (AVX512-BF16): the products run in f32"
                );
            }
            products.scope(|| run_on(kind, task))
        }
        (DeviceKind::Cuda, _) => bail!(
            "--precision {} runs on the CPU only so far; use --precision f32 with --device cuda",
            precision.name()
        ),
    }
}

/// The devices of backend `B` that `--devices` names by index (their order kept: the first
/// holds the model, the optimizer and validation), or `B`'s default device when it names none.
pub fn select_devices<B: Backend>(indices: &[usize]) -> Result<Vec<B::Device>> {
    let default = B::Device::default();
    if indices.is_empty() {
        return Ok(vec![default]);
    }
    let type_id = default.to_id().type_id;
    let count = B::device_count(type_id);
    indices
        .iter()
        .enumerate()
        .map(|(position, &index)| {
            ensure!(
                index < count,
                "--devices {index}: this backend has {count} device(s), numbered from 0 (GPUs need --device cuda)"
            );
            ensure!(
                !indices[..position].contains(&index),
                "--devices names device {index} twice"
            );
            let index_id = u16::try_from(index)?;
            Ok(B::Device::from_id(DeviceId { type_id, index_id }))
        })
        .collect()
}

#[cfg(feature = "cuda")]
fn run_on_cuda<T: BackendTask>(task: T) -> Result<T::Output> {
    task.run::<burn::backend::Cuda>(burn::backend::cuda::CudaDevice::default())
}

#[cfg(not(feature = "cuda"))]
fn run_on_cuda<T: BackendTask>(_task: T) -> Result<T::Output> {
    anyhow::bail!(
        "this vidcls was built without CUDA support; rebuild it with `cargo build --release --features cuda`"
    )
}
