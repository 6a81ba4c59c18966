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

/// Write `loss.{svg,png}` and `accuracy.{svg,png}` into `dir`.
pub fn curves(arms: &[Arm], dir: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    let names: Vec<String> = arms
        .iter()
        .map(|arm| format!("{} (n={})", arm.label, arm.runs.len()))
        .collect();
    let labels: Vec<&str> = arms.iter().map(|arm| arm.label.as_str()).collect();
    let looks = looks(&labels);
    let widest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as u32;
    let legend = 2 * LEGEND_PAD as u32 + LEGEND_SAMPLE as u32 + 12 + LEGEND_CHAR * widest;
    let size = (CHART.0 + legend, CHART.1);
    let mut written = Vec::new();
    for curve in &CURVES {
        let svg = dir.join(format!("{}.svg", curve.file));
        let area = SVGBackend::new(&svg, size).into_drawing_area();
        draw(area, arms, &names, &looks, curve)?;
        let png = dir.join(format!("{}.png", curve.file));
        let area = BitMapBackend::new(&png, size).into_drawing_area();
        draw(area, arms, &names, &looks, curve)?;
        written.push(svg);
        written.push(png);
    }
    Ok(written)
}

/// One figure: the chart in the left `CHART.0` pixels, the legend (`names` in `looks`) right
/// of it.
fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    arms: &[Arm],
    names: &[String],
    looks: &[Look],
    curve: &Curve,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {}: {e:?}", curve.file);
    area.fill(&WHITE).map_err(err)?;
    let (area, legend) = area.split_horizontally(CHART.0);
    // Per arm, per epoch: (epoch, mean, lowest, highest) over seeds.
    let series: Vec<Vec<(usize, f64, f64, f64)>> = arms
        .iter()
        .map(|arm| {
            per_epoch(arm, curve.value)
                .into_iter()
                .map(|(epoch, values)| {
                    let mean = values.iter().sum::<f64>() / values.len() as f64;
                    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
                    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    (epoch, mean, lo, hi)
                })
                .collect()
        })
        .collect();
    let all = series.iter().flatten();
    let max_epoch = all.clone().map(|p| p.0).max().unwrap_or(1).max(2);
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.2), hi.max(p.3))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(&area)
        .caption(curve.title, ("sans-serif", 28))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(1f64..max_epoch as f64, (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(curve.y_label)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(err)?;
    for (points, look) in series.iter().zip(looks) {
        let band: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.0 as f64, p.3))
            .chain(points.iter().rev().map(|p| (p.0 as f64, p.2)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                band,
                look.hue.mix(0.15).filled(),
            )))
            .map_err(err)?;
        let line: Vec<(f64, f64)> = points.iter().map(|p| (p.0 as f64, p.1)).collect();
        let style = look.hue.stroke_width(3);
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
