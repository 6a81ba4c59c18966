//! "Ghost" batch norm: in training, the batch split into groups of a chosen size that each
//! normalize with their own statistics, as on several devices each normalizing its share of the
//! batch (PyTorch's `DataParallel`, which the seed's ImageNet, Mini-ImageNet and fine-grained runs
//! used with 4 GPUs).
//!
//! The size is set for a stretch of code on one thread ([`with_group`]), so that a model's
//! forward pass needs no new argument; it holds for every batch norm that
//! [`forward`](super::forward) and [`forward_relu`](super::forward_relu) run in training mode on
//! this thread. Inference uses the running statistics, whatever the size.
//!
//! The running statistics follow the first group alone: `DataParallel` runs a replica of the
//! model per device, and only the first device's replica shares its buffers with the model, so
//! the other devices' updates are dropped. Replicas that really run on other devices drop theirs
//! the same way ([`without_running`]).

use std::cell::Cell;

use burn::nn::BatchNorm;
use burn::tensor::Tensor;

thread_local! {
    static GROUP: Cell<Option<usize>> = const { Cell::new(None) };
    static RUNNING: Cell<bool> = const { Cell::new(true) };
}

/// Run `f` with every training-mode batch norm of this thread normalizing groups of `group`
/// samples (`None`, or a size at least the batch: the whole batch, as usual). A batch that `group`
/// does not divide ends with a smaller group.
///
/// ```
/// use burn::nn::BatchNormConfig;
/// use burn::tensor::{Device, Distribution, Tensor};
/// use flex_kernels::batch_norm::{self, ghost};
///
/// let device = Device::flex().autodiff();
/// let bn = BatchNormConfig::new(3).init(&device);
/// let x = Tensor::<4>::random([8, 3, 2, 2], Distribution::Default, &device);
/// let y = ghost::with_group(Some(4), || batch_norm::forward(&bn, x.clone()));
/// // Each half of the batch is normalized on its own: its mean per channel is 0.
/// let half = y.narrow(0, 0, 4).swap_dims(0, 1).reshape([3, 16]).mean_dim(1);
/// assert!(half.abs().max().into_scalar::<f32>() < 1e-5);
/// ```
pub fn with_group<T>(group: Option<usize>, f: impl FnOnce() -> T) -> T {
    crate::with_setting(&GROUP, group, f)
}

/// Run `f` with every training-mode batch norm of this thread leaving the running statistics alone:
/// for the replicas of a data-parallel step but the first device's, whose statistics alone are kept
/// (see the module's documentation). burn's running statistics average the updates of every
/// thread that made one, in whatever order the threads come; this keeps them deterministic.
///
/// ```
/// use burn::nn::BatchNormConfig;
/// use burn::tensor::{Device, Distribution, Tensor};
/// use flex_kernels::batch_norm::{self, ghost};
///
/// let device = Device::flex().autodiff();
/// let bn = BatchNormConfig::new(3).init(&device);
/// let x = Tensor::<4>::random([8, 3, 2, 2], Distribution::Default, &device);
/// let before = bn.running_mean.value_sync().into_data();
/// ghost::without_running(|| batch_norm::forward(&bn, x.clone()));
/// assert_eq!(bn.running_mean.value_sync().into_data(), before);
/// batch_norm::forward(&bn, x);
/// assert_ne!(bn.running_mean.value_sync().into_data(), before);
/// ```
pub fn without_running<T>(f: impl FnOnce() -> T) -> T {
    crate::with_setting(&RUNNING, false, f)
}

/// Whether training-mode batch norms of this thread update the running statistics.
pub(super) fn updates_running() -> bool {
    RUNNING.with(Cell::get)
}

/// The group size for a batch of `n`, when it splits the batch.
pub(super) fn group(n: usize) -> Option<usize> {
    GROUP
        .with(Cell::get)
        .filter(|&group| group > 0 && group < n)
}

/// The training-mode batch norm of `x` in groups of `group` along the batch axis; the running
/// statistics from the first group.
pub(super) fn forward<const D: usize>(
    bn: &BatchNorm,
    x: Tensor<D>,
    relu: bool,
    group: usize,
) -> Tensor<D> {
    let parts = x
        .split(group, 0)
        .into_iter()
        .enumerate()
        .map(|(k, part)| super::whole(bn, part, relu, k == 0))
        .collect();
    Tensor::cat(parts, 0)
}

/// burn's training-mode batch norm (biased variance over every axis but the channels) without
/// touching the running statistics, for the groups after the first when burn's operations are
/// asked for ([`crate::use_burn_ops`]).
pub(super) fn burns_without_running<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let dims = x.dims();
    let channels = dims[1];
    let mut per_channel = [1usize; D];
    per_channel[1] = channels;
    let flat: Tensor<2> = x.clone().swap_dims(0, 1).reshape([channels as i64, -1]);
    let mean = flat.clone().mean_dim(1);
    let variance = (flat - mean.clone()).powi_scalar(2).mean_dim(1);
    let mean: Tensor<D> = mean.reshape(per_channel);
    let std: Tensor<D> = variance.add_scalar(bn.epsilon).sqrt().reshape(per_channel);
    let gamma: Tensor<D> = bn.gamma.val().reshape(per_channel);
    let beta: Tensor<D> = bn.beta.val().reshape(per_channel);
    (x - mean) / std * gamma + beta
}
