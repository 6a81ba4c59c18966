//! The per-element arithmetic of each seed optimizer's step, as data: what a GPU kernel needs to be
//! told (the flex kernels get the same arithmetic as closures, compiled into their loops).
//!
//! Every scalar is rounded to f32 as the tensor path's `mul_scalar`/`add_scalar` round it, and every
//! variant's documented expression is the tensor path's, operation for operation. `d` is the
//! centralized gradient `GC(g + l2·w)`; the states are zero before the first step.

// Read only by the GPU kernel's host code.
#![cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]

/// One optimizer step's update of a weight `w` and its states from the centralized gradient `d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rule {
    /// Plain SGD: `w − (d·lr + w·decay)`, the decay term only when `decay != 0` (decoupled, as
    /// SGDW).
    Sgd { lr: f32, decay: f32 },
    /// SGD with momentum: `b = first ? d : b·mu + d·keep`, `d' = nesterov ? d + b·mu : b`, then as
    /// [`Rule::Sgd`] with `d'`. State: `[b]`.
    Momentum {
        lr: f32,
        decay: f32,
        mu: f32,
        keep: f32,
        nesterov: bool,
    },
    /// Adam (coupled L2 goes into `d`): `m = m·β₁ + d·k₁`, `v = v·β₂ + (d·d)·k₂`,
    /// `w − (m/(√v/root2 + eps))·step`. States: `[m, v]`.
    Adam {
        moments: Moments,
        root2: f32,
        eps: f32,
        step: f32,
    },
    /// The seed's AdamW: moments as Adam, `w − (m/(√v + eps) + w·decay)·step`.
    AdamWSeed {
        moments: Moments,
        eps: f32,
        decay: f32,
        step: f32,
    },
    /// torch's AdamW: moments as Adam, `w − ((m/(√v/root2 + eps))·step + w·decay)`.
    AdamWTorch {
        moments: Moments,
        root2: f32,
        eps: f32,
        step: f32,
        decay: f32,
    },
    /// Adagrad: `s = first ? d·d + init : s + d·d`, `w − (d/(√s + eps))·lr`. State: `[s]`.
    Adagrad { init: f32, eps: f32, lr: f32 },
}

/// The moment decay rates of the Adam family and their complements, `(β₁, 1 − β₁, β₂, 1 − β₂)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Moments {
    pub(crate) beta1: f32,
    pub(crate) keep1: f32,
    pub(crate) beta2: f32,
    pub(crate) keep2: f32,
}

impl Moments {
    /// From the betas in f64, as the tensor path rounds them.
    pub(crate) fn of((beta1, beta2): (f64, f64)) -> Self {
        Moments {
            beta1: beta1 as f32,
            keep1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            keep2: (1.0 - beta2) as f32,
        }
    }
}

impl Rule {
    /// How many state tensors the rule reads and writes.
    pub(crate) fn states(&self) -> usize {
        match self {
            Rule::Sgd { .. } => 0,
            Rule::Momentum { .. } | Rule::Adagrad { .. } => 1,
            Rule::Adam { .. } | Rule::AdamWSeed { .. } | Rule::AdamWTorch { .. } => 2,
        }
    }
}
