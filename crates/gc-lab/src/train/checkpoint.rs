//! Checkpoints: model, optimizer and progress, replaced atomically after every epoch.
//!
//! A checkpoint is a folder `checkpoint/` holding `model.bpk`, `optimizer.bpk` and `state.json`. It is
//! written whole into `checkpoint.tmp/`, then swapped in by renames, so a crash at any moment leaves
//! either the previous checkpoint or the new one, never a mix. The schedule and the data order are
//! functions of (seed, epoch, step), so they need no state of their own.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::files::write_atomic;
use crate::models::Net;

/// What a checkpoint records besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Epochs finished (and saved) so far.
    pub epochs_done: usize,
}

fn dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}

/// Save after `epochs_done` epochs.
pub fn save(
    run: &Path,
    model: &Net,
    optimizer: &ModuleOptimizer,
    epochs_done: usize,
) -> Result<()> {
    let tmp = run.join("checkpoint.tmp");
    let old = run.join("checkpoint.old");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    model
        .clone()
        .save_file(tmp.join("model.bpk"))
        .with_context(|| {
            format!(
                "cannot write {} (is the disk full?)",
                tmp.join("model.bpk").display()
            )
        })?;
    optimizer.save(tmp.join("optimizer.bpk")).with_context(|| {
        format!(
            "cannot write {} (is the disk full?)",
            tmp.join("optimizer.bpk").display()
        )
    })?;
    write_atomic(
        &tmp.join("state.json"),
        serde_json::to_string(&State { epochs_done })?.as_bytes(),
    )?;
    // On disk before the swap, so that a power cut cannot leave a checkpoint of empty files.
    for name in ["model.bpk", "optimizer.bpk"] {
        let path = tmp.join(name);
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {} (is the disk full?)", path.display()))?;
    }
    let current = dir(run);
    let _ = std::fs::remove_dir_all(&old);
    if current.exists() {
        std::fs::rename(&current, &old)
            .with_context(|| format!("cannot move {} aside", current.display()))?;
    }
    std::fs::rename(&tmp, &current)
        .with_context(|| format!("cannot move {} into place", tmp.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The newest complete checkpoint of `run`, if any: `checkpoint/`, or `checkpoint.old/` when a crash
/// came between the two renames of [`save`].
pub fn find(run: &Path) -> Option<(PathBuf, State)> {
    [dir(run), run.join("checkpoint.old")]
        .into_iter()
        .find_map(|dir| {
            let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
            let state: State = serde_json::from_str(&text).ok()?;
            (dir.join("model.bpk").is_file() && dir.join("optimizer.bpk").is_file())
                .then_some((dir, state))
        })
}

/// Load the model's tensors (and parameter ids) from `checkpoint`.
pub fn load_model(checkpoint: &Path, model: Net) -> Result<Net> {
    let path = checkpoint.join("model.bpk");
    model
        .try_load_file(&path)
        .map_err(|err| anyhow::anyhow!("{err:?}"))
        .with_context(|| {
            format!(
                "cannot load {}: not a checkpoint of this model",
                path.display()
            )
        })
}

/// Load the optimizer's state from `checkpoint`.
pub fn load_optimizer(checkpoint: &Path, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path = checkpoint.join("optimizer.bpk");
    if !path.is_file() {
        bail!("{} is missing", path.display());
    }
    optimizer
        .load(&path)
        .map_err(|err| anyhow::anyhow!("{err:?}"))
        .with_context(|| format!("cannot load {}", path.display()))
}
