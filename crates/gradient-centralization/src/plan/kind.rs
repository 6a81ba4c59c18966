//! LayerKind: what a parameter is, read off the struct that owns it.

use std::fmt;

/// What kind of layer a parameter belongs to, read off the struct that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerKind {
    /// A fully connected weight; burn layout `[d_input, d_output]`, output axis 1.
    Linear,
    /// A convolution weight (`Conv1d`, `Conv2d`, `Conv3d`, `DeformConv2d`); layout
    /// `[out, in/groups, k...]`, output axis 0. The field is the number of spatial dimensions.
    Conv(u8),
    /// A transposed convolution weight; layout `[in, out/groups, k...]`, output axis 1 within each
    /// group.
    ConvTranspose {
        /// Number of spatial dimensions (1, 2 or 3).
        dims: u8,
        /// The layer's groups: read from its bias (`groups = out / (out/groups)`) or given by a
        /// [`Rule::Groups`](crate::Rule::Groups). `None` when neither says: burn keeps `groups` in
        /// a plain field that a module walk cannot see, so a transposed convolution without a bias
        /// does not reveal it.
        groups: Option<usize>,
    },
    /// An embedding table `[n, d]`: rows are lookups, not fan-ins.
    Embedding,
    /// A normalization layer's scale or shift.
    Norm,
    /// A bias vector.
    Bias,
    /// A parameter of a struct this crate does not know; add a [`Rule`](crate::Rule) to centralize
    /// it.
    Other,
}

const NORMS: [&str; 5] = [
    "BatchNorm",
    "LayerNorm",
    "GroupNorm",
    "InstanceNorm",
    "RmsNorm",
];

impl LayerKind {
    /// The kind of a parameter named `field` owned by the struct `owner` (burn's container type,
    /// e.g. `"Struct:Conv2d"`). Transposed convolutions come out with unknown groups; the plan
    /// reads them from the bias.
    pub fn classify(owner: &str, field: &str) -> Self {
        let name = owner.strip_prefix("Struct:").unwrap_or(owner);
        if NORMS.contains(&name) {
            return LayerKind::Norm;
        }
        if field == "bias" {
            return LayerKind::Bias;
        }
        let conv_transpose = |dims| LayerKind::ConvTranspose { dims, groups: None };
        match (name, field) {
            ("Linear", "weight") => LayerKind::Linear,
            ("Conv1d", "weight") => LayerKind::Conv(1),
            ("Conv2d" | "DeformConv2d", "weight") => LayerKind::Conv(2),
            ("Conv3d", "weight") => LayerKind::Conv(3),
            ("ConvTranspose1d", "weight") => conv_transpose(1),
            ("ConvTranspose2d", "weight") => conv_transpose(2),
            ("ConvTranspose3d", "weight") => conv_transpose(3),
            ("Embedding", "weight") => LayerKind::Embedding,
            _ => LayerKind::Other,
        }
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerKind::Linear => write!(f, "linear"),
            LayerKind::Conv(n) => write!(f, "conv{n}d"),
            LayerKind::ConvTranspose {
                dims,
                groups: Some(1),
            } => write!(f, "conv_transpose{dims}d"),
            LayerKind::ConvTranspose {
                dims,
                groups: Some(groups),
            } => write!(f, "conv_transpose{dims}d/g{groups}"),
            LayerKind::ConvTranspose { dims, groups: None } => {
                write!(f, "conv_transpose{dims}d/g?")
            }
            LayerKind::Embedding => write!(f, "embedding"),
            LayerKind::Norm => write!(f, "norm"),
            LayerKind::Bias => write!(f, "bias"),
            LayerKind::Other => write!(f, "other"),
        }
    }
}
