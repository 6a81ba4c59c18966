//! Batches built ahead of the training loop by worker threads.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::tensor::{Device, Int, Tensor, TensorData};

use serde::{Deserialize, Serialize};

use super::augment::{Augment, Rng, write_image};
use super::folder::write_file_image;
use super::{DataError, Images, Normalize};

/// Which passes drop the last, partial batch of an epoch (PyTorch's `DataLoader(drop_last=True)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DropLast {
    /// Training: `n mod batch` images sit out each epoch (which ones changes with the shuffle).
    pub train: bool,
    /// Testing: the last `n mod batch` test images, in their fixed order, are never scored.
    pub test: bool,
}

impl DropLast {
    /// The images of a pass over `n` images in batches of `batch`: all of them, or the whole
    /// batches' worth when `drop` is set.
    pub fn kept(drop: bool, n: usize, batch: usize) -> usize {
        if drop { n - n % batch.max(1) } else { n }
    }
}

/// One batch: inputs `[n, c, h, w]` normalized, and labels.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Inputs, row-major.
    pub inputs: Vec<f32>,
    /// Labels.
    pub labels: Vec<i64>,
}

impl Batch {
    /// The batch in `parts` consecutive shares of `ceil(n / parts)` images, the last ones smaller
    /// (as ghost batch norm groups it) and empty shares left out: one per device of a
    /// data-parallel step.
    pub fn split(self, parts: usize) -> Vec<Batch> {
        let n = self.labels.len();
        let share = n.div_ceil(parts.max(1)).max(1);
        let per_image = self.inputs.len().checked_div(n).unwrap_or(0);
        self.labels
            .chunks(share)
            .zip(self.inputs.chunks(share * per_image.max(1)))
            .map(|(labels, inputs)| Batch {
                inputs: inputs.to_vec(),
                labels: labels.to_vec(),
            })
            .collect()
    }

    /// The inputs as a `[n, channels, height, width]` tensor (`shape` is one image's) and the
    /// labels as an `[n]` tensor on `device`, with the labels themselves for scoring.
    pub fn into_tensors(
        self,
        shape: [usize; 3],
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>, Vec<i64>) {
        let n = self.labels.len();
        let [c, h, w] = shape;
        let x = Tensor::from_data(TensorData::new(self.inputs, [n, c, h, w]), device);
        let y = Tensor::from_data(TensorData::new(self.labels.clone(), [n]), device);
        (x, y, self.labels)
    }
}

/// An epoch's batches, made by `workers` threads, each keeping two batches ready.
///
/// Batch `b` is made by worker `b % workers` with a generator keyed by (seed, epoch, b), so the
/// batches are the same whatever the number of workers. A file that cannot be read or decoded
/// ends the epoch with its error.
pub struct Batches {
    receivers: Vec<Receiver<Result<Batch, DataError>>>,
    handles: Vec<JoinHandle<()>>,
    next: usize,
    count: usize,
}

/// What to load for one epoch.
#[derive(Debug, Clone)]
pub struct EpochPlan {
    /// Image indices in the order they are served.
    pub order: Vec<usize>,
    /// Images per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// Augmentation.
    pub augment: Augment,
    /// Keys of the augmentation generator: (seed, epoch).
    pub keys: [u64; 2],
}

impl Batches {
    /// Start the workers.
    ///
    /// `plan.augment` must suit `set` ([`Images::shape`]).
    pub fn start(
        set: Arc<Images>,
        normalize: Arc<Normalize>,
        plan: EpochPlan,
        workers: usize,
    ) -> Self {
        let workers = workers.max(1);
        let count = plan.order.len().div_ceil(plan.batch_size);
        let plan = Arc::new(plan);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for worker in 0..workers {
            let (sender, receiver) = sync_channel(2);
            let (set, normalize, plan) = (set.clone(), normalize.clone(), plan.clone());
            handles.push(std::thread::spawn(move || {
                for b in (worker..count).step_by(workers) {
                    let batch = make_batch(&set, &normalize, &plan, b);
                    let failed = batch.is_err();
                    if sender.send(batch).is_err() || failed {
                        return; // the epoch was abandoned, or cannot go on
                    }
                }
            }));
            receivers.push(receiver);
        }
        Batches {
            receivers,
            handles,
            next: 0,
            count,
        }
    }

    /// Number of batches in the epoch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the epoch has no batch.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Iterator for Batches {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.count {
            return None;
        }
        let worker = self.next % self.receivers.len();
        self.next += 1;
        // A worker stops early after sending an error (the epoch ends with it), or if it
        // panicked: surface that rather than hang.
        let batch = self.receivers[worker]
            .recv()
            .expect("a batch worker thread died");
        if batch.is_err() {
            self.next = self.count;
        }
        Some(batch)
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.receivers.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

fn make_batch(
    set: &Images,
    normalize: &Normalize,
    plan: &EpochPlan,
    b: usize,
) -> Result<Batch, DataError> {
    let start = b * plan.batch_size;
    let indices = &plan.order[start..(start + plan.batch_size).min(plan.order.len())];
    let [c, h, w] = set
        .shape(plan.augment)
        .expect("the transform was checked against the images before the epoch");
    let len = c * h * w;
    let mut inputs = vec![0f32; indices.len() * len];
    let mut rng = Rng::new(&[plan.keys[0], plan.keys[1], b as u64]);
    for (slot, &i) in indices.iter().enumerate() {
        let out = &mut inputs[slot * len..(slot + 1) * len];
        match set {
            Images::Memory(set) => write_image(
                set.image(i),
                (set.channels, set.height, set.width),
                plan.augment,
                normalize,
                &mut rng,
                out,
            ),
            Images::Files(set) => {
                write_file_image(&set.files[i], plan.augment, normalize, &mut rng, out)?
            }
        }
    }
    Ok(Batch {
        inputs,
        labels: indices.iter().map(|&i| set.label(i) as i64).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Images {
        Images::Memory(super::super::ImageSet {
            channels: 1,
            height: 2,
            width: 2,
            pixels: (0..40).collect(),
            labels: (0..10).map(|i| i % 3).collect(),
            classes: 3,
        })
    }

    fn collect(workers: usize) -> Vec<(Vec<f32>, Vec<i64>)> {
        let normalize = Normalize {
            mean: vec![0.0],
            std: vec![1.0],
        };
        let plan = EpochPlan {
            order: vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
            batch_size: 4,
            augment: Augment::CropFlip { pad: 1 },
            keys: [1, 2],
        };
        Batches::start(Arc::new(set()), Arc::new(normalize), plan, workers)
            .map(|b| b.unwrap())
            .map(|b| (b.inputs, b.labels))
            .collect()
    }

    /// Shares of ceil(n / parts) images, in order, the empty ones left out; each image's inputs
    /// stay with its label.
    #[test]
    fn a_batch_splits_into_shares_as_ghost_batch_norm_groups_it() {
        let batch = |n: usize| Batch {
            inputs: (0..n * 3).map(|i| i as f32).collect(),
            labels: (0..n as i64).collect(),
        };
        let sizes = |n, parts| -> Vec<usize> {
            batch(n)
                .split(parts)
                .iter()
                .map(|b| b.labels.len())
                .collect()
        };
        assert_eq!(sizes(8, 2), [4, 4]);
        assert_eq!(sizes(6, 4), [2, 2, 2]);
        assert_eq!(sizes(5, 4), [2, 2, 1]);
        assert_eq!(sizes(3, 1), [3]);
        for share in batch(5).split(2) {
            for (k, &label) in share.labels.iter().enumerate() {
                let first = label as f32 * 3.0;
                assert_eq!(
                    share.inputs[k * 3..k * 3 + 3],
                    [first, first + 1.0, first + 2.0]
                );
            }
        }
    }

    #[test]
    fn batches_come_in_order_and_do_not_depend_on_the_worker_count() {
        let one = collect(1);
        assert_eq!(one.len(), 3);
        assert_eq!(one[0].1, vec![0, 2, 1, 0]);
        assert_eq!(one[2].1.len(), 2);
        assert_eq!(one, collect(3));
    }
}
