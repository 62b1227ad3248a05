//! Pre-training (REFERENCE.md, "Pre-training"): masked language modelling and video-text
//! matching on unlabeled videos, with the visual backbone frozen.

pub mod job;
pub mod masking;
pub mod output;
pub mod step;
