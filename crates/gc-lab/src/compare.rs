//! `gclab compare`: several optimizers (arms) over several seeds on one suite, each run in its own
//! folder, then the table and the plots.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use clap::Args;
use gradient_centralization::Preset;

use crate::models::ModelName;
use crate::report::{arms, show_report};
use crate::suites::{Suite, hyper_for, lr_for};
use crate::train::files::create_dir;
use crate::train::{RunConfig, STOP, Summary, progress_bar, run};

/// What to compare, and how; every setting the suite gives can be overridden.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The suite: dataset, model and schedule.
    #[arg(long, value_enum, default_value_t = Suite::Fashion)]
    pub suite: Suite,
    /// Optimizers, comma-separated, by the seed's names (sgd, sgd_gc, SGD_GCC, adam_gc, AdamW_GCC, ...).
    #[arg(
        long,
        alias = "alg",
        value_delimiter = ',',
        default_value = "sgd,sgd_gc"
    )]
    pub arms: Vec<String>,
    /// Number of seeds per arm (seeds 0, 1, ...).
    #[arg(long, default_value_t = 2)]
    pub seeds: u64,
    /// The model (default: the suite's).
    #[arg(long)]
    pub model: Option<ModelName>,
    /// Epochs (default: the suite's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate for every arm (default: the suite's SGD rate, x0.01 for Adam/AdamW, x0.1 for
    /// Adagrad, as the seed's commands).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Batch size (default: the suite's).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Weight decay (default: the suite's).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Training images per class (default: the suite's; 0 for all).
    #[arg(long)]
    pub train_per_class: Option<usize>,
    /// Test images per class (default: the suite's; 0 for all).
    #[arg(long)]
    pub test_per_class: Option<usize>,
    /// Dataset folder (default: Debian's /usr/share/datasets/fashion-mnist, then the subset shipped
    /// in this repository).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (default: `runs/<suite>-<time>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Threads preparing batches.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// The training loss whose first epoch the table reports (default: the highest final loss).
    #[arg(long)]
    pub target_loss: Option<f64>,
    /// Continue the runs in --out: finished runs are kept, interrupted ones resume from their last
    /// epoch's checkpoint (ending with the numbers an uninterrupted run gives), missing ones start.
    #[arg(long, requires = "out")]
    pub resume: bool,
}

/// Seconds since the Unix epoch as `YYYYmmdd-HHMMSS` (UTC), for default folder names.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_stamp(secs)
}

/// `secs` since the Unix epoch as `YYYYmmdd-HHMMSS` (UTC).
fn utc_stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Trains every arm on every seed (seed by seed, so that an interruption leaves whole seeds),
/// writing each run into `<out>/<arm>/seed<k>/`, then `comparison.md` and the plots into `out`;
/// prints the table. Ctrl-C ([`STOP`]) ends the current batch, keeps what finished and reports it.
pub fn compare(args: CompareArgs) -> Result<()> {
    let presets: Vec<Preset> = args
        .arms
        .iter()
        .map(|name| name.parse::<Preset>().map_err(anyhow::Error::from))
        .collect::<Result<_>>()?;
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let mut settings = args.suite.settings();
    if let Some(model) = args.model {
        settings.model = model;
    }
    if let Some(epochs) = args.epochs {
        settings.epochs = epochs;
    }
    if let Some(batch) = args.batch_size {
        settings.batch_size = batch;
    }
    if let Some(wd) = args.weight_decay {
        settings.weight_decay = wd;
    }
    if let Some(n) = args.train_per_class {
        settings.train_per_class = (n > 0).then_some(n);
    }
    if let Some(n) = args.test_per_class {
        settings.test_per_class = (n > 0).then_some(n);
    }
    if settings.batch_size == 0 || settings.epochs == 0 {
        bail!("--batch-size and --epochs must be at least 1");
    }
    let splits = args.suite.load(args.data.as_ref(), &settings)?;
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{:?}-{}", args.suite, timestamp()).to_lowercase())
    });
    create_dir(&out)?;
    if args.suite == Suite::FineGrained {
        println!(
            "Note: the paper fine-tunes an ImageNet-pretrained ResNet-50 on fine-grained sets; this \
             run trains from scratch, so its accuracies are not comparable with the paper's."
        );
    }
    println!(
        "{} from {}: {} training / {} test images; {} on {} arms x {} seeds, {} epochs -> {}",
        splits.name,
        splits.source.display(),
        splits.train.len(),
        splits.test.len(),
        settings.model,
        presets.len(),
        args.seeds,
        settings.epochs,
        out.display()
    );

    let bar = progress_bar();
    let mut summaries = Vec::new();
    'runs: for seed in 0..args.seeds {
        for preset in &presets {
            let config = RunConfig {
                label: preset.name(),
                model: settings.model,
                optimizer: preset.name(),
                hyper: hyper_for(preset, &settings),
                lr: args.lr.unwrap_or_else(|| lr_for(preset, settings.sgd_lr)),
                schedule: settings.schedule.clone(),
                warmup_epochs: 0,
                epochs: settings.epochs,
                batch_size: settings.batch_size,
                seed,
                augment: settings.augment,
                test_augment: settings.test_augment,
                workers: args.workers,
            };
            let dir = out.join(&config.label).join(format!("seed{seed}"));
            let finished = args.resume.then(|| finished_run(&dir, &config)).flatten();
            let summary = match finished {
                Some(summary) => {
                    println!("{} seed {seed}: finished earlier, kept", config.label);
                    summary
                }
                None => run(&config, &splits, &dir, &bar, args.resume)?,
            };
            let interrupted = summary.interrupted;
            summaries.push(summary);
            if interrupted {
                break 'runs;
            }
        }
    }
    bar.finish_and_clear();
    println!();
    show_report(&arms(summaries), args.target_loss, &out)?;
    if STOP.load(Ordering::SeqCst) {
        bail!(
            "interrupted; the finished epochs are saved in {}",
            out.display()
        );
    }
    Ok(())
}

/// The summary of a run in `dir` that finished (not interrupted) with `config`.
fn finished_run(dir: &Path, config: &RunConfig) -> Option<Summary> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    let summary: Summary = serde_json::from_str(&text).ok()?;
    (config.same_numbers_as(&summary.config) && !summary.interrupted).then_some(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two arms x two seeds of one short epoch on 30 images of the shipped Fashion-MNIST subset.
    fn tiny(out: &Path, resume: bool) -> CompareArgs {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset");
        CompareArgs {
            suite: Suite::Fashion,
            arms: vec!["sgd".into(), "SGD_GC".into()],
            seeds: 2,
            model: None,
            epochs: Some(1),
            lr: None,
            batch_size: Some(10),
            weight_decay: None,
            train_per_class: Some(3),
            test_per_class: Some(2),
            data: Some(data),
            out: Some(out.to_path_buf()),
            workers: 1,
            target_loss: None,
            resume,
        }
    }

    /// Every arm and seed gets its run folder and the table names every arm; resuming keeps the
    /// finished runs as they are (the same summaries, not trained again).
    #[test]
    fn compares_arms_over_seeds_and_resumes_without_training_again() {
        let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let out = crate::test_dir("compare");
        compare(tiny(&out, false)).unwrap();
        let summary = |arm: &str, seed: u64| {
            let path = out
                .join(arm)
                .join(format!("seed{seed}"))
                .join("summary.json");
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let every_summary = || -> Vec<String> {
            ["sgd", "sgd_gc"]
                .iter()
                .flat_map(|arm| [0, 1].map(|seed| summary(arm, seed)))
                .collect()
        };
        let before = every_summary();
        let table = std::fs::read_to_string(out.join("comparison.md")).unwrap();
        assert!(
            table.contains("| sgd |") && table.contains("| sgd_gc |"),
            "{table}"
        );
        compare(tiny(&out, true)).unwrap();
        let after = every_summary();
        assert_eq!(before, after, "finished runs are kept, not trained again");
        std::fs::remove_dir_all(out).unwrap();
    }

    #[test]
    fn refuses_zero_seeds_and_unknown_arms() {
        let out = crate::test_dir("compare-refused");
        let mut args = tiny(&out, false);
        args.seeds = 0;
        let err = compare(args).unwrap_err().to_string();
        assert!(err.contains("--seeds must be at least 1"), "{err}");
        let mut args = tiny(&out, false);
        args.arms = vec!["sgd_gx".into()];
        assert!(compare(args).is_err());
        std::fs::remove_dir_all(out).unwrap();
    }

    /// Dates from the civil calendar: the epoch, a leap day, the turn of a century that is not a
    /// leap year, and a time of day (values from `date -u -d @SECS +%Y%m%d-%H%M%S`).
    #[test]
    fn stamps_are_utc_calendar_dates() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(4_107_542_399), "21000228-235959");
        assert_eq!(utc_stamp(4_107_542_400), "21000301-000000");
        assert_eq!(utc_stamp(1_796_169_600 + 3_723), "20261202-010203");
    }
}
