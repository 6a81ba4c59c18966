//! The GC operation on one tensor along one output axis.

use burn::tensor::{DType, FloatDType, Tensor};

/// Subtract from a weight gradient its mean over the fan-in of every output unit.
///
/// For a tensor `G` whose axis `axis` indexes output units, GC is
///
/// ```text
/// GC(G)[.., o, ..] = G[.., o, ..] - mean(G[.., o, ..])      (mean over every axis but `axis`)
/// ```
///
/// that is `P g` with `P = I - e eᵀ`, `e = 1/√M` per output unit and `M` its fan-in
/// (Yong et al., "Gradient Centralization", ECCV 2020, eq. 2 and 4).
///
/// `groups > 1` describes a grouped transposed convolution in burn's layout
/// `[in, out/groups, k...]` (with `axis = 1`): output channel `g·(out/groups) + j` gathers only the input
/// rows of group `g`, so its fan-in is `in/groups · Πk`, not `in · Πk`.
///
/// Gradients in f16/bf16 are centralized in f32 (mean accumulated and subtracted in f32, then cast
/// back), so a large fan-in does not lose the mean to rounding.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use gradient_centralization::Centralize;
///
/// let device = Device::flex();
/// // A burn Linear gradient is [d_input, d_output]: output units are columns (axis 1).
/// let g = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 6.0]], &device);
/// let centered = Centralize::along(1).apply(g);
/// let expected = Tensor::<2>::from_floats([[-1.0, -2.0], [1.0, 2.0]], &device);
/// centered.into_data().assert_eq(&expected.into_data(), true);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Centralize {
    axis: usize,
    groups: usize,
}

impl Centralize {
    /// Centralize each slice at a fixed index of `axis` over every other axis.
    pub const fn along(axis: usize) -> Self {
        Self { axis, groups: 1 }
    }

    /// Centralize along `axis` where the axes before it are split into `groups` independent groups
    /// (grouped transposed convolutions). `groups` of 0 is taken as 1.
    pub const fn grouped(axis: usize, groups: usize) -> Self {
        let groups = if groups == 0 { 1 } else { groups };
        Self { axis, groups }
    }

    /// The output axis.
    pub const fn axis(&self) -> usize {
        self.axis
    }

    /// The number of groups the axes before the output axis are split into.
    pub const fn groups(&self) -> usize {
        self.groups
    }

    /// Whether this operation can apply to a tensor of `shape`: the axis exists and the groups
    /// divide the leading axes. Returns the reason when it cannot.
    pub fn fits(&self, shape: &[usize]) -> Result<(), String> {
        if self.axis >= shape.len() {
            return Err(format!(
                "axis {} does not exist in a rank-{} tensor",
                self.axis,
                shape.len()
            ));
        }
        let lead: usize = shape[..self.axis].iter().product();
        if self.groups > 1 && !lead.is_multiple_of(self.groups) {
            return Err(format!(
                "{} groups do not divide the {lead} leading elements",
                self.groups
            ));
        }
        Ok(())
    }

    /// Number of elements each output unit's mean is taken over (`M` in the paper).
    ///
    /// The shape must [fit](Self::fits).
    pub fn fan_in(&self, shape: &[usize]) -> usize {
        let lead: usize = shape[..self.axis].iter().product();
        let trail: usize = shape[self.axis + 1..].iter().product();
        lead / self.groups * trail
    }

    /// Apply GC to `tensor`.
    ///
    /// A tensor whose shape does not [fit](Self::fits) is returned unchanged; plans never produce
    /// such a pairing. A fan-in of 1 gives zero, as the arithmetic says: the layer-aware plans leave
    /// such tensors alone, the seed's rank rule does not.
    pub fn apply<const D: usize>(&self, tensor: Tensor<D>) -> Tensor<D> {
        if self.fits(&tensor.dims()).is_err() {
            return tensor;
        }
        match tensor.dtype() {
            DType::F16 | DType::BF16 => {
                let dtype = tensor.dtype();
                let wide = self.apply_same_dtype(tensor.cast(FloatDType::F32));
                wide.cast(dtype)
            }
            _ => self.apply_same_dtype(tensor),
        }
    }

    fn apply_same_dtype<const D: usize>(&self, tensor: Tensor<D>) -> Tensor<D> {
        let dims = tensor.dims();
        let lead: usize = dims[..self.axis].iter().product();
        let units = dims[self.axis];
        let trail: usize = dims[self.axis + 1..].iter().product();
        if self.groups == 1 && lead == 1 {
            // Output axis first (conv weights, PyTorch-layout linear): one row per unit.
            let rows = tensor.reshape([units, trail]);
            let mean = rows.clone().mean_dim(1);
            (rows - mean).reshape(dims)
        } else if self.groups == 1 && trail == 1 {
            // Output axis last (burn's Linear [d_input, d_output]): one column per unit.
            let cols = tensor.reshape([lead, units]);
            let mean = cols.clone().mean_dim(0);
            (cols - mean).reshape(dims)
        } else {
            let view = tensor.reshape([self.groups, lead / self.groups, units, trail]);
            let mean = view.clone().mean_dims(&[1, 3]);
            (view - mean).reshape(dims)
        }
    }
}

/// Where GC sits in an optimizer step.
///
/// The paper and the seed's canonical optimizers centralize the gradient; the seed's later
/// `*_GC2` optimizers (and `gc_loc=False` in its `algorithm-GC` folder) centralize the final update
/// instead, which keeps every centralized unit's weight mean fixed even under Adam's elementwise
/// scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Placement {
    /// Centralize the gradient (after coupled L2 decay, before momentum or moments). Default.
    #[default]
    Gradient,
    /// Centralize the final update `Δw` (the seed's "GC2" variants).
    Update,
}
