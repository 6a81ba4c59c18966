//! GC in front of any burn optimizer.

use burn::optim::{LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use super::{Gc, GcOptimizer};

/// Any burn [`Optimizer`] with GC in front of it (or, with `Placement::Update`, after it).
///
/// With `Placement::Gradient` the inner optimizer sees `GC(g)`:
///
/// ```text
/// (w', s') = inner.step(lr, w, GC(g), s)
/// ```
///
/// so everything the inner optimizer adds itself comes after GC and is not centralized: burn's
/// `Sgd`/`Adam` weight decay (coupled, `g + λ·w` after GC, unlike the seed's `SGD_GC` which
/// centralizes the decay term too), AdamW's decoupled decay, Lion's sign, Lamb's trust ratio.
/// Gradient clipping configured on the `ModuleOptimizer` runs before the optimizer, hence before GC
/// (the seed's detection runs clip first too).
///
/// With `Placement::Update` the whole change of the weights is centralized:
/// `w'' = w − GC(w − w')`.
///
/// ```
/// use burn::optim::{AdamConfig, Optimizer};
/// use burn::tensor::{Device, Tensor};
/// use gradient_centralization::optim::{Centralized, Gc, GcOptimizer};
/// use gradient_centralization::{Centralize, Placement};
///
/// let device = Device::flex();
/// let adam = Centralized::new(AdamConfig::new().build())
///     .with_gc(Gc::new(Centralize::along(0), Placement::Gradient));
/// let w = Tensor::<2>::zeros([2, 3], &device);
/// let g = Tensor::<2>::from_floats([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]], &device);
/// let (w, _) = adam.step(0.1, w, g, None);
/// // Row 1's gradient is constant: GC removes it entirely, so row 1 does not move.
/// let row1: Vec<f32> = w.slice([1..2, 0..3]).into_data().try_to_vec().unwrap();
/// assert_eq!(row1, vec![0.0, 0.0, 0.0]);
/// ```
#[derive(Debug, Clone)]
pub struct Centralized<O> {
    inner: O,
    gc: Gc,
}

impl<O> Centralized<O> {
    /// Wrap `inner`, without GC until a plan (or [`GcOptimizer::with_gc`]) gives it an operation.
    pub fn new(inner: O) -> Self {
        Self {
            inner,
            gc: Gc::NONE,
        }
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

impl<O: Optimizer> Optimizer for Centralized<O> {
    type State<const D: usize> = O::State<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let grad = self.gc.on_gradient(grad);
        match self.gc.op {
            Some(_) if self.gc.placement == crate::Placement::Update => {
                let (updated, state) = self.inner.step(lr, tensor.clone(), grad, state);
                let delta = self.gc.on_update(tensor.clone() - updated);
                (tensor - delta, state)
            }
            _ => self.inner.step(lr, tensor, grad, state),
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        O::to_device(state, device)
    }
}

impl<O: Optimizer> GcOptimizer for Centralized<O> {
    fn with_gc(&self, gc: Gc) -> Self {
        Self {
            inner: self.inner.clone(),
            gc,
        }
    }
}
