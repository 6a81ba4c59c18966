//! Lookahead around any optimizer: slow weights pulled towards the fast ones every `k` steps; the
//! seed's standalone wrapper and its Ranger's integrated one differ in phase.

use burn::optim::{LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use super::{Gc, GcOptimizer, RAdam, RAdamConfig};
use crate::RecordState;
use crate::error::{GcError, check};

/// When the slow weights start and sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The seed's `algorithm-GC/algorithm/Lookahead.py`: the slow weights are taken after the first
    /// step and sync after steps 1, 1 + k, 1 + 2k, ... (the sync after step 1 leaves the weights
    /// as they are). One step later than the paper's Algorithm 1.
    Seed,
    /// Zhang et al., "Lookahead Optimizer: k steps forward, 1 step back" (2019), Algorithm 1, as
    /// the seed's `Ranger.py` integrates it: the slow weights start at the initial weights and sync
    /// after steps k, 2k, ...
    Paper,
}

/// Configuration of [`Lookahead`]: `k` fast steps, then `slow = slow + α·(w − slow)`, `w = slow`.
/// Defaults are the seed's wrapper: k 5, α 0.5, [`Phase::Seed`].
///
/// ```
/// use gradient_centralization::optim::{LookaheadConfig, SgdConfig};
///
/// let sgd = SgdConfig::new().with_momentum(0.9).build().unwrap();
/// let lookahead = LookaheadConfig::new().with_k(5).build(sgd).unwrap();
/// assert!(LookaheadConfig::new().with_alpha(1.5).build(lookahead.inner().clone()).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LookaheadConfig {
    k: usize,
    alpha: f64,
    phase: Phase,
}

impl Default for LookaheadConfig {
    fn default() -> Self {
        Self {
            k: 5,
            alpha: 0.5,
            phase: Phase::Seed,
        }
    }
}

impl LookaheadConfig {
    /// The seed's wrapper defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The seed's Ranger: k 6, α 0.5, [`Phase::Paper`].
    pub fn ranger() -> Self {
        Self {
            k: 6,
            alpha: 0.5,
            phase: Phase::Paper,
        }
    }

    /// Fast steps per sync (>= 1).
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// How far the slow weights move towards the fast ones, in [0, 1].
    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// When the slow weights start and sync.
    pub fn with_phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        self
    }

    /// Validate and wrap `inner`.
    pub fn build<O: Optimizer>(&self, inner: O) -> Result<Lookahead<O>, GcError> {
        check("k", self.k as f64, self.k >= 1, "an integer >= 1")?;
        check(
            "alpha",
            self.alpha,
            (0.0..=1.0).contains(&self.alpha),
            "a number in [0, 1]",
        )?;
        Ok(Lookahead {
            inner,
            config: *self,
        })
    }
}

/// The seed's Ranger: [`RAdam`] (rectified from `ρₜ > 5`, betas (0.95, 0.999), eps 1e-5) inside
/// [`Lookahead`] (k 6, α 0.5, [`Phase::Paper`]).
pub type Ranger = Lookahead<RAdam>;

/// Build the seed's Ranger from its two parts (see [`RAdamConfig::ranger`] and
/// [`LookaheadConfig::ranger`] for the defaults).
pub fn ranger(radam: RAdamConfig, lookahead: LookaheadConfig) -> Result<Ranger, GcError> {
    lookahead.build(radam.build()?)
}

/// Lookahead around the optimizer `O` (see [`LookaheadConfig`]). GC belongs to the inner
/// optimizer: the slow weights are a running mix of weights, never centralized themselves.
///
/// Each parameter counts its own steps, as burn steps one tensor at a time; the seed's wrapper
/// keeps one counter per parameter group and syncs every parameter of the group. They agree when
/// every parameter has a gradient at every step; a parameter that misses steps syncs later here.
#[derive(Debug, Clone)]
pub struct Lookahead<O> {
    inner: O,
    config: LookaheadConfig,
}

impl<O> Lookahead<O> {
    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

/// The inner optimizer's state, the slow weights and the position in the cycle of `k` steps.
#[derive(RecordState, Clone)]
pub struct LookaheadState<S, const D: usize>
where
    S: RecordState + Clone,
{
    /// The inner optimizer's state.
    pub inner: Option<S>,
    /// The slow weights.
    pub slow: Tensor<D>,
    /// Steps taken modulo `k`.
    pub counter: usize,
}

impl<O: Optimizer> Optimizer for Lookahead<O> {
    type State<const D: usize> = LookaheadState<O::State<D>, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let LookaheadConfig { k, alpha, phase } = self.config;
        let (inner, slow, counter) = match state {
            Some(state) => (state.inner, Some(state.slow), state.counter),
            None => {
                let slow = (phase == Phase::Paper).then(|| tensor.clone());
                (None, slow, 0)
            }
        };
        let (fast, inner) = self.inner.step(lr, tensor, grad, inner);
        let sync = match phase {
            Phase::Seed => counter == 0,
            Phase::Paper => (counter + 1) % k == 0,
        };
        let slow = slow.unwrap_or_else(|| fast.clone());
        let (fast, slow) = if sync {
            let slow = slow.clone() + (fast - slow).mul_scalar(alpha);
            (slow.clone(), slow)
        } else {
            (fast, slow)
        };
        let state = LookaheadState {
            inner,
            slow,
            counter: (counter + 1) % k,
        };
        (fast, Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        LookaheadState {
            inner: state.inner.map(|inner| O::to_device(inner, device)),
            slow: state.slow.to_device(device),
            counter: state.counter,
        }
    }
}

impl<O: GcOptimizer> GcOptimizer for Lookahead<O> {
    fn with_gc(&self, gc: Gc) -> Self {
        Self {
            inner: self.inner.with_gc(gc),
            config: self.config,
        }
    }
}
