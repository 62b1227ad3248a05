//! `curves.png`: training and validation loss per epoch, and the validation mean F1 (a
//! classifier) or MLM and ITM accuracies (pre-training) per epoch.
//!
//! Text needs a font file found at run time (`VIDCLS_FONT`, then common system paths); without
//! one the curves are drawn with no text at all.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use crate::run::EpochRecord;

/// Size of the picture in pixels; two panels side by side.
const SIZE: (u32, u32) = (1000, 420);

/// The name the font is registered under. Not plotters' default `sans-serif`, so that text
/// drawn with a default style fails rather than silently needing a font (see the tests).
const FONT_FAMILY: &str = "vidcls-sans";

/// Where a font is looked for, after the file named by `VIDCLS_FONT`.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    r"C:\Windows\Fonts\arial.ttf",
];

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VALID_COLOR: RGBColor = RGBColor(214, 39, 40);
const F1_COLOR: RGBColor = RGBColor(44, 160, 44);

/// Draws the curves of `history` into the PNG file `path` (atomically): loss per epoch on the
/// left, validation mean F1 per epoch on the right. Non-finite values are left out; an empty
/// history writes nothing.
pub fn draw_curves(path: &Path, history: &[EpochRecord]) -> Result<()> {
    write_png(path, history, font_family())
}

/// [`draw_curves`] with text in the registered font `font`, or with no text when `None`.
fn write_png(path: &Path, history: &[EpochRecord], font: Option<&str>) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    // The encoder is chosen by the extension, so the temporary file ends with `.png`.
    let temp = TempFile(temp_png_beside(path)?);
    render(&temp.0, history, font).with_context(|| format!("cannot draw {}", path.display()))?;
    std::fs::rename(&temp.0, path)
        .with_context(|| format!("cannot move the curves into {}", path.display()))
}

/// A file removed when dropped (a no-op once it has been renamed away).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A name for a temporary PNG file beside `path`, unique within the directory's writers.
fn temp_png_beside(path: &Path) -> Result<PathBuf> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let Some(name) = path.file_name() else {
        bail!("{} is not a file path", path.display());
    };
    let temp = format!(
        ".{}.{}.{}.tmp.png",
        name.to_string_lossy(),
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    Ok(path.with_file_name(temp))
}

/// The registered font's family, registering the first font found on the first call.
fn font_family() -> Option<&'static str> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    REGISTERED
        .get_or_init(register_system_font)
        .then_some(FONT_FAMILY)
}

/// Registers the first readable, valid font among `VIDCLS_FONT` and [`FONT_PATHS`].
fn register_system_font() -> bool {
    let candidates = std::env::var_os("VIDCLS_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(FONT_PATHS.iter().map(PathBuf::from));
    for path in candidates {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        // plotters keeps fonts for the whole process: the bytes live as long.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok() {
            return true;
        }
        log::warn!("{} is not a usable font", path.display());
    }
    log::warn!("no font found (set VIDCLS_FONT to a .ttf file): curves are drawn without text");
    false
}

/// One curve of a panel.
struct Curve {
    name: &'static str,
    color: RGBColor,
    /// (epoch, value), finite values only, by epoch.
    points: Vec<(f64, f64)>,
}

/// One chart of the picture.
struct Panel {
    caption: &'static str,
    curves: Vec<Curve>,
    /// Whether the curves' names are shown.
    legend: bool,
    /// Said instead of the chart when there is nothing to draw.
    when_empty: &'static str,
}

/// The finite values `value` gives for the epochs of `history`, by epoch.
fn points(history: &[EpochRecord], value: impl Fn(&EpochRecord) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|record| {
            value(record)
                .filter(|v| v.is_finite())
                .map(|v| (record.epoch as f64, v))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Draws both panels of `history` into the PNG file `file`.
fn render(file: &Path, history: &[EpochRecord], font: Option<&str>) -> Result<()> {
    let valid: Vec<(f64, f64)> = points(history, |record| record.valid_loss);
    let mut loss_curves = vec![Curve {
        name: "train",
        color: TRAIN_COLOR,
        points: points(history, |record| Some(record.train_loss)),
    }];
    if !valid.is_empty() {
        loss_curves.push(Curve {
            name: "valid",
            color: VALID_COLOR,
            points: valid,
        });
    }
    let loss = Panel {
        caption: "loss",
        curves: loss_curves,
        legend: true,
        when_empty: "no finite loss",
    };
    let pretraining = history.iter().any(|record| record.pretrain.is_some());
    let f1 = if pretraining {
        Panel {
            caption: "validation accuracy",
            curves: vec![
                Curve {
                    name: "mlm",
                    color: F1_COLOR,
                    points: points(history, |record| {
                        record.pretrain.as_ref().map(|stats| stats.mlm_accuracy())
                    }),
                },
                Curve {
                    name: "itm",
                    color: VALID_COLOR,
                    points: points(history, |record| {
                        record.pretrain.as_ref().map(|stats| stats.itm_accuracy())
                    }),
                },
            ],
            legend: true,
            when_empty: "no validation scores",
        }
    } else {
        Panel {
            caption: "validation mean_f1",
            curves: vec![Curve {
                name: "mean_f1",
                color: F1_COLOR,
                points: points(history, |record| {
                    record.scores.as_ref().map(|scores| scores.mean_f1)
                }),
            }],
            legend: false,
            when_empty: "no validation scores",
        }
    };
    let epochs = history.iter().map(|record| record.epoch as f64);
    let first = epochs.clone().fold(f64::INFINITY, f64::min);
    let last = epochs.fold(f64::NEG_INFINITY, f64::max);

    let root = BitMapBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    draw_panel(&left, &loss, (first, last), font)?;
    draw_panel(&right, &f1, (first, last), font)?;
    root.present()?;
    Ok(())
}

/// Draws `panel` into `area`, with epochs `first..=last` on the x axis.
fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    panel: &Panel,
    (first, last): (f64, f64),
    font: Option<&str>,
) -> Result<()> {
    let values = panel
        .curves
        .iter()
        .flat_map(|curve| curve.points.iter().map(|&(_, v)| v));
    let low = values.clone().fold(f64::INFINITY, f64::min);
    let high = values.fold(f64::NEG_INFINITY, f64::max);
    let (Some(x_range), Some(y_range)) = (
        padded(first, last, ((last - first) * 0.03).max(0.5)),
        padded(low, high, (high - low) * 0.08),
    ) else {
        if let Some(family) = font {
            let (w, h) = area.dim_in_pixel();
            let style =
                TextStyle::from((family, 18).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
            let text = format!("{}: {}", panel.caption, panel.when_empty);
            area.draw_text(&text, &style, (w as i32 / 2, h as i32 / 2))?;
        }
        return Ok(());
    };

    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if let Some(family) = font {
        builder
            .caption(panel.caption, (family, 20))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(x_range.clone(), y_range)?;

    let mut mesh = chart.configure_mesh();
    match font {
        Some(family) => {
            // At most one label per whole epoch, so that every label is a whole epoch.
            let whole_epochs = x_range.end.floor() - x_range.start.ceil() + 1.0;
            mesh.x_labels((whole_epochs as usize).clamp(1, 10))
                .x_label_formatter(&epoch_label)
                .x_desc("epoch")
                .label_style((family, 14));
        }
        // Without a font any label would fail to draw: grid lines only.
        None => {
            mesh.disable_axes();
        }
    }
    mesh.draw()?;

    let plot = chart.plotting_area().strip_coord_spec();
    let (w, h) = plot.dim_in_pixel();
    plot.draw(&Rectangle::new(
        [(0, 0), (w as i32 - 1, h as i32 - 1)],
        BLACK.stroke_width(1),
    ))?;

    for curve in &panel.curves {
        let color = curve.color;
        chart
            .draw_series(
                LineSeries::new(curve.points.iter().copied(), color.filled().stroke_width(2))
                    .point_size(3),
            )?
            .label(curve.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if let (Some(family), true) = (font, panel.legend) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((family, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// `low..high` widened by `pad` on both sides (by a little when empty), if that is finite.
fn padded(low: f64, high: f64, pad: f64) -> Option<std::ops::Range<f64>> {
    let pad = if pad > 0.0 {
        pad
    } else {
        (high.abs() * 0.1).max(0.05)
    };
    let range = (low - pad)..(high + pad);
    (range.start.is_finite() && range.end.is_finite() && range.start < range.end).then_some(range)
}

/// An x axis label: the epoch, a whole number.
fn epoch_label(epoch: &f64) -> String {
    format!("{epoch:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Scores;

    fn record(epoch: usize, train_loss: f64, valid: Option<(f64, f64)>) -> EpochRecord {
        EpochRecord {
            epoch,
            steps: epoch * 10,
            train_loss,
            valid_loss: valid.map(|(loss, _)| loss),
            scores: valid.map(|(_, mean_f1)| Scores {
                lv1_acc: mean_f1,
                lv2_acc: mean_f1,
                lv1_f1_micro: mean_f1,
                lv1_f1_macro: mean_f1,
                lv2_f1_micro: mean_f1,
                lv2_f1_macro: mean_f1,
                mean_f1,
            }),
            pretrain: None,
            seconds: 1.0,
        }
    }

    fn validated() -> Vec<EpochRecord> {
        vec![
            record(1, 2.5, Some((2.2, 0.31))),
            record(2, 1.7, Some((1.9, 0.45))),
            record(3, 1.2, Some((1.8, 0.52))),
        ]
    }

    fn unvalidated() -> Vec<EpochRecord> {
        vec![
            record(1, 2.5, None),
            record(2, 1.7, None),
            record(3, 1.2, None),
        ]
    }

    /// Asserts that `dir` holds only `curves.png`, a PNG of [`SIZE`].
    fn assert_only_the_png(dir: &Path) {
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["curves.png"]);
        let bytes = std::fs::read(dir.join("curves.png")).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), SIZE);
    }

    #[test]
    fn draws_a_validated_run() {
        let dir = tempfile::tempdir().unwrap();
        draw_curves(&dir.path().join("curves.png"), &validated()).unwrap();
        assert_only_the_png(dir.path());
    }

    #[test]
    fn draws_a_run_without_validation_and_replaces_the_old_picture() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        std::fs::write(&path, "old").unwrap();
        draw_curves(&path, &unvalidated()).unwrap();
        assert_only_the_png(dir.path());
    }

    #[test]
    fn draws_a_single_epoch_and_skips_non_finite_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        draw_curves(&path, &[record(1, 0.7, Some((f64::NAN, 0.4)))]).unwrap();
        assert_only_the_png(dir.path());
        let history = [
            record(1, f64::INFINITY, Some((1.0, f64::NAN))),
            record(2, f64::NAN, None),
        ];
        draw_curves(&path, &history).unwrap();
        assert_only_the_png(dir.path());
    }

    /// Any text drawn without a font fails (the family is never registered), so these passing
    /// shows that the no-font path draws none.
    #[test]
    fn draws_without_a_font() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        for history in [validated(), unvalidated(), vec![record(4, f64::NAN, None)]] {
            write_png(&path, &history, None).unwrap();
            assert_only_the_png(dir.path());
        }
        let unregistered = write_png(&path, &validated(), Some("no-such-font"));
        assert!(unregistered.is_err());
        assert_only_the_png(dir.path());
    }

    #[test]
    fn an_empty_history_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        draw_curves(&dir.path().join("curves.png"), &[]).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
