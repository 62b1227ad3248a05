//! Swin Transformer (Liu et al., 2021), following the official Microsoft implementation so that
//! its checkpoints (e.g. `swin_tiny_patch4_window7_224.pth`) load as they are.

mod drop_path;
mod mlp;
mod patch_embed;
mod patch_merging;
mod stage;
mod swin_block;
mod transformer;
mod window;
mod window_attention;

pub use drop_path::{DropPath, DropPathConfig};
pub use mlp::{Mlp, MlpConfig};
pub use patch_embed::{PatchEmbed, PatchEmbedConfig};
pub use patch_merging::{PatchMerging, PatchMergingConfig};
pub use stage::{SwinStage, SwinStageConfig};
pub use swin_block::{SwinBlock, SwinBlockConfig, shifted_window_mask};
pub use transformer::{SwinConfig, SwinTransformer};
pub use window::{window_partition, window_reverse};
pub use window_attention::{WindowAttention, WindowAttentionConfig, relative_position_index};
