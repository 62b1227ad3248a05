//! One module per subcommand.

pub mod bench;
pub mod demo;
pub mod evaluate;
pub mod inspect;
pub mod synth;
pub mod visual_args;
