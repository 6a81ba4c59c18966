//! How each arm's curve looks, so that every arm of a figure stays apart: one hue per optimizer
//! (SGD, Adam, ..., with or without Lookahead), its baseline solid, each of its GC arms (`_gc`,
//! `_gcc`, `_gc2`, `_gcc2`, the rank-rule forms) a dash pattern of its own in the same hue. A
//! label that names no preset gets a hue of its own, solid.

use gradient_centralization::{Family, Preset, Scope};
use plotters::style::RGBColor;

/// Ten hues that stay apart in print and for the common colour-vision deficiencies (the
/// Tableau 10 palette); an eleventh optimizer in one figure takes the first hue again.
pub const HUES: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Dash patterns (dash, gap in pixels) for an optimizer's GC arms, in the order they appear: a
/// sixth GC arm of one optimizer takes the first pattern again.
pub const DASHES: [(u32, u32); 5] = [(14, 7), (3, 5), (26, 8), (9, 14), (2, 12)];

/// One arm's look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub hue: RGBColor,
    /// `None`: a solid line (the baseline); else a dash and a gap, in pixels.
    pub dash: Option<(u32, u32)>,
}

/// The look of each of `labels`, in their order.
pub fn looks(labels: &[&str]) -> Vec<Look> {
    // Each optimizer's key in order of first appearance, and how many GC arms it has shown.
    let mut optimizers: Vec<(Optimizer, usize)> = Vec::new();
    labels
        .iter()
        .map(|label| {
            let (optimizer, baseline) = classify(label);
            let at = match optimizers.iter().position(|(o, _)| *o == optimizer) {
                Some(at) => at,
                None => {
                    optimizers.push((optimizer, 0));
                    optimizers.len() - 1
                }
            };
            let hue = HUES[at % HUES.len()];
            let dash = if baseline {
                None
            } else {
                let shown = &mut optimizers[at].1;
                *shown += 1;
                Some(DASHES[(*shown - 1) % DASHES.len()])
            };
            Look { hue, dash }
        })
        .collect()
}

/// What shares a hue: a preset's optimizer (with or without Lookahead), or an unknown label.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Optimizer {
    Preset { family: Family, lookahead: bool },
    Other(String),
}

/// The label's optimizer, and whether it is that optimizer's baseline (no GC). Each unknown
/// label is an optimizer of its own, drawn solid.
fn classify(label: &str) -> (Optimizer, bool) {
    match label.parse::<Preset>() {
        Ok(preset) => (
            Optimizer::Preset {
                family: preset.family,
                lookahead: preset.lookahead,
            },
            preset.scope == Scope::None,
        ),
        Err(_) => (Optimizer::Other(label.to_string()), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nine arms of the first study's figure (SGD, Adam, AdamW and Adagrad with their GC
    /// arms): the palette there repeated blue, red and green across optimizers; here no two
    /// arms look alike.
    #[test]
    fn every_arm_of_the_results_figure_looks_different() {
        let labels = [
            "sgd",
            "sgd_gc",
            "sgd_gcc",
            "adam",
            "adam_gc",
            "adamw",
            "adamw_gcc",
            "adagrad",
            "adagrad_gcc",
        ];
        let looks = looks(&labels);
        for (i, a) in looks.iter().enumerate() {
            for (j, b) in looks.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{} and {} look alike", labels[i], labels[j]);
            }
        }
        // Four optimizers, four hues; sgd, adam, adamw, adagrad solid.
        let hues: Vec<_> = looks.iter().map(|l| l.hue).collect();
        assert_eq!(hues[0], hues[1]);
        assert_eq!(hues[1], hues[2]);
        assert_eq!(hues[3], hues[4]);
        assert_ne!(hues[0], hues[3]);
        assert_ne!(hues[3], hues[5]);
        assert_ne!(hues[5], hues[7]);
        for baseline in [0, 3, 5, 7] {
            assert_eq!(looks[baseline].dash, None, "{}", labels[baseline]);
        }
    }

    /// A GC arm listed before its baseline is still the dashed one; the rank rule's arm and the
    /// update-placed ones differ from the layer-aware arm in the same hue.
    #[test]
    fn the_baseline_is_solid_whatever_the_order() {
        let looks = looks(&[
            "adam_gc",
            "adam",
            "adam_gc:rank_rule",
            "adam_gc2",
            "lookahead_adam",
        ]);
        assert_eq!(looks[1].dash, None);
        assert_eq!(looks[0].dash, Some(DASHES[0]));
        assert_eq!(looks[2].dash, Some(DASHES[1]));
        assert_eq!(looks[3].dash, Some(DASHES[2]));
        assert!(looks[..4].iter().all(|l| l.hue == looks[0].hue));
        // Lookahead around Adam is another optimizer.
        assert_ne!(looks[4].hue, looks[0].hue);
        assert_eq!(looks[4].dash, None);
    }

    /// Labels that name no preset each take their own hue.
    #[test]
    fn unknown_labels_take_their_own_hues() {
        let looks = looks(&["mine", "yours", "sgd"]);
        assert_ne!(looks[0].hue, looks[1].hue);
        assert_ne!(looks[1].hue, looks[2].hue);
        assert!(looks.iter().all(|l| l.dash.is_none()));
    }
}
