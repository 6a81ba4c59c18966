//! The Gradient Centralization lab: train real models with and without GC and show the difference.
//!
//! - [`data`]: datasets read from their official files, augmented and batched by worker threads.
//! - [`models`]: the models of the seed's suites and small ones for CPU runs.
//! - [`train`]: one run, written to a run folder as it goes.
//! - [`report`]: tables and plots from run folders.
//! - [`suites`]: the experiment presets.

pub mod data;
pub mod models;
pub mod report;
pub mod suites;
pub mod train;
