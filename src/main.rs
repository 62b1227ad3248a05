//! `vidcls`: train and run multimodal short-video classifiers on Burn.

use std::process::ExitCode;

use clap::Parser;
use vidcls::Cli;

/// Freed large blocks are kept for reuse: see [`vidcls::memory`].
#[global_allocator]
static ALLOCATOR: vidcls::memory::ReusingAllocator = vidcls::memory::ReusingAllocator;

fn main() -> ExitCode {
    vidcls::memory::keep_freed_memory();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .init();
    remove_unfinished_outputs_on_signals();
    match vidcls::execute(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// On SIGINT, SIGTERM or SIGHUP, removes the temporary outputs being written, then ends the
/// process as the signal would have (a run directory being trained is kept: it is resumable).
fn remove_unfinished_outputs_on_signals() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            log::warn!(
                "cannot install signal handlers: an interrupted run may leave .vidcls-* files"
            );
            return;
        };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let removed = vidcls_datasets::output::remove_pending_outputs();
                eprintln!("interrupted: removed {removed} unfinished output(s)");
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        });
    }
}
