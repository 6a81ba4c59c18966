//! The seed's optimizer names, each a one-line composition of an optimizer, a scope and a placement.

use std::fmt;
use std::str::FromStr;

use crate::centralize::Placement;
use crate::config::GcConfig;
use crate::error::GcError;
use crate::hyperparameters::Hyperparameters;
use crate::optim::{
    AdagradConfig, AdamConfig, AdamWConfig, AdamWFormula, FirstMoment, GcOptimizer,
    LookaheadConfig, RAdamConfig, SgdConfig, WeightDecay,
};
use crate::plan::Scope;
use burn::module::Module;
use burn::optim::ModuleOptimizer;

/// The optimizer under a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// SGD with coupled L2 decay (torch's SGD; the seed's `SGD_GC`).
    Sgd,
    /// SGD with decoupled decay (the seed's `SGDW`).
    Sgdw,
    /// Adam with coupled L2 decay (the seed's `Adam_GC`).
    Adam,
    /// The seed's AdamW formula ([`AdamWFormula::Seed`]).
    AdamW,
    /// torch.optim.AdamW's formula ([`AdamWFormula::Torch`]).
    AdamWTorch,
    /// Adagrad with coupled L2 decay (the seed's `Adagrad_GCC`).
    Adagrad,
    /// RAdam (the seed's `algorithm-GC` RAdam; decay added to the update).
    RAdam,
    /// Ranger: RAdam inside Lookahead (the seed's `algorithm-GC` Ranger).
    Ranger,
}

/// A named optimizer of the seed (or its plain baseline): family, scope, placement and whether the
/// seed's Lookahead wraps it.
///
/// Names are case-insensitive and accept the seed's spellings: `SGD_GC`, `sgd_gcc`, `SGDW_GCC`,
/// `Adam_GC2`, `AdamW_GCC`, `adamw_torch`, `Adagrad_GCC`, `RAdam_GC2`, `Ranger_GCC`, ... (`_gc`:
/// conv and linear, `_gcc`: conv only, a trailing `2`: GC on the update, the seed's `gc_loc=False`).
/// A `lookahead_` prefix wraps any of them but Ranger (which has it built in) in the seed's
/// Lookahead: `lookahead_sgd_gc`.
///
/// ```
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::Device;
/// use gradient_centralization::{Hyperparameters, Preset};
///
/// let model: Linear = LinearConfig::new(8, 4).init(&Device::flex());
/// let preset: Preset = "SGD_GC".parse()?;
/// let hyper = Hyperparameters { momentum: Some(0.9), weight_decay: Some(5e-4), ..Hyperparameters::default() };
/// let optimizer = preset.init(&model, &hyper)?;
/// assert_eq!(preset, Preset::SGD_GC);
/// # Ok::<(), gradient_centralization::GcError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Preset {
    /// The optimizer.
    pub family: Family,
    /// Which layers are centralized.
    pub scope: Scope,
    /// Where GC sits.
    pub placement: Placement,
    /// Inside the seed's Lookahead ([`LookaheadConfig`]; never with Ranger, which has its own).
    pub lookahead: bool,
}

macro_rules! presets {
    ($($name:ident = $family:ident, $scope:ident, $placement:ident;)*) => {
        impl Preset {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: Preset = Preset {
                    family: Family::$family,
                    scope: Scope::$scope,
                    placement: Placement::$placement,
                    lookahead: false,
                };
            )*

            /// Every named preset, in the order of the trace format's list.
            pub const ALL: &'static [Preset] = &[$(Preset::$name),*];
        }
    };
}

presets! {
    SGD = Sgd, None, Gradient;
    SGD_GC = Sgd, ConvLinear, Gradient;
    SGD_GCC = Sgd, ConvOnly, Gradient;
    SGDW = Sgdw, None, Gradient;
    SGDW_GC = Sgdw, ConvLinear, Gradient;
    SGDW_GCC = Sgdw, ConvOnly, Gradient;
    ADAM = Adam, None, Gradient;
    ADAM_GC = Adam, ConvLinear, Gradient;
    ADAM_GCC = Adam, ConvOnly, Gradient;
    ADAM_GC2 = Adam, ConvLinear, Update;
    ADAM_GCC2 = Adam, ConvOnly, Update;
    ADAMW = AdamW, None, Gradient;
    ADAMW_GC = AdamW, ConvLinear, Gradient;
    ADAMW_GCC = AdamW, ConvOnly, Gradient;
    ADAMW_GC2 = AdamW, ConvLinear, Update;
    ADAMW_GCC2 = AdamW, ConvOnly, Update;
    ADAMW_TORCH = AdamWTorch, None, Gradient;
    ADAGRAD = Adagrad, None, Gradient;
    ADAGRAD_GC = Adagrad, ConvLinear, Gradient;
    ADAGRAD_GCC = Adagrad, ConvOnly, Gradient;
    RADAM = RAdam, None, Gradient;
    RADAM_GC = RAdam, ConvLinear, Gradient;
    RADAM_GCC = RAdam, ConvOnly, Gradient;
    RADAM_GC2 = RAdam, ConvLinear, Update;
    RADAM_GCC2 = RAdam, ConvOnly, Update;
    RANGER = Ranger, None, Gradient;
    RANGER_GC = Ranger, ConvLinear, Gradient;
    RANGER_GCC = Ranger, ConvOnly, Gradient;
    RANGER_GC2 = Ranger, ConvLinear, Update;
    RANGER_GCC2 = Ranger, ConvOnly, Update;
}

impl Preset {
    /// The canonical (lower-case) name. For every named preset (`Preset::ALL`) and its
    /// [`rank_rule`](Self::rank_rule) and [`burn_rank`](Self::burn_rank) it parses back to the same
    /// preset: those under the seed's rank rule carry a suffix, `sgd_gc:rank_rule` being
    /// `SGD_GC.rank_rule()`, those under the rank rule on burn's layouts `:burn_rank`; a plain
    /// preset with a threshold of your own reads `sgd:rank_rule>2` or `sgd:burn_rank>2`; in the
    /// seed's Lookahead, `lookahead_sgd_gc`.
    /// A hand-made combination no name describes (GC2 placement without a scope, say) prints the
    /// nearest name; `lookahead_ranger*` prints but is an error to parse and to build (Ranger has
    /// its Lookahead built in).
    pub fn name(&self) -> String {
        let family = match self.family {
            Family::Sgd => "sgd",
            Family::Sgdw => "sgdw",
            Family::Adam => "adam",
            Family::AdamW => "adamw",
            Family::AdamWTorch => "adamw_torch",
            Family::Adagrad => "adagrad",
            Family::RAdam => "radam",
            Family::Ranger => "ranger",
        };
        let (scope, suffix) = match self.scope {
            Scope::ConvLinear => ("_gc", String::new()),
            Scope::ConvOnly => ("_gcc", String::new()),
            Scope::None => ("", String::new()),
            Scope::RANK_RULE_GC => ("_gc", ":rank_rule".to_string()),
            Scope::RANK_RULE_GCC => ("_gcc", ":rank_rule".to_string()),
            Scope::RankRule { above } => ("", format!(":rank_rule>{above}")),
            Scope::BURN_RANK_GC => ("_gc", ":burn_rank".to_string()),
            Scope::BURN_RANK_GCC => ("_gcc", ":burn_rank".to_string()),
            Scope::RankOnBurnLayout { above } => ("", format!(":burn_rank>{above}")),
        };
        let placement = match (self.scope, self.placement) {
            (Scope::None, _) | (_, Placement::Gradient) => "",
            (_, Placement::Update) => "2",
        };
        let lookahead = if self.lookahead { "lookahead_" } else { "" };
        format!("{lookahead}{family}{scope}{placement}{suffix}")
    }

    /// The same preset inside the seed's Lookahead (k and α from [`Hyperparameters`], by default
    /// 5 and 0.5). Ranger has Lookahead built in: asking for it again is an error when the
    /// optimizer is built.
    pub fn lookahead(self) -> Self {
        Self {
            lookahead: true,
            ..self
        }
    }

    /// The same preset with GC decided by the seed's rank rule (`rank > 1` for `_gc`, `rank > 3` for
    /// `_gcc`), for parity checks against the seed.
    pub fn rank_rule(self) -> Self {
        self.rescoped(Scope::RANK_RULE_GC, Scope::RANK_RULE_GCC)
    }

    /// The same preset with GC decided as a rank-based port does on burn's layouts (`rank > 1`
    /// for `_gc`, `rank > 3` for `_gcc`, burn's axis 0 kept: a `Linear` weight is centralized per
    /// input row; see [`Scope::RankOnBurnLayout`]), for measuring what such ports cost. Its name
    /// carries `:burn_rank`.
    pub fn burn_rank(self) -> Self {
        self.rescoped(Scope::BURN_RANK_GC, Scope::BURN_RANK_GCC)
    }

    /// `gc` in place of the `_gc` scope, `gcc` of the `_gcc` one; other scopes as they are.
    fn rescoped(self, gc: Scope, gcc: Scope) -> Self {
        let scope = match self.scope {
            Scope::ConvLinear => gc,
            Scope::ConvOnly => gcc,
            other => other,
        };
        Self { scope, ..self }
    }

    /// The GC configuration of this preset.
    pub fn gc_config(&self) -> GcConfig {
        GcConfig::new(self.scope).with_placement(self.placement)
    }

    /// A burn `ModuleOptimizer` for `module` with these hyperparameters.
    pub fn init<M: Module>(
        &self,
        module: &M,
        hyper: &Hyperparameters,
    ) -> Result<ModuleOptimizer, GcError> {
        self.init_with(module, hyper, &self.gc_config())
    }

    /// Like [`init`](Self::init) with a GC configuration of your own (rules, clipping); its scope and
    /// placement are used as given.
    pub fn init_with<M: Module>(
        &self,
        module: &M,
        hyper: &Hyperparameters,
        gc: &GcConfig,
    ) -> Result<ModuleOptimizer, GcError> {
        struct Init<'a, M>(&'a M, &'a GcConfig);
        impl<M: Module> WithOptimizer for Init<'_, M> {
            type Output = Result<ModuleOptimizer, GcError>;
            fn call<O: GcOptimizer>(self, optimizer: O) -> Self::Output {
                self.1.init(self.0, optimizer)
            }
        }
        self.with_optimizer(hyper, Init(module, gc))?
    }

    /// Build this preset's optimizer from `hyper` and hand it to `with`.
    pub(crate) fn with_optimizer<W: WithOptimizer>(
        &self,
        hyper: &Hyperparameters,
        with: W,
    ) -> Result<W::Output, GcError> {
        hyper.check_applies(self)?;
        if self.lookahead {
            if self.family == Family::Ranger {
                return Err(GcError::NotApplicable {
                    name: "lookahead",
                    optimizer: format!("{} (it has Lookahead built in)", self.name()),
                });
            }
            let lookahead = LookaheadConfig::new()
                .with_k(hyper.k.unwrap_or(5))
                .with_alpha(hyper.alpha.unwrap_or(0.5));
            let inner = Self {
                lookahead: false,
                ..*self
            };
            return inner.build(hyper, InLookahead(lookahead, with))?;
        }
        self.build(hyper, with)
    }

    /// Build the optimizer of the family (Lookahead aside) and hand it to `with`.
    fn build<W: WithOptimizer>(
        &self,
        hyper: &Hyperparameters,
        with: W,
    ) -> Result<W::Output, GcError> {
        let weight_decay = hyper.weight_decay.unwrap_or(0.0);
        let betas = hyper.betas.unwrap_or((0.9, 0.999));
        let amsgrad = hyper.amsgrad.unwrap_or(false);
        Ok(match self.family {
            Family::Sgd | Family::Sgdw => {
                let decay = match (self.family, weight_decay) {
                    (_, 0.0) => WeightDecay::None,
                    (Family::Sgd, wd) => WeightDecay::L2(wd),
                    (_, wd) => WeightDecay::Decoupled(wd),
                };
                with.call(
                    SgdConfig::new()
                        .with_momentum(hyper.momentum.unwrap_or(0.0))
                        .with_dampening(hyper.dampening.unwrap_or(0.0))
                        .with_nesterov(hyper.nesterov.unwrap_or(false))
                        .with_weight_decay(decay)
                        .build()?,
                )
            }
            Family::Adam => with.call(
                AdamConfig::new()
                    .with_betas(betas.0, betas.1)
                    .with_eps(hyper.eps.unwrap_or(1e-8))
                    .with_weight_decay(weight_decay)
                    .with_amsgrad(amsgrad)
                    .build()?,
            ),
            Family::AdamW | Family::AdamWTorch => {
                let (formula, default_decay) = match self.family {
                    Family::AdamW => (AdamWFormula::Seed, 0.0),
                    _ => (AdamWFormula::Torch, 1e-2),
                };
                with.call(
                    AdamWConfig::new()
                        .with_formula(formula)
                        .with_betas(betas.0, betas.1)
                        .with_eps(hyper.eps.unwrap_or(1e-8))
                        .with_weight_decay(hyper.weight_decay.unwrap_or(default_decay))
                        .with_amsgrad(amsgrad)
                        .build()?,
                )
            }
            Family::Adagrad => with.call(
                AdagradConfig::new()
                    .with_lr_decay(hyper.lr_decay.unwrap_or(0.0))
                    .with_weight_decay(weight_decay)
                    .with_initial_accumulator_value(hyper.initial_accumulator_value.unwrap_or(0.0))
                    .with_eps(hyper.eps.unwrap_or(1e-10))
                    .build()?,
            ),
            Family::RAdam | Family::Ranger => {
                let ranger = self.family == Family::Ranger;
                let radam = if ranger {
                    RAdamConfig::ranger()
                } else {
                    RAdamConfig::new()
                };
                let (beta1, beta2) = hyper.betas.unwrap_or(radam.betas());
                let mut radam = radam
                    .with_betas(beta1, beta2)
                    .with_weight_decay(weight_decay)
                    .with_first_moment(match hyper.seed_buffer_aliasing {
                        Some(true) => FirstMoment::SeedOverwritten,
                        _ => FirstMoment::Average,
                    });
                if let Some(eps) = hyper.eps {
                    radam = radam.with_eps(eps);
                }
                if ranger {
                    let lookahead = LookaheadConfig::ranger()
                        .with_k(hyper.k.unwrap_or(6))
                        .with_alpha(hyper.alpha.unwrap_or(0.5));
                    with.call(lookahead.build(radam.build()?)?)
                } else {
                    with.call(radam.build()?)
                }
            }
        })
    }
}

/// Hands `W` the optimizer wrapped in Lookahead.
struct InLookahead<W>(LookaheadConfig, W);

impl<W: WithOptimizer> WithOptimizer for InLookahead<W> {
    type Output = Result<W::Output, GcError>;
    fn call<O: GcOptimizer>(self, optimizer: O) -> Self::Output {
        Ok(self.1.call(self.0.build(optimizer)?))
    }
}

/// Something to do with a preset's optimizer, whatever its concrete type.
pub(crate) trait WithOptimizer {
    type Output;
    fn call<O: GcOptimizer>(self, optimizer: O) -> Self::Output;
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Preset {
    type Err = GcError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let wanted = name.trim().to_ascii_lowercase();
        let unknown = || GcError::UnknownOptimizer {
            name: name.to_string(),
            known: Preset::ALL
                .iter()
                .map(Preset::name)
                .collect::<Vec<_>>()
                .join(", ")
                + ", and any of them but ranger* after `lookahead_`",
        };
        let (base, suffix) = match wanted.split_once(':') {
            Some((base, suffix)) => (base, Some(suffix)),
            None => (wanted.as_str(), None),
        };
        let (base, lookahead) = match base.strip_prefix("lookahead_") {
            Some(inner) => (inner, true),
            None => (base, false),
        };
        let preset = Preset::ALL
            .iter()
            .find(|preset| preset.name() == base)
            .copied()
            .ok_or_else(unknown)?;
        if lookahead && preset.family == Family::Ranger {
            return Err(GcError::NotApplicable {
                name: "lookahead",
                optimizer: format!("{} (it has Lookahead built in)", preset.name()),
            });
        }
        let preset = Preset {
            lookahead,
            ..preset
        };
        match suffix {
            None => Ok(preset),
            Some("rank_rule") if preset.scope != Scope::None => Ok(preset.rank_rule()),
            Some("burn_rank") if preset.scope != Scope::None => Ok(preset.burn_rank()),
            Some(suffix) if preset.scope == Scope::None => {
                let threshold = |prefix| suffix.strip_prefix(prefix).map(str::parse::<usize>);
                match (threshold("rank_rule>"), threshold("burn_rank>")) {
                    (Some(Ok(above)), _) => Ok(Preset {
                        scope: Scope::RankRule { above },
                        ..preset
                    }),
                    (_, Some(Ok(above))) => Ok(Preset {
                        scope: Scope::RankOnBurnLayout { above },
                        ..preset
                    }),
                    _ => Err(unknown()),
                }
            }
            Some(_) => Err(unknown()),
        }
    }
}

/// One-line constructors of the optimizers of the paper's reference code (the repository
/// `Yonghongwei/Gradient-Centralization`), under its names: `sgd_gc(&model, &hyper)` is
/// `Preset::SGD_GC.init(&model, &hyper)`.
pub mod paper {
    use super::*;

    macro_rules! constructors {
        ($($fn_name:ident = $preset:ident;)*) => {
            $(
                #[doc = concat!("`", stringify!($preset), "` for `module`: see [`Preset::", stringify!($preset), "`].")]
                pub fn $fn_name<M: Module>(module: &M, hyper: &Hyperparameters) -> Result<ModuleOptimizer, GcError> {
                    Preset::$preset.init(module, hyper)
                }
            )*
        };
    }

    constructors! {
        sgd = SGD;
        sgd_gc = SGD_GC;
        sgd_gcc = SGD_GCC;
        sgdw = SGDW;
        sgdw_gc = SGDW_GC;
        sgdw_gcc = SGDW_GCC;
        adam = ADAM;
        adam_gc = ADAM_GC;
        adam_gcc = ADAM_GCC;
        adam_gc2 = ADAM_GC2;
        adam_gcc2 = ADAM_GCC2;
        adamw = ADAMW;
        adamw_gc = ADAMW_GC;
        adamw_gcc = ADAMW_GCC;
        adamw_gc2 = ADAMW_GC2;
        adamw_gcc2 = ADAMW_GCC2;
        adamw_torch = ADAMW_TORCH;
        adagrad = ADAGRAD;
        adagrad_gc = ADAGRAD_GC;
        adagrad_gcc = ADAGRAD_GCC;
        radam = RADAM;
        radam_gc = RADAM_GC;
        radam_gcc = RADAM_GCC;
        radam_gc2 = RADAM_GC2;
        radam_gcc2 = RADAM_GCC2;
        ranger = RANGER;
        ranger_gc = RANGER_GC;
        ranger_gcc = RANGER_GCC;
        ranger_gc2 = RANGER_GC2;
        ranger_gcc2 = RANGER_GCC2;
    }
}
