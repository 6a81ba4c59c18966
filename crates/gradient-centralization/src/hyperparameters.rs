//! The hyperparameters of every preset, by their PyTorch names, and which preset has which.

use serde::{Deserialize, Serialize};

use crate::error::GcError;
use crate::presets::{Family, Preset};

/// Hyperparameters by their PyTorch names; `None` takes the seed's/PyTorch's default for the
/// optimizer (never burn's). The learning rate is not here: burn passes it to every step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyperparameters {
    /// SGD momentum (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// SGD dampening (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dampening: Option<f64>,
    /// SGD Nesterov momentum (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    /// Weight decay (default 0; 1e-2 for `adamw_torch`). Coupled L2 for SGD, Adam, Adagrad;
    /// decoupled for SGDW and AdamW; added to the update direction for RAdam and Ranger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// The moments' decay rates of Adam, AdamW and RAdam (default (0.9, 0.999)) and Ranger
    /// (default (0.95, 0.999)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub betas: Option<(f64, f64)>,
    /// Denominator ε (default 1e-8; 1e-10 for Adagrad, 1e-5 for Ranger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// AMSGrad (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amsgrad: Option<bool>,
    /// Adagrad learning-rate decay (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_decay: Option<f64>,
    /// Adagrad's starting accumulator (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_accumulator_value: Option<f64>,
    /// Lookahead's fast steps per sync (default 5; Ranger 6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// Lookahead's step of the slow weights towards the fast ones (default 0.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// RAdam and Ranger: reproduce the seed's in-place edit of the first moment on unrectified
    /// steps (default false: the formula; see [`RAdamConfig`](crate::optim::RAdamConfig)).
    /// A flag, as in trace documents; [`FirstMoment`](crate::optim::FirstMoment) is the choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_buffer_aliasing: Option<bool>,
}

impl Hyperparameters {
    /// A hyperparameter that the preset's optimizer does not have is an error, not ignored.
    pub(crate) fn check_applies(&self, preset: &Preset) -> Result<(), GcError> {
        let sgd = matches!(preset.family, Family::Sgd | Family::Sgdw);
        let adam = matches!(
            preset.family,
            Family::Adam | Family::AdamW | Family::AdamWTorch
        );
        let adagrad = preset.family == Family::Adagrad;
        let rectified = matches!(preset.family, Family::RAdam | Family::Ranger);
        let lookahead = preset.lookahead || preset.family == Family::Ranger;
        let given = [
            ("momentum", self.momentum.is_some(), sgd),
            ("dampening", self.dampening.is_some(), sgd),
            ("nesterov", self.nesterov.is_some(), sgd),
            ("betas", self.betas.is_some(), adam || rectified),
            ("eps", self.eps.is_some(), adam || adagrad || rectified),
            ("amsgrad", self.amsgrad.is_some(), adam),
            ("lr_decay", self.lr_decay.is_some(), adagrad),
            (
                "initial_accumulator_value",
                self.initial_accumulator_value.is_some(),
                adagrad,
            ),
            ("k", self.k.is_some(), lookahead),
            ("alpha", self.alpha.is_some(), lookahead),
            (
                "seed_buffer_aliasing",
                self.seed_buffer_aliasing.is_some(),
                rectified,
            ),
        ];
        match given.iter().find(|(_, set, applies)| *set && !applies) {
            Some((name, _, _)) => Err(GcError::NotApplicable {
                name,
                optimizer: preset.name(),
            }),
            None => Ok(()),
        }
    }
}
