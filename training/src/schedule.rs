//! The learning-rate schedules: the reference's double schedule for BertAdam, and the plain
//! linear warm-up/decay for AdamW.

use burn::optim::LearningRate;
use burn::optim::lr_scheduler::LrScheduler;
use burn::prelude::Backend;

use crate::config::{OptimizerKind, TrainingConfig};

/// The learning rate of each optimizer step (REFERENCE.md, "Fine-tuning"):
/// `lr * lambda(t)` for AdamW, `lr * w(t / T) * lambda(t)` for BertAdam, where `t` counts the
/// optimizer steps taken before (the first step has `t = 0`), `T` is the total number of
/// steps, `lambda` the linear warm-up over `warmup_steps` then linear decay to 0 at `T`, and
/// `w(x) = x / ratio` below the warm-up ratio, then `max((x - 1) / (ratio - 1), 0)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    base_lr: f64,
    total_steps: usize,
    warmup_steps: usize,
    /// `Some(ratio)`: the BertAdam factor `w` applies.
    warmup_ratio: Option<f64>,
    /// Steps taken so far (`t`).
    step: usize,
}

impl LrSchedule {
    /// The schedule of `config` over `total_steps` optimizer steps, starting at step 0.
    pub fn new(config: &TrainingConfig, total_steps: usize) -> Self {
        LrSchedule {
            base_lr: config.lr,
            total_steps,
            warmup_steps: config.warmup_steps,
            warmup_ratio: (config.optimizer == OptimizerKind::BertAdam)
                .then_some(config.warmup_ratio),
            step: 0,
        }
    }

    /// The same schedule positioned at step `step` (the next [`LrScheduler::step`] returns the
    /// rate of that step).
    pub fn at_step(self, step: usize) -> Self {
        LrSchedule { step, ..self }
    }

    /// Optimizer steps taken so far.
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// The learning rate of step `t`.
    pub fn lr_at(&self, t: usize) -> f64 {
        let total = self.total_steps as f64;
        let t_f = t as f64;
        let linear = if t < self.warmup_steps {
            t_f / self.warmup_steps as f64
        } else {
            ((total - t_f) / (total - self.warmup_steps as f64).max(1.0)).max(0.0)
        };
        let bert_adam = self.warmup_ratio.map_or(1.0, |ratio| {
            let x = t_f / total.max(1.0);
            if x < ratio {
                x / ratio
            } else {
                ((x - 1.0) / (ratio - 1.0)).max(0.0)
            }
        });
        self.base_lr * bert_adam * linear
    }
}

impl LrScheduler for LrSchedule {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> LearningRate {
        let lr = self.lr_at(self.step);
        self.step += 1;
        lr
    }

    fn to_record<B: Backend>(&self) -> usize {
        self.step
    }

    fn load_record<B: Backend>(self, record: usize) -> Self {
        self.at_step(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(optimizer: OptimizerKind) -> LrSchedule {
        let config = TrainingConfig {
            lr: 2.0,
            warmup_steps: 10,
            warmup_ratio: 0.1,
            optimizer,
            ..TrainingConfig::seed()
        };
        LrSchedule::new(&config, 100)
    }

    #[test]
    fn bert_adam_applies_both_factors() {
        let mut schedule = schedule(OptimizerKind::BertAdam);
        assert_eq!(schedule.step(), 0.0);
        // t = 5: w = 0.05 / 0.1, lambda = 5 / 10.
        assert!((schedule.lr_at(5) - 2.0 * 0.5 * 0.5).abs() < 1e-12);
        // t = 50: w = (0.5 - 1) / (0.1 - 1), lambda = 50 / 90.
        assert!((schedule.lr_at(50) - 2.0 * (0.5 / 0.9) * (50.0 / 90.0)).abs() < 1e-12);
        assert_eq!(schedule.lr_at(100), 0.0);
        assert_eq!(schedule.lr_at(150), 0.0);
        assert_eq!(schedule.steps_taken(), 1);
    }

    #[test]
    fn adamw_is_linear_and_resumes_at_a_step() {
        let schedule = schedule(OptimizerKind::AdamW);
        assert!((schedule.lr_at(5) - 1.0).abs() < 1e-12);
        assert!((schedule.lr_at(10) - 2.0).abs() < 1e-12);
        assert!((schedule.lr_at(55) - 1.0).abs() < 1e-12);
        let mut resumed = schedule.clone().load_record::<burn::backend::Flex>(55);
        assert_eq!(resumed.step(), schedule.lr_at(55));
    }
}
