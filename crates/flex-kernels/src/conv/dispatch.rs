//! Which method computes each pass of a convolution: [`method`] reads the table of measured
//! thresholds below; [`with_method`] overrides it for tests and benches.
//!
//! The thresholds come from `benches/conv_layers.rs` on the project's 2-core AVX2 machine, the
//! direct kernel's bounds for its AVX-512 form from the same bench on the AVX-512 machine that
//! followed (docs/PERFORMANCE-LOG.md, "Convolution methods", has the figures).

use std::cell::Cell;

use super::geometry::{Geometry, flipped};
use super::{direct, shifted};

thread_local! {
    /// The method this thread was told to use, where it can (see [`with_method`]).
    static METHOD: Cell<Option<Method>> = const { Cell::new(None) };
}

/// How a convolution is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Through the patch matrix (any convolution).
    Im2col,
    /// A product per kernel tap over a padded copy of the image (stride 1 only; see
    /// [`super::shifted`]).
    Shifted,
    /// The input gradient as a forward convolution of the output gradient, with the kernel
    /// turned by 180 degrees and its channel axes swapped (stride 1 and padding at most `(k -
    /// 1)·dilation` only; see [`flipped`]), through the patch matrix when forced, else by the
    /// forward pass's own pick. The other passes use im2col.
    Flipped,
    /// The forward pass and the weight gradient by register-blocked kernels over a padded copy
    /// of the image (stride 1 and a CPU with AVX2 and FMA only; see [`super::direct`]); forced,
    /// the input gradient as the flipped forward convolution on the same forward kernel.
    Direct,
}

/// Runs `f` with convolutions on this thread computed by `method` where it applies (`Shifted`
/// needs stride 1; `Flipped` stride 1 and only computes input gradients), elsewhere by im2col,
/// instead of the methods chosen for their sizes: to compare them.
pub fn with_method<R>(method: Method, f: impl FnOnce() -> R) -> R {
    crate::with_setting(&METHOD, Some(method), f)
}

/// One of the three computations of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Forward,
    WeightGrad,
    InputGrad,
}

/// The method for `pass` of `g`: the one [`with_method`] asked for where it applies, else the
/// first row of [`RULES`] that holds, else im2col.
pub fn method(g: &Geometry, pass: Pass) -> Method {
    match METHOD.get() {
        Some(Method::Shifted) if shifted::fits(g) => Method::Shifted,
        Some(Method::Flipped | Method::Direct)
            if pass == Pass::InputGrad && flipped(g).is_some() =>
        {
            Method::Flipped
        }
        Some(Method::Direct) if pass != Pass::InputGrad && direct::fits(g) => Method::Direct,
        Some(_) => Method::Im2col,
        None => pick(g, pass).unwrap_or(Method::Im2col),
    }
}

/// One row of the dispatch table: `method` computes `pass` where the method fits `g` (its
/// stride, padding and CPU needs), the kernel has more than one tap, and every bound holds.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub pass: Pass,
    pub method: Method,
    /// Only convolutions without groups (grouped ones were not measured).
    pub ungrouped: bool,
    /// Output channels per group, at most.
    pub max_out_channels: usize,
    /// Output channels per group, at most, where the direct kernel runs in its AVX-512 form
    /// (measured apart: the 16-lane kernels stay ahead of the products further); none: as
    /// `max_out_channels`.
    pub max_out_channels_avx512: Option<usize>,
    /// Input channels per group, at least.
    pub min_in_channels: usize,
    /// Output pixels per image, at least.
    pub min_pixels: usize,
    /// Multiply-adds per image and group of the pass, at least (`cg·og·kh·kw` times the output
    /// pixels; for the input gradient, the input pixels).
    pub min_work: usize,
    /// Only where the flipped forward convolution itself goes to [`Method::Direct`].
    pub turned_direct: bool,
}

const ANY: Rule = Rule {
    pass: Pass::Forward,
    method: Method::Im2col,
    ungrouped: false,
    max_out_channels: usize::MAX,
    max_out_channels_avx512: None,
    min_in_channels: 0,
    min_pixels: 0,
    min_work: 0,
    turned_direct: false,
};

/// The measured dispatch table, first match wins (within a pass, the faster method first),
/// from `benches/conv_layers.rs` on ResNet-20's, ResNet-50's and the small CNN's layers. Every
/// row also needs a kernel of more than one tap and a method that fits the convolution.
///
/// | pass | method | groups | out ch. | in ch. | pixels | work |
/// |---|---|---|---|---|---|---|
/// | input grad | flipped, on the direct kernel | none | | >= 3 | | |
/// | input grad | flipped, through im2col | none | | >= 16 | | >= 2^21 |
/// | forward | direct | any | <= 64 (AVX-512: <= 256) | >= 1 | | |
/// | weight grad | direct | any | <= 64 (AVX-512: <= 128) | >= 3 | | |
/// | weight grad | shifted | none | <= 32 | >= 3 | >= 256 | |
/// | input grad | shifted | none | <= 16 | >= 3 | >= 256 | |
///
/// docs/PERFORMANCE-LOG.md ("Convolution methods") keeps the measurements behind each bound.
pub const RULES: [Rule; 6] = [
    Rule {
        pass: Pass::InputGrad,
        method: Method::Flipped,
        ungrouped: true,
        min_in_channels: 3,
        turned_direct: true,
        ..ANY
    },
    Rule {
        pass: Pass::InputGrad,
        method: Method::Flipped,
        ungrouped: true,
        min_in_channels: 16,
        min_work: 1 << 21,
        ..ANY
    },
    Rule {
        pass: Pass::Forward,
        method: Method::Direct,
        max_out_channels: 64,
        max_out_channels_avx512: Some(256),
        min_in_channels: 1,
        ..ANY
    },
    Rule {
        pass: Pass::WeightGrad,
        method: Method::Direct,
        max_out_channels: 64,
        max_out_channels_avx512: Some(128),
        min_in_channels: 3,
        ..ANY
    },
    Rule {
        pass: Pass::WeightGrad,
        method: Method::Shifted,
        ungrouped: true,
        max_out_channels: 32,
        min_in_channels: 3,
        min_pixels: 256,
        ..ANY
    },
    Rule {
        pass: Pass::InputGrad,
        method: Method::Shifted,
        ungrouped: true,
        max_out_channels: 16,
        min_in_channels: 3,
        min_pixels: 256,
        ..ANY
    },
];

impl Rule {
    /// Whether this row picks its method for `g`.
    pub fn holds(&self, g: &Geometry) -> bool {
        let fits = match self.method {
            Method::Im2col => true,
            Method::Shifted => shifted::fits(g),
            Method::Flipped => flipped(g).is_some(),
            Method::Direct => direct::fits(g),
        };
        let pixels = match self.pass {
            Pass::InputGrad => g.h * g.w,
            Pass::Forward | Pass::WeightGrad => g.oh * g.ow,
        };
        let max_out_channels = match self.max_out_channels_avx512 {
            Some(wide) if direct::runs_avx512() => wide,
            _ => self.max_out_channels,
        };
        fits && g.kh * g.kw > 1
            && (!self.ungrouped || g.groups == 1)
            && g.og() <= max_out_channels
            && g.cg() >= self.min_in_channels
            && g.oh * g.ow >= self.min_pixels
            && g.cg() * g.og() * g.kh * g.kw * pixels >= self.min_work
            && (!self.turned_direct
                || flipped(g).is_some_and(|t| pick(&t, Pass::Forward) == Some(Method::Direct)))
    }
}

/// The first row of [`RULES`] for `pass` that holds for `g`.
fn pick(g: &Geometry, pass: Pass) -> Option<Method> {
    RULES
        .iter()
        .find(|rule| rule.pass == pass && rule.holds(g))
        .map(|rule| rule.method)
}

#[cfg(test)]
mod tests {
    use burn::tensor::ops::ConvOptions;

    use super::*;

    /// Each method where it was measured faster. With the direct kernel (AVX2 and FMA): the
    /// forward pass for kernels above 1x1 with up to 64 output channels, the weight gradient too
    /// from 3 input channels, the input gradient as the flipped forward convolution from 3 input
    /// channels. Else, and beyond those: the flipped input gradient for stride-1 kernels
    /// above 1x1 from 16 input channels and 2^21 multiply-adds per image; the shifted method for
    /// the weight gradient up to 32 output channels and the input gradient up to 16, stride 1,
    /// kernels above 1x1, at least 3 input channels and 16x16 output pixels only. (`d(m)`: the
    /// direct kernel where the CPU has it, else `m`; `f(m)` likewise the flipped input gradient;
    /// `w(m)` the direct kernel where it runs in its AVX-512 form, whose forward pass goes up to
    /// 256 output channels and weight gradient up to 128.)
    #[test]
    fn picks_each_pass_its_measured_method() {
        let pick_on = |c: usize, o: usize, k: usize, stride: usize, size: usize| {
            let options = ConvOptions::new([stride; 2], [k / 2; 2], [1, 1], 1);
            let g = Geometry::new([2, c, size, size], [o, c, k, k], &options).unwrap();
            [Pass::Forward, Pass::WeightGrad, Pass::InputGrad].map(|p| method(&g, p))
        };
        let pick = |c, o, k, stride| pick_on(c, o, k, stride, 16);
        let pick_at = |c, o, size| pick_on(c, o, 3, 1, size);
        use Method::{Direct as D, Flipped as F, Im2col as I, Shifted as S};
        let has = direct::available();
        let d = |m| if has { D } else { m };
        let f = |m| if has { F } else { m };
        assert_eq!(pick(16, 16, 3, 1), [d(I), d(S), f(S)]);
        assert_eq!(pick_at(16, 16, 32), [d(I), d(S), F]);
        assert_eq!(pick(32, 32, 3, 1), [d(I), d(S), F]);
        assert_eq!(pick(64, 64, 3, 1), [d(I), d(I), F]);
        // With the AVX-512 kernels, the direct forward pass up to 256 output channels and the
        // weight gradient up to 128 (the input gradient follows the flipped forward pass).
        let wide = direct::runs_avx512();
        let w = |m| if wide { D } else { m };
        assert_eq!(pick(128, 128, 3, 1), [w(I), w(I), F]);
        assert_eq!(pick(256, 256, 3, 1), [w(I), I, F]);
        assert_eq!(pick(257, 257, 3, 1), [I, I, F]);
        assert_eq!(pick(8, 256, 3, 1), [w(I), I, f(I)]);
        if wide {
            let on_avx2 = direct::with_avx2(|| [pick(128, 128, 3, 1), pick(16, 65, 3, 1)]);
            assert_eq!(on_avx2, [[I, I, F], [I, I, F]]);
        }
        assert_eq!(pick(16, 16, 3, 2), [I, I, I]);
        assert_eq!(pick(16, 16, 1, 1), [I, I, I]);
        assert_eq!(pick(3, 16, 3, 1), [d(I), d(S), f(S)]);
        assert_eq!(pick(8, 16, 3, 1), [d(I), d(S), f(S)]);
        assert_eq!(pick(2, 16, 3, 1), [d(I), I, I]);
        assert_eq!(pick(1, 16, 3, 1), [d(I), I, I]);
        assert_eq!(pick_at(16, 32, 14), [d(I), d(I), f(I)]);
        assert_eq!(pick_at(32, 32, 16), [d(I), d(S), F]);
        assert_eq!(pick_at(32, 32, 8), [d(I), d(I), f(I)]);
        assert_eq!(pick(16, 65, 3, 1), [w(I), w(I), F]);
        assert_eq!(
            with_method(Method::Shifted, || pick(64, 64, 1, 1)),
            [S, S, S]
        );
        assert_eq!(
            with_method(Method::Im2col, || pick(16, 16, 3, 1)),
            [I, I, I]
        );
        // Forced, the flipped input gradient wherever it applies: stride 1 with at most
        // (k - 1)·dilation of padding (here 3 rows of padding against 2 for a 3x3 kernel: im2col).
        assert_eq!(with_method(F, || pick(64, 64, 3, 1)), [I, I, F]);
        assert_eq!(with_method(F, || pick(64, 64, 1, 1)), [I, I, F]);
        assert_eq!(with_method(F, || pick(64, 64, 3, 2)), [I, I, I]);
        // Forced, the direct kernel wherever it applies (stride 1), the input gradient as the
        // flipped forward convolution.
        if has {
            assert_eq!(with_method(D, || pick(64, 64, 1, 1)), [D, D, F]);
            assert_eq!(with_method(D, || pick(128, 128, 3, 1)), [D, D, F]);
            assert_eq!(with_method(D, || pick(64, 64, 3, 2)), [I, I, I]);
        }
        let padded = ConvOptions::new([1, 1], [3, 1], [1, 1], 1);
        let g = Geometry::new([2, 8, 9, 9], [8, 8, 3, 3], &padded).unwrap();
        assert_eq!(with_method(F, || method(&g, Pass::InputGrad)), I);
    }
}
