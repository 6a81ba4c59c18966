//! Tables and plots from finished runs (their `summary.json` files only).

pub mod plot;
pub mod style;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::train::Summary;
use crate::train::files::write_atomic;

/// The runs of one arm (one label), over seeds.
#[derive(Debug, Clone)]
pub struct Arm {
    /// The arm's label.
    pub label: String,
    /// Its runs, one per seed.
    pub runs: Vec<Summary>,
}

impl Arm {
    /// The runs that did not diverge: the tables' means and the curves are theirs.
    pub fn completed(&self) -> impl Iterator<Item = &Summary> {
        self.runs.iter().filter(|run| run.diverged.is_none())
    }

    /// How many runs diverged.
    pub fn diverged(&self) -> usize {
        self.runs
            .iter()
            .filter(|run| run.diverged.is_some())
            .count()
    }
}

/// Group summaries by label, keeping the order in which labels first appear.
pub fn arms(summaries: Vec<Summary>) -> Vec<Arm> {
    let mut arms: Vec<Arm> = Vec::new();
    for summary in summaries {
        match arms
            .iter_mut()
            .find(|arm| arm.label == summary.config.label)
        {
            Some(arm) => arm.runs.push(summary),
            None => arms.push(Arm {
                label: summary.config.label.clone(),
                runs: vec![summary],
            }),
        }
    }
    arms
}

/// Every `summary.json` under `paths` (files or folders, searched recursively), sorted by path.
pub fn find_summaries(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Summary)>> {
    fn walk(path: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
        if path.is_file() {
            found.push(path.to_path_buf());
        } else if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                if entry.is_dir() {
                    walk(&entry, found)?;
                } else if entry.file_name().is_some_and(|n| n == "summary.json") {
                    found.push(entry);
                }
            }
        } else {
            bail!("{} does not exist", path.display());
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        walk(path, &mut files)?;
    }
    if files.is_empty() {
        bail!(
            "no summary.json under {}; a run writes one when it finishes",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let summary: Summary = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a run summary", file.display()))?;
            Ok((file, summary))
        })
        .collect()
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// The first epoch whose training loss is at most `target`.
fn epochs_to(summary: &Summary, target: f64) -> Option<usize> {
    summary
        .epochs
        .iter()
        .find(|m| m.train_loss <= target)
        .map(|m| m.epoch)
}

/// The default target loss: the highest final training loss of any run that did not diverge,
/// so every such run reaches it and the column compares how fast.
pub fn default_target(arms: &[Arm]) -> f64 {
    arms.iter()
        .flat_map(Arm::completed)
        .filter_map(|run| run.epochs.last().map(|m| m.train_loss))
        .fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a })
}

/// What a run trained, in one line: model, data, epochs, batch.
pub fn setup(run: &Summary) -> String {
    format!(
        "{} on {} ({} training / {} test images), {} epochs, batch {}",
        run.config.model,
        run.data.name,
        run.data.train_images,
        run.data.test_images,
        run.config.epochs,
        run.config.batch_size,
    )
}

/// The Markdown comparison table.
pub fn table(arms: &[Arm], target: f64) -> String {
    let mut out = String::new();
    let first = arms.first().and_then(|a| a.runs.first());
    if let Some(run) = first {
        out.push_str(&format!("{}\n\n", setup(run)));
    }
    out.push_str(&format!(
        "| arm | lr | seeds | final test top-1 (%) | best test top-1 (%) | final train loss | epochs to train loss <= {target:.4} |\n"
    ));
    out.push_str("|---|---|---|---|---|---|---|\n");
    for arm in arms {
        let completed: Vec<&Summary> = arm.completed().collect();
        let finals: Vec<f64> = completed.iter().map(|r| r.final_test_top1).collect();
        let bests: Vec<f64> = completed.iter().map(|r| r.best_test_top1).collect();
        let losses: Vec<f64> = completed
            .iter()
            .filter_map(|r| r.epochs.last().map(|m| m.train_loss))
            .collect();
        let reached: Vec<f64> = completed
            .iter()
            .filter_map(|r| epochs_to(r, target).map(|e| e as f64))
            .collect();
        let cell = |values: &[f64], digits: usize| {
            if values.is_empty() {
                return "diverged".to_string();
            }
            let (mean, std) = mean_std(values);
            format!("{mean:.digits$} ± {std:.digits$}")
        };
        let reach = if completed.is_empty() {
            "diverged".to_string()
        } else if reached.len() == completed.len() {
            cell(&reached, 1)
        } else {
            format!(
                "not reached by {} of {}",
                completed.len() - reached.len(),
                completed.len()
            )
        };
        let interrupted = arm.runs.iter().filter(|r| r.interrupted).count();
        let mut notes = Vec::new();
        if interrupted > 0 {
            notes.push(format!("{interrupted} interrupted"));
        }
        if arm.diverged() > 0 {
            notes.push(format!("{} diverged", arm.diverged()));
        }
        let label = if notes.is_empty() {
            arm.label.clone()
        } else {
            format!("{} ({})", arm.label, notes.join(", "))
        };
        // The base rate, to 6 significant digits (0.05 × 0.1 prints as 0.005).
        let lr = arm.runs.first().map_or(String::new(), |r| {
            format!(
                "{}",
                format!("{:.5e}", r.config.lr)
                    .parse::<f64>()
                    .unwrap_or(r.config.lr)
            )
        });
        out.push_str(&format!(
            "| {label} | {lr} | {} | {} | {} | {} | {reach} |\n",
            arm.runs.len(),
            cell(&finals, 2),
            cell(&bests, 2),
            cell(&losses, 4),
        ));
    }
    out.push_str(
        "\nmean ± sample standard deviation over seeds; a run that diverged (its loss or a \
         gradient stopped being finite) is counted, not averaged.\n",
    );
    out
}

/// Write `comparison.md`, `loss.{svg,png}` and `accuracy.{svg,png}` into `dir`; returns the paths.
pub fn write_report(arms: &[Arm], target: Option<f64>, dir: &Path) -> Result<Vec<PathBuf>> {
    let target = target.unwrap_or_else(|| default_target(arms));
    let table = table(arms, target);
    let md = dir.join("comparison.md");
    write_atomic(&md, table.as_bytes())?;
    let mut written = vec![md];
    written.extend(plot::curves(arms, dir)?);
    Ok(written)
}

/// Group per-epoch values over an arm's runs that did not diverge: for each epoch, the values of
/// the runs that have it.
pub fn per_epoch(
    arm: &Arm,
    value: impl Fn(&crate::train::EpochMetrics) -> f64,
) -> BTreeMap<usize, Vec<f64>> {
    let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for run in arm.completed() {
        for m in &run.epochs {
            by_epoch.entry(m.epoch).or_default().push(value(m));
        }
    }
    by_epoch
}

/// `gclab report`: the table and plots of the runs under `runs` (searched for `summary.json`),
/// written into `out` (default: the first folder); prints the table and the files written.
pub fn redraw(runs: &[PathBuf], out: Option<PathBuf>, target_loss: Option<f64>) -> Result<()> {
    let found = find_summaries(runs)?;
    let out = match out {
        Some(out) => out,
        None => runs.first().context("no run folders given")?.clone(),
    };
    crate::train::files::create_dir(&out)?;
    let arms = arms(found.into_iter().map(|(_, s)| s).collect());
    show_report(&arms, target_loss, &out)
}

/// [`write_report`], then prints the table and the paths of the files written.
pub fn show_report(arms: &[Arm], target: Option<f64>, dir: &Path) -> Result<()> {
    let written = write_report(arms, target, dir)?;
    println!("{}", std::fs::read_to_string(&written[0])?);
    for path in &written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::augment::Augment;
    use crate::models::ModelName;
    use crate::train::schedule::Schedule;
    use crate::train::{DataInfo, EpochMetrics, RunConfig};
    use gradient_centralization::Hyperparameters;

    pub(crate) fn summary(label: &str, seed: u64, losses: &[f64], accs: &[f64]) -> Summary {
        let epochs: Vec<EpochMetrics> = losses
            .iter()
            .zip(accs)
            .enumerate()
            .map(|(i, (&l, &a))| EpochMetrics {
                epoch: i + 1,
                lr: 0.1,
                train_loss: l,
                train_top1: a,
                test_loss: l,
                test_top1: a,
                test_top5: 100.0,
                seconds: 1.0,
                images_per_second: 100.0,
            })
            .collect();
        Summary {
            config: RunConfig {
                label: label.into(),
                model: ModelName::SMALL_CNN,
                optimizer: "sgd".into(),
                hyper: Hyperparameters::default(),
                lr: 0.1,
                schedule: Schedule::Constant,
                warmup_epochs: 0,
                epochs: losses.len(),
                batch_size: 8,
                seed,
                augment: Augment::None,
                test_augment: Augment::None,
                workers: 1,
                init: Default::default(),
                drop_last: Default::default(),
                bn_batch: None,
                device: Default::default(),
                pretrained: None,
            },
            data: DataInfo {
                name: "tiny".into(),
                source: "nowhere".into(),
                train_images: 10,
                test_images: 5,
                trained_per_epoch: 10,
                scored: 5,
            },
            final_test_top1: *accs.last().unwrap(),
            best_test_top1: accs.iter().cloned().fold(f64::MIN, f64::max),
            best_epoch: 1,
            epochs,
            seconds: 1.0,
            interrupted: false,
            diverged: None,
        }
    }

    #[test]
    fn the_table_gives_mean_and_std_over_seeds_and_epochs_to_target() {
        let arms = arms(vec![
            summary("sgd", 0, &[1.0, 0.5, 0.3], &[50.0, 60.0, 70.0]),
            summary("sgd_gc", 0, &[0.8, 0.3, 0.2], &[55.0, 66.0, 72.0]),
            summary("sgd", 1, &[1.0, 0.6, 0.4], &[52.0, 61.0, 74.0]),
        ]);
        assert_eq!(arms.len(), 2);
        assert_eq!(default_target(&arms), 0.4);
        let table = table(&arms, 0.4);
        // sgd: finals 70, 74 -> 72 ± 2.83; epochs to 0.4: 3 and 3.
        assert!(
            table.contains(
                "| sgd | 0.1 | 2 | 72.00 ± 2.83 | 72.00 ± 2.83 | 0.3500 ± 0.0707 | 3.0 ± 0.0 |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| sgd_gc | 0.1 | 1 | 72.00 ± 0.00 |"),
            "{table}"
        );
        assert!(table.contains("| 2.0 ± 0.0 |"), "{table}");
    }

    /// A run that diverged is counted beside the label, left out of the means, the target and
    /// the curves; an arm whose runs all diverged says so in every cell.
    #[test]
    fn diverged_runs_are_counted_not_averaged() {
        let diverged = |label: &str, seed| Summary {
            diverged: Some(crate::train::Diverged {
                epoch: 2,
                step: 5,
                message: "the loss became NaN".into(),
            }),
            ..summary(label, seed, &[9.0], &[10.0])
        };
        let arms = arms(vec![
            summary("sgd", 0, &[1.0, 0.5, 0.3], &[50.0, 60.0, 70.0]),
            diverged("sgd", 1),
            diverged("sgd_gc", 0),
        ]);
        assert_eq!(default_target(&arms), 0.3);
        let table = table(&arms, 0.3);
        assert!(
            table.contains(
                "| sgd (1 diverged) | 0.1 | 2 | 70.00 ± 0.00 | 70.00 ± 0.00 | 0.3000 ± 0.0000 | 3.0 ± 0.0 |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| sgd_gc (1 diverged) | 0.1 | 1 | diverged | diverged | diverged | diverged |"
            ),
            "{table}"
        );
        let accuracy = per_epoch(&arms[0], |m| m.test_top1);
        assert_eq!(
            accuracy[&1],
            [50.0],
            "the diverged run's epoch is not drawn"
        );
        assert_eq!(
            plot::legend(&arms)[0].1,
            "sgd (n=1, 1 diverged)",
            "the legend counts both"
        );
    }
}
