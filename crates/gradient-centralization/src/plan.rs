//! One walk over a module: every parameter's path, shape, layer kind and GC decision.

use std::collections::BTreeMap;
use std::fmt;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use regex::Regex;

use crate::centralize::Centralize;
use crate::error::GcError;

/// What kind of layer a parameter belongs to, read off the struct that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// A fully connected weight; burn layout `[d_input, d_output]`, output axis 1.
    Linear,
    /// A convolution weight (`Conv1d`, `Conv2d`, `Conv3d`, `DeformConv2d`); layout
    /// `[out, in/groups, k...]`, output axis 0. The field is the number of spatial dimensions.
    Conv(u8),
    /// A transposed convolution weight; layout `[in, out/groups, k...]`, output axis 1 within each
    /// group. `groups` is inferred from the bias (`groups = out / (out/groups)`) or set by a rule.
    ConvTranspose {
        /// Number of spatial dimensions (1, 2 or 3).
        dims: u8,
        /// The layer's groups (1 when it cannot be inferred).
        groups: usize,
    },
    /// An embedding table `[n, d]`: rows are lookups, not fan-ins.
    Embedding,
    /// A normalization layer's scale or shift.
    Norm,
    /// A bias vector.
    Bias,
    /// A parameter of a struct this crate does not know; add a [`Rule`] to centralize it.
    Other,
}

impl LayerKind {
    /// The kind of a parameter named `field` owned by the struct `owner` (burn's container type,
    /// e.g. `"Struct:Conv2d"`).
    pub fn classify(owner: &str, field: &str) -> Self {
        let name = owner.strip_prefix("Struct:").unwrap_or(owner);
        if field == "bias" {
            return match name {
                "BatchNorm" | "LayerNorm" | "GroupNorm" | "InstanceNorm" | "RmsNorm" => {
                    LayerKind::Norm
                }
                _ => LayerKind::Bias,
            };
        }
        match (name, field) {
            ("Linear", "weight") => LayerKind::Linear,
            ("Conv1d", "weight") => LayerKind::Conv(1),
            ("Conv2d" | "DeformConv2d", "weight") => LayerKind::Conv(2),
            ("Conv3d", "weight") => LayerKind::Conv(3),
            ("ConvTranspose1d", "weight") => LayerKind::ConvTranspose { dims: 1, groups: 1 },
            ("ConvTranspose2d", "weight") => LayerKind::ConvTranspose { dims: 2, groups: 1 },
            ("ConvTranspose3d", "weight") => LayerKind::ConvTranspose { dims: 3, groups: 1 },
            ("Embedding", "weight") => LayerKind::Embedding,
            ("BatchNorm" | "LayerNorm" | "GroupNorm" | "InstanceNorm" | "RmsNorm", _) => {
                LayerKind::Norm
            }
            _ => LayerKind::Other,
        }
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerKind::Linear => write!(f, "linear"),
            LayerKind::Conv(n) => write!(f, "conv{n}d"),
            LayerKind::ConvTranspose { dims, groups: 1 } => write!(f, "conv_transpose{dims}d"),
            LayerKind::ConvTranspose { dims, groups } => {
                write!(f, "conv_transpose{dims}d/g{groups}")
            }
            LayerKind::Embedding => write!(f, "embedding"),
            LayerKind::Norm => write!(f, "norm"),
            LayerKind::Bias => write!(f, "bias"),
            LayerKind::Other => write!(f, "other"),
        }
    }
}

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
    SeedRank {
        /// The rank a tensor must exceed to be centralized.
        above: usize,
    },
}

impl Scope {
    /// The seed's "_GC" rank rule (`rank > 1`).
    pub const SEED_GC: Scope = Scope::SeedRank { above: 1 };
    /// The seed's "_GCC" rank rule (`rank > 3`).
    pub const SEED_GCC: Scope = Scope::SeedRank { above: 3 };
}

/// How the weights of transposed convolutions are centralized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConvTransposeRule {
    /// Per output channel, over the input channels of its group and the kernel (the semantic
    /// definition: the output channel's fan-in). Default.
    #[default]
    OutputChannel,
    /// Per input channel over everything else: what the seed's rank rule does to PyTorch's
    /// `(in, out/groups, k...)` layout.
    SeedInputChannel,
}

/// A user rule for parameters whose path matches a regular expression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// Never centralize.
    Skip,
    /// Centralize with this operation, whatever the scope.
    Centralize(Centralize),
    /// Treat the parameter as this kind of layer; the scope then decides.
    Kind(LayerKind),
}

/// Why a parameter is not centralized.
#[derive(Debug, Clone, PartialEq)]
pub enum SkipReason {
    /// The scope is [`Scope::None`].
    ScopeNone,
    /// The scope covers convolutions only.
    NotConv,
    /// Biases, norm scales/shifts and embeddings are not fan-in weights.
    NotFanIn,
    /// A parameter of an unknown struct; a [`Rule`] can centralize it.
    Unknown,
    /// The seed rank rule: the PyTorch-layout rank is not above the threshold.
    Rank {
        /// The tensor's rank.
        rank: usize,
        /// The threshold it must exceed.
        above: usize,
    },
    /// Each output unit has a single input: GC would zero its gradient.
    FanInOne,
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
            SkipReason::Rank { rank, above } => write!(f, "rank {rank} <= {above} (seed rule)"),
            SkipReason::FanInOne => write!(f, "fan-in 1: GC would zero it"),
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
        (Scope::SeedRank { above }, kind) => {
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
        (_, LayerKind::Conv(_)) => Centralize::along(0),
        (_, LayerKind::ConvTranspose { groups, .. }) => match conv_transpose {
            ConvTransposeRule::OutputChannel => Centralize::grouped(1, groups),
            ConvTransposeRule::SeedInputChannel => Centralize::along(0),
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
fn checked(op: Centralize, shape: &[usize]) -> Decision {
    if op.fits(shape).is_err() || op.fan_in(shape) <= 1 {
        Decision::Skip(SkipReason::FanInOne)
    } else {
        Decision::Centralize(op)
    }
}

/// One parameter of a plan.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    /// The parameter's id.
    pub id: ParamId,
    /// Its path in the module, e.g. `layer1.0.conv1.weight`.
    pub path: String,
    /// Its shape in burn layout.
    pub shape: Vec<usize>,
    /// The layer it belongs to.
    pub kind: LayerKind,
    /// What GC does with it.
    pub decision: Decision,
}

/// Builds a [`GcPlan`]: scope, transposed-convolution rule and user rules.
#[derive(Debug, Clone, Default)]
pub struct PlanConfig {
    scope: Scope,
    conv_transpose: ConvTransposeRule,
    rules: Vec<(Regex, Rule)>,
}

impl PlanConfig {
    /// A configuration with this scope, the default transposed-convolution rule and no user rules.
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            ..Self::default()
        }
    }

    /// Choose how transposed convolutions are centralized.
    pub fn with_conv_transpose(mut self, rule: ConvTransposeRule) -> Self {
        self.conv_transpose = rule;
        self
    }

    /// Add a rule for every parameter whose path matches `pattern` (a regular expression searched
    /// anywhere in the path; anchor it with `^...$` to match whole paths). When several rules match,
    /// the last one added wins.
    pub fn with_rule(mut self, pattern: &str, rule: Rule) -> Result<Self, GcError> {
        let regex = Regex::new(pattern).map_err(|err| GcError::InvalidRule {
            pattern: pattern.to_string(),
            message: err.to_string(),
        })?;
        self.rules.push((regex, rule));
        Ok(self)
    }

    /// The scope.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Walk `module` once and decide for each of its float parameters.
    pub fn build<M: Module>(&self, module: &M) -> Result<GcPlan, GcError> {
        let mut walker = Walker::default();
        module.visit(&mut walker);
        let mut entries = walker.entries;
        infer_conv_transpose_groups(&mut entries);

        for entry in &mut entries {
            let rule = self
                .rules
                .iter()
                .rev()
                .find(|(regex, _)| regex.is_match(&entry.path));
            entry.decision = match rule {
                None => decide(entry.kind, &entry.shape, self.scope, self.conv_transpose),
                Some((regex, Rule::Skip)) => {
                    Decision::Skip(SkipReason::Rule(regex.as_str().to_string()))
                }
                Some((regex, Rule::Centralize(op))) => {
                    op.fits(&entry.shape)
                        .map_err(|reason| GcError::RuleDoesNotFit {
                            pattern: regex.as_str().to_string(),
                            path: entry.path.clone(),
                            shape: entry.shape.clone(),
                            reason,
                        })?;
                    checked(*op, &entry.shape)
                }
                Some((_, Rule::Kind(kind))) => {
                    entry.kind = *kind;
                    decide(*kind, &entry.shape, self.scope, self.conv_transpose)
                }
            };
        }
        Ok(GcPlan {
            scope: self.scope,
            entries,
        })
    }
}

/// A transposed convolution's groups are not a parameter; its bias `[out]` and weight
/// `[in, out/groups, ...]` give them away.
fn infer_conv_transpose_groups(entries: &mut [PlanEntry]) {
    let biases: BTreeMap<String, usize> = entries
        .iter()
        .filter(|entry| entry.kind == LayerKind::Bias && entry.shape.len() == 1)
        .map(|entry| (entry.path.clone(), entry.shape[0]))
        .collect();
    for entry in entries.iter_mut() {
        if let LayerKind::ConvTranspose { dims, .. } = entry.kind {
            let Some(prefix) = entry.path.strip_suffix("weight") else {
                continue;
            };
            let per_group = entry.shape.get(1).copied().unwrap_or(0);
            if let Some(&out) = biases.get(&format!("{prefix}bias"))
                && per_group > 0
                && out % per_group == 0
            {
                entry.kind = LayerKind::ConvTranspose {
                    dims,
                    groups: out / per_group,
                };
            }
        }
    }
}

#[derive(Default)]
struct Walker {
    stack: Vec<(String, String)>,
    entries: Vec<PlanEntry>,
}

impl ModuleVisitor for Walker {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self
            .stack
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let kind = match self.stack.last() {
            // BatchNorm's running statistics are visited like parameters but never trained.
            Some((field, owner))
                if owner == "Struct:BatchNorm" && field.starts_with("running_") =>
            {
                return;
            }
            Some((field, owner)) => LayerKind::classify(owner, field),
            None => LayerKind::Other,
        };
        self.entries.push(PlanEntry {
            id: param.id,
            path,
            shape: param.lazy_shape().to_vec(),
            kind,
            decision: Decision::Skip(SkipReason::Unknown),
        });
    }
}

/// Which parameters of a module GC centralizes, along which axis, and why the others are left alone.
///
/// Built once by walking a module ([`PlanConfig::build`] or [`GcPlan::new`]); it prints as a table.
///
/// ```
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::Device;
/// use gradient_centralization::{GcPlan, Scope};
///
/// let model: Linear = LinearConfig::new(8, 4).init(&Device::flex());
/// let plan = GcPlan::new(&model, Scope::ConvLinear);
/// assert_eq!(plan.centralized().count(), 1); // the weight; the bias is left alone
/// println!("{plan}");
/// ```
#[derive(Debug, Clone)]
pub struct GcPlan {
    scope: Scope,
    entries: Vec<PlanEntry>,
}

impl GcPlan {
    /// The plan of `module` under `scope`, with the default rules.
    pub fn new<M: Module>(module: &M, scope: Scope) -> Self {
        PlanConfig::new(scope)
            .build(module)
            .expect("a plan without user rules cannot fail")
    }

    /// The scope this plan was built with.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Every float parameter, in module order.
    pub fn entries(&self) -> &[PlanEntry] {
        &self.entries
    }

    /// The entry of one parameter.
    pub fn get(&self, id: ParamId) -> Option<&PlanEntry> {
        self.entries.iter().find(|entry| entry.id == id)
    }

    /// The parameters that are centralized.
    pub fn centralized(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries
            .iter()
            .filter(|entry| entry.decision.centralize().is_some())
    }

    /// The centralized parameters grouped by operation: one burn `ParamGroup` each.
    pub fn groups(&self) -> BTreeMap<Centralize, Vec<ParamId>> {
        let mut groups: BTreeMap<Centralize, Vec<ParamId>> = BTreeMap::new();
        for entry in &self.entries {
            if let Some(op) = entry.decision.centralize() {
                groups.entry(op).or_default().push(entry.id);
            }
        }
        groups
    }

    /// Check that every gradient in `grads` is finite; the error names the first parameter that
    /// is not. Costs one pass over the gradients.
    pub fn check_gradients<M: Module>(
        &self,
        module: &M,
        grads: &GradientsParams,
    ) -> Result<(), GcError> {
        let mut checker = FiniteChecker {
            grads,
            bad: Vec::new(),
        };
        module.visit(&mut checker);
        match checker.bad.first() {
            None => Ok(()),
            Some(&(id, count)) => Err(GcError::NonFiniteGradient {
                path: self
                    .get(id)
                    .map(|entry| entry.path.clone())
                    .unwrap_or_else(|| format!("param {id}")),
                count,
            }),
        }
    }
}

struct FiniteChecker<'a> {
    grads: &'a GradientsParams,
    bad: Vec<(ParamId, usize)>,
}

impl ModuleVisitor for FiniteChecker<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let count = grad.is_finite().bool_not().int().sum().into_scalar::<i64>();
            if count > 0 {
                self.bad.push((param.id, count as usize));
            }
        }
    }
}

impl fmt::Display for GcPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 4]> = self
            .entries
            .iter()
            .map(|entry| {
                let gc = match &entry.decision {
                    Decision::Centralize(op) if op.groups() > 1 => format!(
                        "yes: axis {} in {} groups, fan-in {}",
                        op.axis(),
                        op.groups(),
                        op.fan_in(&entry.shape)
                    ),
                    Decision::Centralize(op) => format!(
                        "yes: axis {}, fan-in {}",
                        op.axis(),
                        op.fan_in(&entry.shape)
                    ),
                    Decision::Skip(reason) => format!("no: {reason}"),
                };
                [
                    entry.path.clone(),
                    format!("{:?}", entry.shape),
                    entry.kind.to_string(),
                    gc,
                ]
            })
            .collect();
        let header = ["parameter", "shape (burn)", "layer", "centralized"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 4]| {
            writeln!(
                f,
                "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        };
        line(f, header)?;
        for row in &rows {
            line(f, [&row[0], &row[1], &row[2], &row[3]])?;
        }
        let total: usize = self
            .entries
            .iter()
            .map(|e| e.shape.iter().product::<usize>())
            .sum();
        let centralized: usize = self
            .centralized()
            .map(|e| e.shape.iter().product::<usize>())
            .sum();
        write!(
            f,
            "{} of {} parameter tensors centralized ({} of {} scalars), scope {:?}",
            self.centralized().count(),
            self.entries.len(),
            centralized,
            total,
            self.scope
        )
    }
}
