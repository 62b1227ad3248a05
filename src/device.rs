//! The compute device: Burn's `Flex` CPU backend by default, its CUDA backend with the `cuda`
//! cargo feature.

use anyhow::Result;
use burn::prelude::Backend;

/// Which device runs the tensor work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceKind {
    /// Burn's Flex CPU backend (all cores).
    #[default]
    Cpu,
    /// Burn's CUDA backend, GPU 0 (needs a build with `--features cuda`).
    Cuda,
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
