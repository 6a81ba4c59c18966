//! The sizes of one convolution and what follows from them.

use burn::tensor::ops::ConvOptions;

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Images.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Padding before the first row and column (the padding after only changes `oh`, `ow`).
    pub pad: [usize; 2],
    /// Dilation (rows, columns).
    pub dilation: [usize; 2],
    /// Groups.
    pub groups: usize,
}

impl Geometry {
    /// The geometry of `x` (`[n, c, h, w]`) convolved with `weight` (`[o, c / groups, kh, kw]`),
    /// or why the shapes do not fit together.
    pub fn new(
        x: [usize; 4],
        weight: [usize; 4],
        options: &ConvOptions<2>,
    ) -> Result<Self, String> {
        let [n, c, h, w] = x;
        let [o, cg, kh, kw] = weight;
        let groups = options.groups;
        let sizes = [kh, kw, options.stride[0], options.stride[1]];
        if sizes.contains(&0) || options.dilation.contains(&0) {
            return Err(format!(
                "kernel {kh}x{kw}, stride {:?} and dilation {:?} must all be at least 1",
                options.stride, options.dilation
            ));
        }
        if groups == 0 || c % groups != 0 || o % groups != 0 || cg != c / groups {
            return Err(format!(
                "input {x:?} and weight {weight:?} do not fit {groups} group(s): the weight's \
                 second axis must be input channels / groups and both channel counts divisible"
            ));
        }
        let out = |axis: usize, size: usize, k: usize| {
            let (begin, end) = options.padding[axis];
            let span = options.dilation[axis] * (k - 1) + 1;
            (size + begin + end)
                .checked_sub(span)
                .map(|room| room / options.stride[axis] + 1)
        };
        let (Some(oh), Some(ow)) = (out(0, h, kh), out(1, w, kw)) else {
            return Err(format!(
                "kernel {kh}x{kw} (dilation {:?}) is larger than the padded input {h}x{w} \
                 (padding {:?})",
                options.dilation, options.padding
            ));
        };
        Ok(Self {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            oh,
            ow,
            stride: options.stride,
            pad: options.padding.map(|(begin, _)| begin),
            dilation: options.dilation,
            groups,
        })
    }

    pub(super) fn cg(&self) -> usize {
        self.c / self.groups
    }

    pub(super) fn og(&self) -> usize {
        self.o / self.groups
    }

    /// Rows of the patch matrix: one group's fan-in.
    pub(super) fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }

    /// Columns of the patch matrix: output pixels.
    pub(super) fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Elements of one input image (all channels).
    pub(super) fn image_in(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output image (all channels).
    pub(super) fn image_out(&self) -> usize {
        self.o * self.p()
    }

    /// Whether the image itself is the patch matrix.
    pub(super) fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && (self.oh, self.ow) == (self.h, self.w)
    }

    /// Output positions `lo..hi` along one axis whose input position `pos * stride + offset` lies
    /// inside `0..size`.
    pub(super) fn valid(out: usize, size: usize, stride: usize, offset: isize) -> (usize, usize) {
        let lo = if offset >= 0 {
            0
        } else {
            ((-offset) as usize).div_ceil(stride)
        };
        let hi = if offset >= size as isize {
            0
        } else {
            ((size as isize - offset) as usize).div_ceil(stride)
        };
        (lo.min(out), hi.min(out).max(lo.min(out)))
    }
}

/// The input gradient of `g` as a forward convolution, where `g` has stride 1 and no more
/// padding than `(k - 1)·dilation` on either axis: `dy` (`[n, o, oh, ow]`) convolved with the
/// kernel turned by 180 degrees and its two channel axes swapped (per group `[og, cg, kh, kw]`
/// becomes `[cg, og, kh, kw]`), padded by `(k - 1)·dilation - pad`, gives `[n, c, h, w]`.
/// (Input pixel `y` takes output pixel `y + pad - ky·d` through tap `ky`; with `ky' = kh - 1 - ky`
/// that is `y + ky'·d - ((kh - 1)·d - pad)`, a forward convolution's tap `ky'`.) The product per
/// image is `dx[cg, P] = w'[cg, og·kh·kw] · col(dy)[og·kh·kw, P]`: as deep as the forward pass's
/// and without col2im's scattered additions, against im2col's `og` deep.
pub fn flipped(g: &Geometry) -> Option<Geometry> {
    if g.stride != [1, 1] {
        return None;
    }
    let reach = [(g.kh - 1) * g.dilation[0], (g.kw - 1) * g.dilation[1]];
    Some(Geometry {
        c: g.o,
        h: g.oh,
        w: g.ow,
        o: g.c,
        oh: g.h,
        ow: g.w,
        pad: [
            reach[0].checked_sub(g.pad[0])?,
            reach[1].checked_sub(g.pad[1])?,
        ],
        ..*g
    })
}
