//! One walk over a module: every float parameter's path, real shape and layer kind.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

use super::{Decision, LayerKind, PlanEntry, SkipReason};

/// The float parameters of `module` in module order, each with its kind; transposed convolutions
/// carry the groups their bias reveals. Decisions are left for the plan to fill in.
pub(crate) fn walk<M: Module>(module: &M) -> Vec<PlanEntry> {
    let mut walker = Walker::default();
    module.visit(&mut walker);
    let mut entries = walker.entries;
    infer_conv_transpose_groups(&mut entries);
    entries
}

/// Where a module walk is: the fields entered, each with the struct that owns it.
#[derive(Default)]
pub(crate) struct Stack(Vec<(String, String)>);

impl Stack {
    pub(crate) fn enter(&mut self, name: &str, container_type: &str) {
        self.0.push((name.to_string(), container_type.to_string()));
    }

    pub(crate) fn exit(&mut self) {
        self.0.pop();
    }

    /// The innermost field and its owner, e.g. `("weight", "Struct:Linear")`.
    fn last(&self) -> Option<&(String, String)> {
        self.0.last()
    }

    /// The path as burn's `ModuleOptimizer` writes it: field names joined by dots.
    pub(crate) fn path(&self) -> String {
        self.0
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

#[derive(Default)]
struct Walker {
    stack: Stack,
    entries: Vec<PlanEntry>,
}

impl ModuleVisitor for Walker {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
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
        // The real shape, never `lazy_shape()`: a `Linear` with `LinearLayout::Col` declares
        // `[d_output, d_input]` before its first use and holds `[d_input, d_output]` after. Reading
        // the value initializes a lazy parameter, as its first forward pass would.
        let shape = param.val().dims().to_vec();
        self.entries.push(PlanEntry {
            id: param.id,
            path: self.stack.path(),
            shape,
            kind,
            decision: Decision::Skip(SkipReason::Unknown),
        });
    }
}

/// A transposed convolution's groups are not a parameter; its bias `[out]` and weight
/// `[in, out/groups, ...]` give them away. Without a bias they stay unknown.
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
                    groups: Some(out / per_group),
                };
            }
        }
    }
}
