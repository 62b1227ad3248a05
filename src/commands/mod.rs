//! One module per subcommand.

pub mod average;
pub mod bench;
pub mod bench_infer;
pub mod bench_train;
pub mod demo;
pub mod evaluate;
pub mod export;
pub mod extract_features;
pub mod finetune;
pub mod flags;
pub mod inspect;
pub mod predict;
pub mod preset;
pub mod pretrain;
pub mod synth;
pub mod train_args;
pub mod visual_args;
