//! The compute device: Burn's `Flex` CPU backend by default, its CUDA backend with the `cuda`
//! cargo feature.

use anyhow::{Result, ensure};
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

/// The precision of the products of inference on `kind` with `--precision precision`: `bf16`
/// falls back to `f32` on CPUs without AVX512-BF16.
pub fn effective_precision(precision: MatmulPrecision, kind: DeviceKind) -> MatmulPrecision {
    match kind {
        DeviceKind::Cpu => precision.effective(),
        DeviceKind::Cuda => precision,
    }
}

/// What a command runs in `--precision`: inference takes the fused CPU kernels' bf16 path,
/// training does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Forward passes only (`predict`, `bench infer`).
    Inference,
    /// Forward and backward passes (`finetune`, `pretrain`, `bench train`).
    Training,
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

/// Runs `task` (a `workload`) on the device `kind` with its matrix products in `precision`,
/// warning where that precision is slow or unavailable on the CPU.
pub fn run_with_precision<T: BackendTask>(
    kind: DeviceKind,
    precision: MatmulPrecision,
    workload: Workload,
    task: T,
) -> Result<T::Output> {
    if kind == DeviceKind::Cpu {
        match (precision, workload) {
            (MatmulPrecision::F32, _) => {}
            (MatmulPrecision::Bf16, Workload::Inference) => {
                if effective_precision(precision, kind) != precision {
                    log::warn!(
                        "this CPU has no bf16 dot-product instruction (AVX512-BF16): the products run in f32"
                    );
                }
            }
            _ => log::warn!(
                "--precision {0} on the CPU runs Burn's {0} products with the casts CUDA uses: slower than f32, meant to check numbers",
                precision.name()
            ),
        }
    }
    precision.scope(|| run_on(kind, task))
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
