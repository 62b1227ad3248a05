//! vidcls training: the competition's metric (and, later, the training loop).

pub mod metric;
