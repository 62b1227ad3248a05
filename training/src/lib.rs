//! vidcls training: fine-tuning on burn-train's Learner with the reference's recipe
//! (FGM/PGD, EMA, BertAdam and its schedule, label smoothing, resampling), the competition's
//! metric, and run directories.

pub mod average;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod data_parallel;
pub mod ema;
pub mod finetune;
pub mod launch;
pub mod loss;
pub mod loss_scale;
pub mod metric;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod pretrain;
pub mod renderer;
pub mod resume;
pub mod run;
pub mod schedule;
pub mod step;
pub mod strategy;
pub mod update;
