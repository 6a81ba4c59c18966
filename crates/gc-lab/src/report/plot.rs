//! Curves per epoch, one line per arm (mean over seeds) with a band from the lowest to the highest
//! seed, as SVG and PNG.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Arm, per_epoch};
use crate::train::EpochMetrics;

const SIZE: (u32, u32) = (960, 600);

/// Colours that stay apart for the first arms (baseline first, GC variant second).
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

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
    let mut written = Vec::new();
    for curve in &CURVES {
        let svg = dir.join(format!("{}.svg", curve.file));
        draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), arms, curve)?;
        let png = dir.join(format!("{}.png", curve.file));
        draw(
            BitMapBackend::new(&png, SIZE).into_drawing_area(),
            arms,
            curve,
        )?;
        written.push(svg);
        written.push(png);
    }
    Ok(written)
}

fn draw<DB: DrawingBackend>(area: DrawingArea<DB, Shift>, arms: &[Arm], curve: &Curve) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {}: {e:?}", curve.file);
    area.fill(&WHITE).map_err(err)?;
    // Per arm: its legend name and, per epoch, (epoch, mean, lowest, highest) over seeds.
    type Points = Vec<(usize, f64, f64, f64)>;
    let series: Vec<(String, Points)> = arms
        .iter()
        .map(|arm| {
            let points = per_epoch(arm, curve.value)
                .into_iter()
                .map(|(epoch, values)| {
                    let mean = values.iter().sum::<f64>() / values.len() as f64;
                    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
                    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    (epoch, mean, lo, hi)
                })
                .collect();
            (format!("{} (n={})", arm.label, arm.runs.len()), points)
        })
        .collect();
    let all = series.iter().flat_map(|(_, p)| p);
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
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let band: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.0 as f64, p.3))
            .chain(points.iter().rev().map(|p| (p.0 as f64, p.2)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                band,
                colour.mix(0.18).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0 as f64, p.1)),
                colour.stroke_width(3),
            ))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 18))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
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
}
