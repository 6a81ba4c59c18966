//! The typed errors of the crate.

use thiserror::Error;

/// Everything that can go wrong when configuring or driving Gradient Centralization.
///
/// The library never panics on user input: invalid hyperparameters, bad rules, malformed trace
/// documents and non-finite gradients are all reported through this type. The one panic is a
/// misuse that burn's `Optimizer::step` gives no way to report: stepping a module whose
/// parameters the optimizer's plan has neither by id nor by path (see
/// [`GcConfig::init_with_plan`](crate::GcConfig::init_with_plan)).
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum GcError {
    /// A hyperparameter is outside its valid range.
    #[error("invalid hyperparameter `{name}` = {value}: {expected}")]
    InvalidHyperparameter {
        /// The hyperparameter's name, as in the PyTorch API (`lr`, `betas[0]`, `eps`, ...).
        name: &'static str,
        /// The offending value.
        value: f64,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// Nesterov momentum was requested with zero momentum or non-zero dampening.
    #[error(
        "nesterov momentum requires momentum > 0 and dampening = 0 (got momentum {momentum}, dampening {dampening})"
    )]
    Nesterov {
        /// The momentum that was given.
        momentum: f64,
        /// The dampening that was given.
        dampening: f64,
    },
    /// An optimizer name that is not one of the presets.
    #[error("unknown optimizer `{name}`; known names: {known}")]
    UnknownOptimizer {
        /// The name as given.
        name: String,
        /// The known names.
        known: String,
    },
    /// A hyperparameter was given to an optimizer that does not have it.
    #[error("hyperparameter `{name}` does not apply to `{optimizer}`")]
    NotApplicable {
        /// The hyperparameter.
        name: &'static str,
        /// The optimizer's name.
        optimizer: String,
    },
    /// A parameter-path rule is not a valid regular expression.
    #[error("rule pattern `{pattern}` is not a valid regular expression: {message}")]
    InvalidRule {
        /// The pattern as given.
        pattern: String,
        /// The regex compiler's message.
        message: String,
    },
    /// A rule asks to centralize along an axis the parameter does not have, or with groups that do
    /// not divide it.
    #[error("rule `{pattern}` cannot centralize `{path}` of shape {shape:?}: {reason}")]
    RuleDoesNotFit {
        /// The rule's pattern.
        pattern: String,
        /// The parameter's path in the module.
        path: String,
        /// The parameter's shape (burn layout).
        shape: Vec<usize>,
        /// Why it does not fit.
        reason: String,
    },
    /// A transposed convolution without a bias, which the plan would centralize per output
    /// channel: its groups cannot be read from the module, and a wrong guess mixes the output
    /// channels of independent groups.
    #[error(
        "`{path}` is a transposed convolution without a bias: its groups cannot be read from the \
         module; give them with a rule, e.g. `.with_rule(r\"^{pattern}$\", Rule::Groups(1))` for \
         an ungrouped layer, or leave it alone with `Rule::Skip`",
        pattern = regex::escape(.path)
    )]
    GroupsUnknown {
        /// The weight's path in the module.
        path: String,
    },
    /// A gradient holds NaN or infinite values.
    #[error(
        "gradient of `{path}` is not finite ({count} NaN/Inf values); lower the learning rate or clip gradients"
    )]
    NonFiniteGradient {
        /// The parameter's path in the module.
        path: String,
        /// How many elements are NaN or infinite.
        count: usize,
    },
    /// A trace document is malformed; `at` is the JSON path of the problem.
    #[error("trace document, at {at}: {message}")]
    Trace {
        /// JSON path of the problem, e.g. `$.params[2].grads[1]`.
        at: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl GcError {
    pub(crate) fn trace(at: impl Into<String>, message: impl Into<String>) -> Self {
        GcError::Trace {
            at: at.into(),
            message: message.into(),
        }
    }
}

/// Check a hyperparameter and name it in the error.
pub(crate) fn check(
    name: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<(), GcError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(GcError::InvalidHyperparameter {
            name,
            value,
            expected,
        })
    }
}

/// Validate a learning rate: finite and non-negative.
pub fn check_lr(lr: f64) -> Result<(), GcError> {
    check("lr", lr, lr >= 0.0, "a finite number >= 0")
}
