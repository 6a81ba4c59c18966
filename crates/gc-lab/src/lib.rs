//! The Gradient Centralization lab: train real models with and without GC and show the difference.
//!
//! - [`data`]: datasets read from their official files, augmented and batched by worker threads.
//! - [`models`]: the models of the seed's suites and small ones for CPU runs; their convolutions
//!   and batch norms run on the `flex_kernels` crate.
//! - [`train`]: one run, written to a run folder as it goes.
//! - [`compare`]: arms x seeds on one suite, then the table and plots (`gclab compare`).
//! - [`report`]: tables and plots from run folders.
//! - [`plan`]: the GC plan of a lab model (`gclab plan`).
//! - [`recipe`]: a suite's resolved recipe (`gclab recipe`), held in a golden file.
//! - [`suites`]: the experiment presets; [`seed_arms`]: the seed's optimizer names per suite.

pub mod compare;
pub mod data;
pub mod device;
pub mod models;
pub mod plan;
pub mod recipe;
pub mod report;
pub mod seed_arms;
pub mod suites;
pub mod sweep;
pub mod train;

#[cfg(test)]
mod docs;

/// Tests that build or train models take turns: burn's CPU backend shares one thread pool, and
/// bit-for-bit comparisons between runs hold only when runs do not compete for it.
#[cfg(test)]
pub(crate) static TEST_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A fresh, empty folder for one test, unique to this process.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gclab-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
