//! Curves per epoch, one line per arm (mean over seeds) with a band from the lowest to the highest
//! seed, as SVG and PNG. Each arm keeps its look ([`super::style`]); the legend stands in a
//! column right of the chart, never over the curves.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{Look, looks};
use super::{Arm, per_epoch};
use crate::train::EpochMetrics;

/// The chart's own size, left of the legend column.
const CHART: (u32, u32) = (900, 600);

/// The legend column: its margins and line sample, the height of an entry, and the width of
/// one character of its labels (an upper bound for the embedded font at [`LEGEND_FONT`]).
const LEGEND_PAD: i32 = 16;
const LEGEND_SAMPLE: i32 = 64;
const LEGEND_ROW: i32 = 30;
const LEGEND_FONT: u32 = 18;
const LEGEND_CHAR: u32 = 11;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The PNG backend draws text itself: give it an embedded font so no system font is needed.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

struct Curve<'a> {
    title: &'a str,
    y_label: &'a str,
    file: &'a str,
    value: fn(&EpochMetrics) -> f64,
}

const CURVES: [Curve<'static>; 2] = [
    Curve {
        title: "Training loss",
        y_label: "cross-entropy",
        file: "loss",
        value: |m| m.train_loss,
    },
    Curve {
        title: "Test accuracy",
        y_label: "top-1 (%)",
        file: "accuracy",
        value: |m| m.test_top1,
    },
];

/// One figure: per series (arm), points `(x, mean, lowest, highest)` over seeds, drawn as a
/// line through the means in a band from the lowest to the highest.
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Names for the x positions 0, 1, ... (a grid's values, evenly spaced); `None`: a numeric
    /// axis from 1 (epochs).
    pub x_names: Option<Vec<String>>,
    pub series: Vec<Vec<(f64, f64, f64, f64)>>,
    /// Per series, the x positions where some of its runs diverged: a cross in its hue at the
    /// foot of the chart (their points are the other runs' or absent). Empty: none.
    pub diverged: Vec<Vec<f64>>,
}

/// Write `loss.{svg,png}` and `accuracy.{svg,png}` into `dir`.
pub fn curves(arms: &[Arm], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for curve in &CURVES {
        let series = arms
            .iter()
            .map(|arm| {
                per_epoch(arm, curve.value)
                    .into_iter()
                    .map(|(epoch, values)| spread(epoch as f64, &values))
                    .collect()
            })
            .collect();
        let figure = Figure {
            title: curve.title.into(),
            x_label: "epoch".into(),
            y_label: curve.y_label.into(),
            x_names: None,
            series,
            diverged: Vec::new(),
        };
        written.extend(write(&figure, &legend(arms), dir, curve.file)?);
    }
    Ok(written)
}

/// `(x, mean, lowest, highest)` of `values`.
pub fn spread(x: f64, values: &[f64]) -> (f64, f64, f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (x, mean, lo, hi)
}

/// Each arm's label and its name in a legend: the label and its number of runs drawn (those
/// that did not diverge), and of those that diverged.
pub fn legend(arms: &[Arm]) -> Vec<(String, String)> {
    arms.iter()
        .map(|arm| {
            let drawn = arm.runs.len() - arm.diverged();
            let name = match arm.diverged() {
                0 => format!("{} (n={drawn})", arm.label),
                d => format!("{} (n={drawn}, {d} diverged)", arm.label),
            };
            (arm.label.clone(), name)
        })
        .collect()
}

/// Writes `figure` as `<file>.svg` and `<file>.png` into `dir`, a series per entry of `legend`
/// (the arm's label, which sets its look, and the name shown).
pub fn write(
    figure: &Figure,
    legend: &[(String, String)],
    dir: &Path,
    file: &str,
) -> Result<Vec<PathBuf>> {
    register_font();
    let labels: Vec<&str> = legend.iter().map(|(label, _)| label.as_str()).collect();
    let names: Vec<String> = legend.iter().map(|(_, name)| name.clone()).collect();
    let looks = looks(&labels);
    let widest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as u32;
    let legend = 2 * LEGEND_PAD as u32 + LEGEND_SAMPLE as u32 + 12 + LEGEND_CHAR * widest;
    let size = (CHART.0 + legend, CHART.1);
    let svg = dir.join(format!("{file}.svg"));
    let area = SVGBackend::new(&svg, size).into_drawing_area();
    draw(area, figure, &names, &looks, file)?;
    let png = dir.join(format!("{file}.png"));
    let area = BitMapBackend::new(&png, size).into_drawing_area();
    draw(area, figure, &names, &looks, file)?;
    Ok(vec![svg, png])
}

/// One figure: the chart in the left `CHART.0` pixels, the legend (`names` in `looks`) right
/// of it.
fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    figure: &Figure,
    names: &[String],
    looks: &[Look],
    file: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {file}: {e:?}");
    area.fill(&WHITE).map_err(err)?;
    let (area, legend) = area.split_horizontally(CHART.0);
    let all = figure.series.iter().flatten();
    let x_range = match &figure.x_names {
        Some(names) => -0.5..names.len() as f64 - 0.5,
        None => 1.0..all.clone().map(|p| p.0).fold(2.0, f64::max),
    };
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.2), hi.max(p.3))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(&area)
        .caption(&figure.title, ("sans-serif", 28))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, (lo - pad)..(hi + pad))
        .map_err(err)?;
    // A grid's x positions by their names, nothing between them.
    let x_name = |x: &f64| {
        let i = x.round();
        let names = figure.x_names.as_deref().unwrap_or_default();
        ((x - i).abs() < 1e-6 && i >= 0.0)
            .then(|| names.get(i as usize).cloned())
            .flatten()
            .unwrap_or_default()
    };
    let mut mesh = chart.configure_mesh();
    if let Some(names) = &figure.x_names {
        mesh.x_labels(names.len() * 2 + 1)
            .x_label_formatter(&x_name);
    }
    mesh.x_desc(&figure.x_label)
        .y_desc(&figure.y_label)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(err)?;
    // Each series' crosses a little apart, so that every arm's shows where several diverged.
    let arms = figure.diverged.len().max(1) as f64;
    for (i, (xs, look)) in figure.diverged.iter().zip(looks).enumerate() {
        let dx = 0.3 * ((i as f64 + 0.5) / arms - 0.5);
        let cross = |&x: &f64| Cross::new((x + dx, lo - pad / 2.0), 8, look.hue.stroke_width(3));
        chart.draw_series(xs.iter().map(cross)).map_err(err)?;
    }
    for (points, look) in figure.series.iter().zip(looks) {
        let band: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.0, p.3))
            .chain(points.iter().rev().map(|p| (p.0, p.2)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                band,
                look.hue.mix(0.15).filled(),
            )))
            .map_err(err)?;
        let line: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
        let style = look.hue.stroke_width(3);
        if figure.x_names.is_some() {
            // A grid's points are few: mark each.
            chart
                .draw_series(line.iter().map(|&p| Circle::new(p, 5, look.hue.filled())))
                .map_err(err)?;
        }
        match look.dash {
            None => chart
                .draw_series(std::iter::once(PathElement::new(line, style)))
                .map(|_| ()),
            Some((dash, gap)) => chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    line, dash, gap, style,
                )))
                .map(|_| ()),
        }
        .map_err(err)?;
    }
    // The legend: a sample of each arm's line, then its name, one row each.
    for (i, (name, look)) in names.iter().zip(looks).enumerate() {
        let y = 2 * LEGEND_PAD + LEGEND_ROW * i as i32;
        let sample = [(LEGEND_PAD, y), (LEGEND_PAD + LEGEND_SAMPLE, y)];
        let style = look.hue.stroke_width(3);
        match look.dash {
            None => legend.draw(&PathElement::new(sample, style)),
            Some((dash, gap)) => legend.draw(&DashedPathElement::new(sample, dash, gap, style)),
        }
        .map_err(err)?;
        let font = TextStyle::from(("sans-serif", LEGEND_FONT).into_font())
            .pos(Pos::new(HPos::Left, VPos::Center));
        legend
            .draw(&Text::new(
                name.as_str(),
                (LEGEND_PAD + LEGEND_SAMPLE + 12, y),
                font,
            ))
            .map_err(err)?;
    }
    area.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::arms;
    use crate::report::tests::summary;

    #[test]
    fn writes_svg_and_png_files_with_the_arms_named() {
        let dir = crate::test_dir("plot");
        let arms = arms(vec![
            summary("sgd", 0, &[1.0, 0.5, 0.3], &[50.0, 60.0, 70.0]),
            summary("sgd_gc", 0, &[0.8, 0.3, 0.2], &[55.0, 66.0, 72.0]),
        ]);
        let written = curves(&arms, &dir).unwrap();
        assert_eq!(written.len(), 4);
        let svg = std::fs::read_to_string(dir.join("loss.svg")).unwrap();
        assert!(svg.contains("sgd_gc (n=1)") && svg.contains("Training loss"));
        let png = std::fs::read(dir.join("accuracy.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The legend's names stand right of the chart, where no curve is drawn (the legend sat in
    /// the chart's upper right corner before, over the curves of a rising accuracy).
    #[test]
    fn the_legend_stands_beside_the_chart() {
        let dir = crate::test_dir("plot-legend");
        let arms = arms(vec![
            summary("sgd", 0, &[1.0, 0.5, 0.3], &[50.0, 60.0, 70.0]),
            summary("sgd_gc", 0, &[0.8, 0.3, 0.2], &[55.0, 66.0, 72.0]),
            summary("adam", 0, &[0.9, 0.4, 0.3], &[52.0, 61.0, 69.0]),
        ]);
        curves(&arms, &dir).unwrap();
        let svg = std::fs::read_to_string(dir.join("accuracy.svg")).unwrap();
        let mut names = 0;
        for text in svg.split("<text").skip(1) {
            let body = &text[text.find('>').unwrap() + 1..text.find("</text>").unwrap()];
            if !body.contains("(n=") {
                continue;
            }
            let x: f64 = text
                .split("x=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                x > f64::from(CHART.0),
                "{body} at x = {x}, inside the chart"
            );
            names += 1;
        }
        assert_eq!(names, 3);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
