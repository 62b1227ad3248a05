//! Progress bars for long work.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `total` items of `what`, hidden when stderr is not a terminal.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("valid progress template"),
    );
    bar.set_message(what.to_string());
    bar
}
