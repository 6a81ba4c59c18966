//! `gclab sweep`: one setting (the learning rate, the seed's base rate, the weight decay) over a
//! grid of values, every arm and seed at each, then a table and plots of the final accuracy
//! and loss against the value.
//!
//! Each value is a `gclab compare` of its own in `<out>/<setting>=<value>/` (its runs, table
//! and curves), so a sweep resumes as a comparison does, value by value; the grid's report
//! (`sweep.md`, `sweep-accuracy.{svg,png}`, `sweep-loss.{svg,png}`) reads the runs' summaries.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use crate::compare::{CompareArgs, compare, resolve, timestamp};
use crate::report::plot::{Figure, spread, write};
use crate::report::{Arm, arms, find_summaries, mean_std, setup};
use crate::train::STOP;
use crate::train::files::{create_dir, write_atomic};

/// The grid, and the comparison run at each of its values.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// The setting the grid varies: lr (every arm's rate as given), base-lr (the seed's `--lr`,
    /// scaled per arm as `--base-lr` is), weight-decay.
    #[arg(long, value_enum)]
    pub over: Setting,
    /// Its values, comma-separated (sorted; each once).
    #[arg(long, value_delimiter = ',', required = true)]
    pub values: Vec<f64>,
    /// Everything else, as `gclab compare` takes it (`--out` default: `runs/sweep-<suite>-<time>`;
    /// `--out` and `--tensorboard` get a folder per value).
    #[command(flatten)]
    pub compare: CompareArgs,
}

/// A setting a sweep can vary.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Lr,
    BaseLr,
    WeightDecay,
}

impl Setting {
    /// The name on the command line, in folder names and on the plots' axis.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Lr => "lr",
            Setting::BaseLr => "base-lr",
            Setting::WeightDecay => "weight-decay",
        }
    }

    /// `args` with this setting at `value`.
    fn set(self, args: &mut CompareArgs, value: f64) {
        match self {
            Setting::Lr => args.lr = Some(value),
            Setting::BaseLr => args.base_lr = Some(value),
            Setting::WeightDecay => args.weight_decay = Some(value),
        }
    }

    /// Whether `args` already fix this setting (or, for the rates, the other one).
    fn given(self, args: &CompareArgs) -> bool {
        match self {
            Setting::Lr | Setting::BaseLr => args.lr.is_some() || args.base_lr.is_some(),
            Setting::WeightDecay => args.weight_decay.is_some(),
        }
    }
}

/// `values` in ascending order, each once (-0 as 0); an error for a value below 0 or not finite.
fn grid_values(values: &[f64]) -> Result<Vec<f64>> {
    if let Some(bad) = values.iter().find(|v| !v.is_finite() || **v < 0.0) {
        bail!("--values: {bad} is not a finite value of at least 0");
    }
    // -0 + 0 is 0: one folder, `=0`.
    let mut values: Vec<f64> = values.iter().map(|v| v + 0.0).collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    Ok(values)
}

/// The folder of one value of the grid: `<setting>=<value>`.
fn folder(setting: Setting, value: f64) -> String {
    format!("{}={value}", setting.name())
}

/// Runs the comparison at every value of the grid, then writes and prints the grid's report.
/// Ctrl-C ([`STOP`]) ends the current batch; what finished is kept for `--resume`.
pub fn sweep(args: SweepArgs) -> Result<()> {
    let values = grid_values(&args.values)?;
    if args.over.given(&args.compare) {
        bail!(
            "--over {} varies what --lr, --base-lr or --weight-decay fixes; drop that option",
            args.over.name()
        );
    }
    // The arms' labels, in the order given: the report's rows and legend follow it.
    let (_, presets) = resolve(&args.compare)?;
    let order: Vec<String> = presets.iter().map(|preset| preset.name()).collect();
    let out = args.compare.out.clone().unwrap_or_else(|| {
        let name = format!("sweep-{:?}-{}", args.compare.suite, timestamp());
        PathBuf::from("runs").join(name.to_lowercase())
    });
    create_dir(&out)?;
    for (i, &value) in values.iter().enumerate() {
        println!(
            "\n== {} = {value} ({} of {}) ==",
            args.over.name(),
            i + 1,
            values.len()
        );
        let mut compare_args = args.compare.clone();
        args.over.set(&mut compare_args, value);
        compare_args.out = Some(out.join(folder(args.over, value)));
        compare_args.tensorboard = args
            .compare
            .tensorboard
            .as_ref()
            .map(|events| events.join(folder(args.over, value)));
        compare(compare_args)?;
        if STOP.load(Ordering::SeqCst) {
            bail!(
                "interrupted; the finished runs are saved in {}",
                out.display()
            );
        }
    }
    let report = report(args.over, &values, &order, &out)?;
    println!("\n{report}");
    println!("wrote {}", out.join("sweep.md").display());
    Ok(())
}

/// The grid's arms at each value, from the summaries under `out`.
fn grid(setting: Setting, values: &[f64], out: &Path) -> Result<Vec<Vec<Arm>>> {
    values
        .iter()
        .map(|&value| {
            let dir = out.join(folder(setting, value));
            let found = find_summaries(&[dir])?;
            Ok(arms(found.into_iter().map(|(_, s)| s).collect()))
        })
        .collect()
}

/// What the grid's report gives of each run: a table of it and a figure.
struct Measure {
    /// The table's title.
    column: &'static str,
    /// The figure's title, its y axis and its file name.
    title: &'static str,
    y_label: &'static str,
    file: &'static str,
    /// Whether higher is better (the table's best value).
    higher: bool,
    value: fn(&crate::train::Summary) -> Option<f64>,
}

const MEASURES: [Measure; 2] = [
    Measure {
        column: "final test top-1 (%)",
        title: "Final test accuracy",
        y_label: "top-1 (%)",
        file: "sweep-accuracy",
        higher: true,
        value: |s| Some(s.final_test_top1),
    },
    Measure {
        column: "final train loss",
        title: "Final training loss",
        y_label: "cross-entropy",
        file: "sweep-loss",
        higher: false,
        value: |s| s.epochs.last().map(|m| m.train_loss),
    },
];

/// Writes `sweep.md` and the plots into `out`; returns the table. Arms are in the order of
/// `order` (their labels), any other after them in the order first seen.
pub fn report(setting: Setting, values: &[f64], order: &[String], out: &Path) -> Result<String> {
    let grid = grid(setting, values, out)?;
    // Every arm seen at any value.
    let mut labels: Vec<String> = Vec::new();
    for arm in grid.iter().flatten() {
        if !labels.contains(&arm.label) {
            labels.push(arm.label.clone());
        }
    }
    labels.sort_by_key(|label| order.iter().position(|o| o == label).unwrap_or(order.len()));
    let at = |label: &str, i: usize| grid[i].iter().find(|a| a.label == label);
    let columns: Vec<String> = values.iter().map(|&v| folder(setting, v)).collect();
    let mut text = String::new();
    if let Some(run) = grid.iter().flatten().flat_map(|a| &a.runs).next() {
        writeln!(
            text,
            "{}; mean ± std over seeds (runs); runs that diverged are counted, not averaged\n",
            setup(run)
        )?;
    }
    // The legend gives the most runs an arm has drawn at a value, and how many diverged in all.
    let legend: Vec<(String, String)> = labels
        .iter()
        .map(|label| {
            let arms = (0..values.len()).filter_map(|i| at(label, i));
            let drawn = arms
                .clone()
                .map(|a| a.completed().count())
                .max()
                .unwrap_or(0);
            let name = match arms.map(Arm::diverged).sum::<usize>() {
                0 => format!("{label} (n={drawn})"),
                d => format!("{label} (n={drawn}, {d} diverged)"),
            };
            (label.clone(), name)
        })
        .collect();
    // Per arm, per value: how many of its runs diverged there.
    let diverged: Vec<Vec<usize>> = labels
        .iter()
        .map(|label| {
            (0..values.len())
                .map(|i| at(label, i).map_or(0, Arm::diverged))
                .collect()
        })
        .collect();
    for measure in &MEASURES {
        // Per arm, per value: the measure of each of its runs there that did not diverge.
        let cells: Vec<Vec<Vec<f64>>> = labels
            .iter()
            .map(|label| {
                (0..values.len())
                    .map(|i| {
                        at(label, i)
                            .map(|a| a.completed().filter_map(measure.value).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        writeln!(text, "{}\n", measure.column)?;
        writeln!(text, "| arm | {} | best |", columns.join(" | "))?;
        writeln!(text, "|---|{}---|", "---|".repeat(columns.len()))?;
        for ((label, row_cells), row_diverged) in labels.iter().zip(&cells).zip(&diverged) {
            let mut row = format!("| {label} |");
            let mut best: Option<(f64, usize)> = None;
            for (i, (runs, &lost)) in row_cells.iter().zip(row_diverged).enumerate() {
                if runs.is_empty() {
                    match lost {
                        0 => row.push_str(" - |"),
                        n => row.push_str(&format!(" diverged ({n}) |")),
                    }
                    continue;
                }
                let (mean, std) = mean_std(runs);
                let lost = match lost {
                    0 => String::new(),
                    n => format!(", {n} diverged"),
                };
                row.push_str(&format!(" {mean:.4} ± {std:.4} ({}{lost}) |", runs.len()));
                let better =
                    best.is_none_or(|(b, _)| if measure.higher { mean > b } else { mean < b });
                if better {
                    best = Some((mean, i));
                }
            }
            let best = best.map_or("-".to_string(), |(_, i)| columns[i].clone());
            writeln!(text, "{row} {best} |")?;
        }
        writeln!(text)?;
        // The figure: a series per arm over the values, at positions 0, 1, ...
        let series = cells
            .iter()
            .map(|row_cells| {
                row_cells
                    .iter()
                    .enumerate()
                    .filter(|(_, runs)| !runs.is_empty())
                    .map(|(i, runs)| spread(i as f64, runs))
                    .collect()
            })
            .collect();
        let crosses: Vec<Vec<f64>> = diverged
            .iter()
            .map(|row| {
                let at = row.iter().enumerate().filter(|&(_, &n)| n > 0);
                at.map(|(i, _)| i as f64).collect()
            })
            .collect();
        let title = if crosses.iter().any(|xs| !xs.is_empty()) {
            format!("{} (× at the foot: runs that diverged)", measure.title)
        } else {
            measure.title.to_string()
        };
        let figure = Figure {
            title,
            x_label: setting.name().into(),
            y_label: measure.y_label.into(),
            x_names: Some(values.iter().map(|v| v.to_string()).collect()),
            series,
            diverged: crosses,
        };
        write(&figure, &legend, out, measure.file)?;
    }
    write_atomic(&out.join("sweep.md"), text.as_bytes())?;
    Ok(text)
}

#[cfg(test)]
mod tests;
