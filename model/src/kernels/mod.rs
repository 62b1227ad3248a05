//! Fused CPU kernels for the hot operations of the models.
//!
//! Each function takes and returns tensors of any backend. On the Flex backend (CPU inference)
//! it runs one fused, vectorized (AVX-512 or AVX2 where the CPU has them), multi-threaded pass
//! over Flex's buffers. Under training on the CPU (`Autodiff<Flex>`), the linear kernels run
//! the same forward pass with a backward pass of their own (`linear_training`), the attention
//! runs per head on matrix products that read and write the heads' columns in place, with a
//! backward pass of its own (`attention_training`), the layer normalization and Swin's token
//! permutations are multi-threaded passes with backward passes of their own (`layer_norm`,
//! `permute`), and dropout draws its mask in parallel (`dropout`); everywhere else (CUDA) a
//! function is the composition of Burn operations that it replaces (`composed_linear`,
//! `composed_attention`, the backend's `layer_norm`, `select`), so results agree up to
//! rounding.
//! `MatmulPrecision` chooses the products' precision: bf16 for the fused linear layers of CPU
//! inference, where `mlp` also runs each feed-forward block as one pass over blocks of rows;
//! elsewhere (training in bf16 or f16, CUDA) the composed operations cast the
//! products' inputs and keep everything else in f32.
//! `adam_step` (the optimizer's element-wise arithmetic) and `weighted_sum` (the weights'
//! moving average) are one pass each, with exactly the results of Burn's composition.
//!
//! Why: on Burn's Flex backend the erf GELU is scalar `libm` calls, a linear layer's bias is a
//! second pass, attention is a dozen passes (head split and merge copies, scale, mask,
//! softmax, and thousands of tiny matrix products for Swin's windows); together these took
//! about as long as the seed model's large matrix products.

mod activation;
mod adam;
mod attention;
mod attention_training;
mod bf16_gemm;
mod dropout;
mod flex;
mod layer_norm;
mod linear;
mod linear_training;
mod math;
mod matrix;
mod mlp;
mod packed_weights;
mod parallel;
mod permute;
mod precision;
mod weighted_sum;

pub use adam::{AdamArithmetic, AdamTensors, adam_step};
pub use attention::{AttentionInput, attention, composed_attention, joint_attention};
pub use dropout::dropout;
pub use layer_norm::layer_norm;
pub use linear::{composed_linear, linear, linear_gelu, linear_residual};
pub use mlp::mlp;
pub use permute::permute_tokens;
pub use precision::MatmulPrecision;
pub use weighted_sum::weighted_sum;
