//! The run folder: started afresh or resumed from its checkpoint, the epochs it holds, each new
//! epoch's line, and the summary that finishes it.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::checkpoint::{self, State};
use super::files::{append_line, create_dir, write_atomic};
use super::{EpochMetrics, RunConfig, Summary};

/// Makes `out_dir` ready for a run of `config`: with `resume` and a checkpoint there, checks that
/// the folder's config is `config` and returns the checkpoint (its folder and state); otherwise
/// removes what an earlier run left and writes `config.json` and the header of `metrics.csv`.
pub fn prepare(
    config: &RunConfig,
    out_dir: &Path,
    resume: bool,
) -> Result<Option<(std::path::PathBuf, State)>> {
    create_dir(out_dir)?;
    let resumed = if resume {
        checkpoint::find(out_dir)
    } else {
        None
    };
    match &resumed {
        Some(_) => check_same_config(config, &out_dir.join("config.json"))?,
        None => {
            for stale in ["metrics.csv", "metrics.jsonl", "summary.json"] {
                let _ = std::fs::remove_file(out_dir.join(stale));
            }
            for stale in ["checkpoint", "checkpoint.old", "checkpoint.tmp"] {
                let _ = std::fs::remove_dir_all(out_dir.join(stale));
            }
            write_atomic(
                &out_dir.join("config.json"),
                serde_json::to_string_pretty(config)?.as_bytes(),
            )?;
            append_line(&out_dir.join("metrics.csv"), EpochMetrics::CSV_HEADER)?;
        }
    }
    Ok(resumed)
}

/// Appends one epoch's line to `metrics.csv` and `metrics.jsonl` (each synced before this returns).
pub fn append_epoch(out_dir: &Path, metrics: &EpochMetrics) -> Result<()> {
    append_line(&out_dir.join("metrics.csv"), &metrics.csv_row())?;
    append_line(
        &out_dir.join("metrics.jsonl"),
        &serde_json::to_string(metrics)?,
    )
}

/// Writes `summary.json`, atomically: the run is finished (or was interrupted, as it says).
pub fn finish(out_dir: &Path, summary: &Summary) -> Result<()> {
    write_atomic(
        &out_dir.join("summary.json"),
        serde_json::to_string_pretty(summary)?.as_bytes(),
    )
    .context("writing the run's summary")
}

/// A run folder may only be resumed with the config it was started with.
fn check_same_config(config: &RunConfig, path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let saved: RunConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a run config", path.display()))?;
    if !config.same_numbers_as(&saved) {
        bail!(
            "cannot resume {}: it was started with another config ({}); give another --out to start \
             a new run",
            path.display(),
            serde_json::to_string(&saved)?
        );
    }
    Ok(())
}

/// The metrics of the first `done` epochs, from `metrics.jsonl`; both metric files are rewritten to
/// hold exactly those (an interrupted epoch may have been logged after the last checkpoint).
pub fn saved_epochs(out_dir: &Path, done: usize) -> Result<Vec<EpochMetrics>> {
    let path = out_dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let epochs: Vec<EpochMetrics> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is corrupt", path.display()))?;
    if epochs.len() < done {
        bail!(
            "{} holds {} epochs but the checkpoint is after epoch {done}",
            path.display(),
            epochs.len()
        );
    }
    let epochs: Vec<EpochMetrics> = epochs.into_iter().take(done).collect();
    let mut jsonl = String::new();
    let mut csv = format!("{}\n", EpochMetrics::CSV_HEADER);
    for m in &epochs {
        jsonl.push_str(&serde_json::to_string(m)?);
        jsonl.push('\n');
        csv.push_str(&m.csv_row());
        csv.push('\n');
    }
    write_atomic(&path, jsonl.as_bytes())?;
    write_atomic(&out_dir.join("metrics.csv"), csv.as_bytes())?;
    Ok(epochs)
}
