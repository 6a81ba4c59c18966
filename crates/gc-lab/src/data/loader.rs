//! Batches built ahead of the training loop by worker threads.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use super::augment::{Augment, Rng, write_image};
use super::{ImageSet, Normalize};

/// One batch: inputs `[n, c, h, w]` normalized, and labels.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Inputs, row-major.
    pub inputs: Vec<f32>,
    /// Labels.
    pub labels: Vec<i64>,
}

/// An epoch's batches, made by `workers` threads, each keeping up to `prefetch` batches ready.
///
/// Batch `b` is made by worker `b % workers` with a generator keyed by (seed, epoch, b), so the
/// batches are the same whatever the number of workers.
pub struct Batches {
    receivers: Vec<Receiver<Batch>>,
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
    pub fn start(
        set: Arc<ImageSet>,
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
                    if sender.send(batch).is_err() {
                        return; // the epoch was abandoned
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
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.count {
            return None;
        }
        let worker = self.next % self.receivers.len();
        self.next += 1;
        // A worker only stops early if it panicked; surface that rather than hang.
        Some(
            self.receivers[worker]
                .recv()
                .expect("a batch worker thread died"),
        )
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

fn make_batch(set: &ImageSet, normalize: &Normalize, plan: &EpochPlan, b: usize) -> Batch {
    let start = b * plan.batch_size;
    let indices = &plan.order[start..(start + plan.batch_size).min(plan.order.len())];
    let len = set.image_len();
    let mut inputs = vec![0f32; indices.len() * len];
    let mut rng = Rng::new(&[plan.keys[0], plan.keys[1], b as u64]);
    for (slot, &i) in indices.iter().enumerate() {
        write_image(
            set.image(i),
            (set.channels, set.height, set.width),
            plan.augment,
            normalize,
            &mut rng,
            &mut inputs[slot * len..(slot + 1) * len],
        );
    }
    Batch {
        inputs,
        labels: indices.iter().map(|&i| set.labels[i] as i64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ImageSet {
        ImageSet {
            channels: 1,
            height: 2,
            width: 2,
            pixels: (0..40).collect(),
            labels: (0..10).map(|i| i % 3).collect(),
            classes: 3,
        }
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
            .map(|b| (b.inputs, b.labels))
            .collect()
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
