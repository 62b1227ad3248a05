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

/// Precision of the model's matrix products (`--precision`): the products' inputs (weights
/// included) are cast for the forward pass, their outputs come back in f32, and everything else
/// (LayerNorm, softmax, GELU, residuals, the loss, the weights, their gradients and the
/// optimizer's state) stays f32, as under PyTorch's autocast with f32 master weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// f32 everywhere.
    #[default]
    F32,
    /// bf16 products with f32 accumulation. CUDA: linear layers and attention. CPU inference:
    /// the linear layers on AVX512-BF16 (f32 on CPUs without it, with a warning), the attention
    /// in f32. CPU training: CUDA's casts on Burn's operations (slower than f32; for checks).
    Bf16,
    /// f16 products: CUDA's tensor cores. On the CPU, Flex's f16 products (slow; for checks).
    F16,
}

impl Precision {
    /// The flag's value.
    pub fn name(self) -> &'static str {
        MatmulPrecision::from(self).name()
    }

    /// The precision the products of inference on `kind` use (`bf16` falls back to `f32` on
    /// CPUs without AVX512-BF16).
    pub fn effective(self, kind: DeviceKind) -> Self {
        let products = MatmulPrecision::from(self);
        if kind == DeviceKind::Cpu && products.effective() != products {
            Precision::F32
        } else {
            self
        }
    }
}

impl From<Precision> for MatmulPrecision {
    fn from(precision: Precision) -> Self {
        match precision {
            Precision::F32 => MatmulPrecision::F32,
            Precision::Bf16 => MatmulPrecision::Bf16,
            Precision::F16 => MatmulPrecision::F16,
        }
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
    precision: Precision,
    workload: Workload,
    task: T,
) -> Result<T::Output> {
    if kind == DeviceKind::Cpu {
        match (precision, workload) {
            (Precision::F32, _) => {}
            (Precision::Bf16, Workload::Inference) => {
                if precision.effective(kind) != precision {
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
    MatmulPrecision::from(precision).scope(|| run_on(kind, task))
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
