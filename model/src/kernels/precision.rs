//! The precision of the fused CPU kernels' matrix products, chosen per thread for a scope.

use std::cell::Cell;

use super::bf16_gemm;

/// Inputs of the linear layers' matrix products on the CPU (Flex backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulPrecision {
    /// f32 inputs and accumulation.
    #[default]
    F32,
    /// Inputs rounded to bf16, f32 accumulation, on the CPU's bf16 dot-product instruction
    /// (AVX512-BF16); f32 on CPUs without it. Everything else (softmax, LayerNorm, GELU,
    /// attention) stays f32, as under PyTorch's bf16 autocast.
    Bf16,
}

impl MatmulPrecision {
    /// The precision the products of this thread actually use: bf16 only where the CPU has
    /// the instruction.
    pub fn effective(self) -> Self {
        match self {
            MatmulPrecision::Bf16 if bf16_gemm::supported() => MatmulPrecision::Bf16,
            _ => MatmulPrecision::F32,
        }
    }

    /// Runs `work` with the matrix products of this thread in this precision, then restores
    /// the previous one (also when `work` panics).
    pub fn scope<R>(self, work: impl FnOnce() -> R) -> R {
        struct Restore(MatmulPrecision);
        impl Drop for Restore {
            fn drop(&mut self) {
                PRECISION.set(self.0);
            }
        }
        let _restore = Restore(PRECISION.replace(self));
        work()
    }

    /// The precision of this thread's products (f32 outside a [`MatmulPrecision::scope`]).
    pub fn current() -> Self {
        PRECISION.get()
    }
}

thread_local! {
    static PRECISION: Cell<MatmulPrecision> = const { Cell::new(MatmulPrecision::F32) };
}

#[cfg(test)]
mod tests {
    use super::MatmulPrecision;

    #[test]
    fn scopes_nest_and_restore() {
        assert_eq!(MatmulPrecision::current(), MatmulPrecision::F32);
        MatmulPrecision::Bf16.scope(|| {
            assert_eq!(MatmulPrecision::current(), MatmulPrecision::Bf16);
            MatmulPrecision::F32
                .scope(|| assert_eq!(MatmulPrecision::current(), MatmulPrecision::F32));
            assert_eq!(MatmulPrecision::current(), MatmulPrecision::Bf16);
        });
        assert_eq!(MatmulPrecision::current(), MatmulPrecision::F32);
    }
}
