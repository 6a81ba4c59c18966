//! One walk over a module: every parameter's path, shape, layer kind and GC decision.

mod decide;
mod kind;
mod walk;

use std::collections::BTreeMap;
use std::fmt;

use burn::module::{Module, ParamId};
use regex::Regex;

use crate::centralize::Centralize;
use crate::error::GcError;

pub(crate) use decide::decide;
pub use decide::{ConvTransposeRule, Decision, Rule, Scope, SkipReason};
pub use kind::LayerKind;
pub(crate) use walk::Stack;

/// One parameter of a plan.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    /// Its id when the plan was built. Optimizers route by it when it matches (the planned
    /// parameter itself), and by [`path`](Self::path) when burn's `load_record` has replaced it.
    pub id: ParamId,
    /// Its path in the module, e.g. `layer1.0.conv1.weight`: what the optimizer routes by when the
    /// id no longer matches, so the plan survives `load_record` (which replaces parameter ids).
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
    ///
    /// Shapes are the parameters' real ones: a parameter not initialized yet is initialized by the
    /// walk (burn's declared shape of a `LinearLayout::Col` weight is the transposed one).
    pub fn build<M: Module>(&self, module: &M) -> Result<GcPlan, GcError> {
        let mut entries = walk::walk(module);
        for entry in &mut entries {
            let rule = self
                .rules
                .iter()
                .rev()
                .find(|(regex, _)| regex.is_match(&entry.path));
            entry.decision = match rule {
                None => decide(entry.kind, &entry.shape, self.scope, self.conv_transpose),
                Some((regex, rule)) => self.apply_rule(regex.as_str(), *rule, entry)?,
            };
        }
        Ok(GcPlan {
            scope: self.scope,
            entries,
        })
    }

    /// The decision a user rule gives; a rule that cannot apply to the parameter is an error that
    /// names both.
    fn apply_rule(
        &self,
        pattern: &str,
        rule: Rule,
        entry: &mut PlanEntry,
    ) -> Result<Decision, GcError> {
        let does_not_fit = |entry: &PlanEntry, reason: String| GcError::RuleDoesNotFit {
            pattern: pattern.to_string(),
            path: entry.path.clone(),
            shape: entry.shape.clone(),
            reason,
        };
        let decision = match rule {
            Rule::Skip => return Ok(Decision::Skip(SkipReason::Rule(pattern.to_string()))),
            Rule::Centralize(op) => {
                op.fits(&entry.shape)
                    .map_err(|reason| does_not_fit(entry, reason))?;
                decide::checked(op, &entry.shape)
            }
            Rule::Kind(kind) => {
                entry.kind = kind;
                decide(kind, &entry.shape, self.scope, self.conv_transpose)
            }
            Rule::Groups(groups) => {
                let LayerKind::ConvTranspose { dims, .. } = entry.kind else {
                    return Err(does_not_fit(
                        entry,
                        format!(
                            "Rule::Groups is for transposed convolutions, this is a {} parameter",
                            entry.kind
                        ),
                    ));
                };
                if groups == 0 {
                    return Err(does_not_fit(entry, "0 groups".to_string()));
                }
                entry.kind = LayerKind::ConvTranspose {
                    dims,
                    groups: Some(groups),
                };
                decide(entry.kind, &entry.shape, self.scope, self.conv_transpose)
            }
        };
        match decision {
            Decision::Skip(SkipReason::DoesNotFit(reason)) => Err(does_not_fit(entry, reason)),
            decision => Ok(decision),
        }
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

    /// The entry of the parameter at `path`.
    pub fn get(&self, path: &str) -> Option<&PlanEntry> {
        self.entries.iter().find(|entry| entry.path == path)
    }

    /// The parameters that are centralized.
    pub fn centralized(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries
            .iter()
            .filter(|entry| entry.decision.centralize().is_some())
    }

    /// The entries grouped by what happens to them: `None` for the parameters left alone, then
    /// one group per operation (one burn `ParamGroup` each).
    pub fn groups(&self) -> BTreeMap<Option<Centralize>, Vec<&PlanEntry>> {
        let mut groups: BTreeMap<Option<Centralize>, Vec<&PlanEntry>> = BTreeMap::new();
        for entry in &self.entries {
            groups
                .entry(entry.decision.centralize())
                .or_default()
                .push(entry);
        }
        groups
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
