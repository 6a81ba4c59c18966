//! GcConfig: scope, placement and rules, turned into a burn `ModuleOptimizer` for a module.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ParamGroup};
use burn::optim::{LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};

use crate::centralize::{Centralize, Placement};
use crate::error::GcError;
use crate::optim::{Gc, GcOptimizer};
use crate::plan::{ConvTransposeRule, Decision, GcPlan, PlanConfig, Rule, Scope, SkipReason};

/// Where GC applies and where it sits: everything needed to turn an optimizer into a layer-aware
/// GC optimizer for one module.
///
/// [`init`](Self::init) walks the module once ([`GcPlan`]), then builds one burn
/// [`ModuleOptimizer`] in which every distinct centralization (axis, groups) is a parameter group
/// with its own copy of the optimizer, matched by parameter id and path (see
/// [`init_with_plan`](Self::init_with_plan)); parameters the plan leaves alone get the plain copy.
/// State records, per-parameter learning rates and `burn-train`'s `Learner` work as with any burn
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

    /// Like [`init`](Self::init), also returning the plan (to print it, or to save it beside a run).
    ///
    /// Routing: every parameter of the plan is in a burn `ParamGroup` by its id and by its path.
    /// The id decides when it matches (the planned parameter itself, also stepped under another
    /// parent); the path decides for parameters whose ids `load_record`, `load_file` or a
    /// checkpoint restore replaced. A parameter in no group (a module that is not the one planned,
    /// with other ids) panics at its step, naming the fix, rather than take a plain step without
    /// GC: burn's `Optimizer::step` cannot return an error.
    ///
    /// Clipping: give it here ([`with_clipping`](Self::with_clipping)), which sets it on every
    /// group; burn's `ModuleOptimizer::with_grad_clipping` on the result sets only the first
    /// group, which trains nothing.
    ///
    /// Errors: a transposed convolution without a bias whose groups no [`Rule::Groups`]
    /// gives ([`GcError::GroupsUnknown`]), under a scope and rule that would centralize it.
    pub fn init_with_plan<M: Module, O: GcOptimizer>(
        &self,
        module: &M,
        optimizer: O,
    ) -> Result<(ModuleOptimizer, GcPlan), GcError> {
        let plan = self.plan(module)?;
        if let Some(entry) = plan
            .entries()
            .iter()
            .find(|entry| entry.decision == Decision::Skip(SkipReason::GroupsUnknown))
        {
            return Err(GcError::GroupsUnknown {
                path: entry.path.clone(),
            });
        }
        let clipping = self.clipping.as_ref().map(GradientClippingConfig::init);
        let mut module_optimizer = ModuleOptimizer::from(Unplanned(optimizer.with_gc(Gc::NONE)));
        if let Some(clipping) = &clipping {
            module_optimizer = module_optimizer.with_grad_clipping(clipping.clone());
        }
        let groups = plan.groups();
        let gc_of = |op: &Option<Centralize>| match op {
            Some(op) => Gc::new(*op, self.placement),
            None => Gc::NONE,
        };
        // The last matching group wins: paths first, ids after. An id that matches is the planned
        // parameter itself; a path covers the parameters whose ids loading replaced.
        for (op, entries) in &groups {
            let paths: Vec<String> = entries.iter().map(|entry| entry.path.clone()).collect();
            module_optimizer = module_optimizer.with_group(
                ParamGroup::from_paths(paths),
                optimizer.with_gc(gc_of(op)),
                clipping.clone(),
            );
        }
        for (op, entries) in &groups {
            let ids = entries.iter().map(|entry| entry.id).collect();
            module_optimizer = module_optimizer.with_group(
                ParamGroup::from_ids(ids),
                optimizer.with_gc(gc_of(op)),
                clipping.clone(),
            );
        }
        Ok((module_optimizer, plan))
    }
}

/// The optimizer of the parameters no group of the plan claims: it refuses to step them.
///
/// It keeps the wrapped optimizer's state type, so a `ModuleOptimizer` record still loads; only a
/// step reaches the panic.
#[derive(Clone)]
struct Unplanned<O>(O);

impl<O: Optimizer> Optimizer for Unplanned<O> {
    type State<const D: usize> = O::State<D>;

    fn step<const D: usize>(
        &self,
        _lr: LearningRate,
        tensor: Tensor<D>,
        _grad: Tensor<D>,
        _state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        panic!(
            "gradient-centralization: a parameter of shape {:?} is in no group of the GC plan: the \
             module stepped is not the one the optimizer was built from (its parameter paths \
             differ, and its ids were replaced, e.g. by load_record). Build the optimizer from the \
             module you step: GcConfig::init(&model, ..) or Preset::init(&model, ..)",
            tensor.dims()
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        O::to_device(state, device)
    }
}
