//! `vidcls`: train and run multimodal short-video classifiers on Burn.

use std::process::ExitCode;

use clap::Parser;
use vidcls::Cli;

fn main() -> ExitCode {
    keep_freed_memory();
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

/// Makes glibc's malloc keep freed buffers of up to 32 MiB (its largest setting) in the heap
/// and never give the heap's top back to the system, instead of returning every buffer over
/// 128 KiB-32 MiB to the kernel, which zeroes its pages again on the next use: a training step
/// frees and reallocates most of its tensors, and the kernel's page clearing took about a
/// fifth of a seed-size step. Measured: 7% faster seed FGM steps, 11% faster tiny ones
/// (`vidcls bench train`); inference unchanged. Other allocators (jemalloc) measured slower.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's thresholds; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
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
