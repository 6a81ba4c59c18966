//! The decision for one parameter: scope, rules, and the reasons a parameter is left alone.

use std::fmt;

use super::LayerKind;
use crate::centralize::Centralize;

/// Which parameters GC applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// Convolution and fully connected weights: the seed's "_GC" optimizers.
    #[default]
    ConvLinear,
    /// Convolution weights only (Conv1d, Conv2d, Conv3d and transposed convolutions): the seed's
    /// "_GCC" optimizers, with Conv1d included by definition.
    ConvOnly,
    /// Nothing: the plain baseline.
    None,
    /// The seed's literal rule, for parity checks: centralize every tensor whose PyTorch-layout rank
    /// is greater than `above` (1 for "_GC", 3 for "_GCC"), over every axis but PyTorch's axis 0,
    /// whatever the layer. Quirks included: Conv1d is skipped by "_GCC", transposed convolutions are
    /// centralized per input channel, embeddings per row.
    RankRule {
        /// The rank a tensor must exceed to be centralized.
        above: usize,
    },
    /// What a port that picks GC's axis by rank alone does on burn's own layouts, kept for
    /// measuring its cost: every tensor whose burn-layout rank is greater than `above` is
    /// centralized keeping burn's axis 0, whatever the layer. Convolutions come out as under
    /// [`Scope::RankRule`]; a `Linear` weight, `[d_input, d_output]` in burn, is centralized per
    /// input (each row over the output units) instead of per output unit over its fan-in. Not
    /// GC as the paper defines it.
    RankOnBurnLayout {
        /// The rank a tensor must exceed to be centralized.
        above: usize,
    },
}

impl Scope {
    /// The seed's "_GC" rank rule (`rank > 1`).
    pub const RANK_RULE_GC: Scope = Scope::RankRule { above: 1 };
    /// The seed's "_GCC" rank rule (`rank > 3`).
    pub const RANK_RULE_GCC: Scope = Scope::RankRule { above: 3 };
    /// The "_GC" rank rule on burn's layouts (`rank > 1`, burn's axis 0 kept).
    pub const BURN_RANK_GC: Scope = Scope::RankOnBurnLayout { above: 1 };
    /// The "_GCC" rank rule on burn's layouts (`rank > 3`, burn's axis 0 kept).
    pub const BURN_RANK_GCC: Scope = Scope::RankOnBurnLayout { above: 3 };
}

/// How the weights of transposed convolutions are centralized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConvTransposeRule {
    /// Per output channel, over the input channels of its group and the kernel (the semantic
    /// definition: the output channel's fan-in). Needs the layer's groups. Default.
    #[default]
    OutputChannel,
    /// Per input channel over everything else: what the seed's rank rule does to PyTorch's
    /// `(in, out/groups, k...)` layout.
    SeedInputChannel,
}

/// A user rule for parameters whose path matches a regular expression.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Rule {
    /// Never centralize.
    Skip,
    /// Centralize with this operation, whatever the scope.
    Centralize(Centralize),
    /// Treat the parameter as this kind of layer; the scope then decides.
    Kind(LayerKind),
    /// The parameter is a transposed convolution's weight with this many groups (1 for an
    /// ungrouped one); the scope then decides. The only way to plan a transposed convolution
    /// without a bias per output channel: its groups are invisible to a module walk.
    Groups(usize),
}

/// Why a parameter is not centralized.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The scope is [`Scope::None`].
    ScopeNone,
    /// The scope covers convolutions only.
    NotConv,
    /// Biases, norm scales/shifts and embeddings are not fan-in weights.
    NotFanIn,
    /// A parameter of an unknown struct; a [`Rule`] can centralize it.
    Unknown,
    /// A rank rule: the tensor's rank (the same in PyTorch's and burn's layouts) is not above the
    /// threshold.
    Rank {
        /// The tensor's rank.
        rank: usize,
        /// The threshold it must exceed.
        above: usize,
    },
    /// Each output unit has a single input: GC would zero its gradient.
    FanInOne,
    /// The layer's operation does not fit the parameter's shape (a weight of an unexpected rank,
    /// say); the text says why.
    DoesNotFit(String),
    /// A transposed convolution without a bias: its groups cannot be read from the module, and
    /// centralizing across groups would mix independent output channels. A [`Rule::Groups`] gives
    /// them. [`GcConfig::init`](crate::GcConfig::init) refuses a plan with such a parameter.
    GroupsUnknown,
    /// A user rule said so.
    Rule(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::ScopeNone => write!(f, "scope is none"),
            SkipReason::NotConv => write!(f, "not a conv (conv-only scope)"),
            SkipReason::NotFanIn => write!(f, "not a fan-in weight"),
            SkipReason::Unknown => write!(f, "unknown layer: add a rule to centralize"),
            SkipReason::Rank { rank, above } => write!(f, "rank {rank} <= {above} (rank rule)"),
            SkipReason::FanInOne => write!(f, "fan-in 1: GC would zero it"),
            SkipReason::DoesNotFit(reason) => write!(f, "does not fit: {reason}"),
            SkipReason::GroupsUnknown => write!(
                f,
                "transposed conv without a bias: groups unknown, give them with Rule::Groups"
            ),
            SkipReason::Rule(pattern) => write!(f, "rule `{pattern}`"),
        }
    }
}

/// What the plan does with one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Centralize with this operation.
    Centralize(Centralize),
    /// Leave alone, for this reason.
    Skip(SkipReason),
}

impl Decision {
    /// The operation, when the parameter is centralized.
    pub fn centralize(&self) -> Option<Centralize> {
        match self {
            Decision::Centralize(op) => Some(*op),
            Decision::Skip(_) => None,
        }
    }
}

/// Decide from the layer kind alone, for a tensor of `shape` in burn layout.
pub(crate) fn decide(
    kind: LayerKind,
    shape: &[usize],
    scope: Scope,
    conv_transpose: ConvTransposeRule,
) -> Decision {
    let op = match (scope, kind) {
        (Scope::None, _) => return Decision::Skip(SkipReason::ScopeNone),
        (Scope::RankRule { above }, kind) => {
            if shape.len() <= above {
                return Decision::Skip(SkipReason::Rank {
                    rank: shape.len(),
                    above,
                });
            }
            // burn's Linear is the transpose of PyTorch's: PyTorch's axis 0 is burn's axis 1.
            // No fan-in check: the seed zeroes a fan-in-1 gradient, and this rule reproduces it.
            let axis = if kind == LayerKind::Linear { 1 } else { 0 };
            return Decision::Centralize(Centralize::along(axis));
        }
        (Scope::RankOnBurnLayout { above }, _) => {
            if shape.len() <= above {
                return Decision::Skip(SkipReason::Rank {
                    rank: shape.len(),
                    above,
                });
            }
            // Axis 0 of burn's layout, as a rank-based port would pick it: a Linear weight's
            // rows are its inputs. No fan-in check, as under the seed's rule.
            return Decision::Centralize(Centralize::along(0));
        }
        (_, LayerKind::Conv(_)) => Centralize::along(0),
        (_, LayerKind::ConvTranspose { groups, .. }) => match (conv_transpose, groups) {
            (ConvTransposeRule::OutputChannel, Some(groups)) => Centralize::grouped(1, groups),
            (ConvTransposeRule::OutputChannel, None) => {
                return Decision::Skip(SkipReason::GroupsUnknown);
            }
            (ConvTransposeRule::SeedInputChannel, _) => Centralize::along(0),
        },
        (Scope::ConvLinear, LayerKind::Linear) => Centralize::along(1),
        (Scope::ConvOnly, LayerKind::Linear) => return Decision::Skip(SkipReason::NotConv),
        (_, LayerKind::Embedding | LayerKind::Norm | LayerKind::Bias) => {
            return Decision::Skip(SkipReason::NotFanIn);
        }
        (_, LayerKind::Other) => return Decision::Skip(SkipReason::Unknown),
    };
    checked(op, shape)
}

/// The operation, unless it does not fit the shape or the fan-in is 1.
pub(crate) fn checked(op: Centralize, shape: &[usize]) -> Decision {
    match op.fits(shape) {
        Err(reason) => Decision::Skip(SkipReason::DoesNotFit(reason)),
        Ok(()) if op.fan_in(shape) <= 1 => Decision::Skip(SkipReason::FanInOne),
        Ok(()) => Decision::Centralize(op),
    }
}
