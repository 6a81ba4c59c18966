//! GcConfig: scope, placement and rules, turned into a burn `ModuleOptimizer` for a module.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ParamGroup};
use burn::optim::ModuleOptimizer;

use crate::centralize::Placement;
use crate::error::GcError;
use crate::optim::{Gc, GcOptimizer};
use crate::plan::{ConvTransposeRule, GcPlan, PlanConfig, Rule, Scope};

/// Where GC applies and where it sits: everything needed to turn an optimizer into a layer-aware
/// GC optimizer for one module.
///
/// [`init`](Self::init) walks the module once ([`GcPlan`]), then builds one burn
/// [`ModuleOptimizer`] in which every distinct centralization (axis, groups) is a parameter group
/// with its own copy of the optimizer; parameters the plan leaves alone get the plain copy. State
/// records, per-parameter learning rates and `burn-train`'s `Learner` work as with any burn
/// optimizer.
///
/// ```
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::Device;
/// use gradient_centralization::optim::{SgdConfig, WeightDecay};
/// use gradient_centralization::{GcConfig, Scope};
///
/// let model: Linear = LinearConfig::new(8, 4).init(&Device::flex());
/// let sgd = SgdConfig::new().with_momentum(0.9).with_weight_decay(WeightDecay::L2(5e-4));
/// let optimizer = GcConfig::new(Scope::ConvLinear).init(&model, sgd.build()?)?;
/// # Ok::<(), gradient_centralization::GcError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct GcConfig {
    plan: PlanConfig,
    placement: Placement,
    clipping: Option<GradientClippingConfig>,
}

impl GcConfig {
    /// GC on the gradient for the parameters `scope` covers.
    pub fn new(scope: Scope) -> Self {
        Self {
            plan: PlanConfig::new(scope),
            ..Self::default()
        }
    }

    /// Where GC sits in the step.
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// How transposed convolutions are centralized.
    pub fn with_conv_transpose(mut self, rule: ConvTransposeRule) -> Self {
        self.plan = self.plan.with_conv_transpose(rule);
        self
    }

    /// A rule for the parameters whose path matches `pattern` (last added wins).
    pub fn with_rule(mut self, pattern: &str, rule: Rule) -> Result<Self, GcError> {
        self.plan = self.plan.with_rule(pattern, rule)?;
        Ok(self)
    }

    /// Gradient clipping, applied by burn to each gradient before the optimizer, hence before GC.
    pub fn with_clipping(mut self, clipping: GradientClippingConfig) -> Self {
        self.clipping = Some(clipping);
        self
    }

    /// The placement.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// The plan this configuration gives `module`.
    pub fn plan<M: Module>(&self, module: &M) -> Result<GcPlan, GcError> {
        self.plan.build(module)
    }

    /// A burn `ModuleOptimizer` that applies `optimizer` with GC to `module`'s parameters.
    pub fn init<M: Module, O: GcOptimizer>(
        &self,
        module: &M,
        optimizer: O,
    ) -> Result<ModuleOptimizer, GcError> {
        Ok(self.init_with_plan(module, optimizer)?.0)
    }

    /// Like [`init`](Self::init), also returning the plan (to print it, or to check gradients).
    pub fn init_with_plan<M: Module, O: GcOptimizer>(
        &self,
        module: &M,
        optimizer: O,
    ) -> Result<(ModuleOptimizer, GcPlan), GcError> {
        let plan = self.plan(module)?;
        let clipping = self.clipping.as_ref().map(GradientClippingConfig::init);
        let plain = optimizer.with_gc(Gc::NONE);
        let mut module_optimizer = ModuleOptimizer::from(plain);
        if let Some(clipping) = &clipping {
            module_optimizer = module_optimizer.with_grad_clipping(clipping.clone());
        }
        for (op, ids) in plan.groups() {
            module_optimizer = module_optimizer.with_group(
                ParamGroup::from_ids(ids),
                optimizer.with_gc(Gc::new(op, self.placement)),
                clipping.clone(),
            );
        }
        Ok((module_optimizer, plan))
    }
}
