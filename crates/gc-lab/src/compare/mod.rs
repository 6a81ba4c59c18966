//! `gclab compare`: several optimizers (arms) over several seeds on one suite, each run in its own
//! folder, then the table and the plots.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use clap::Args;
use gradient_centralization::{Family, Hyperparameters, Preset};

use crate::device::Devices;
use crate::models::{Init, pretrained};
use crate::report::{arms, show_report};
use crate::seed_arms;
use crate::suites::{Suite, SuiteSettings, hyper_for, lr_for};
use crate::train::files::create_dir;
use crate::train::{RunConfig, RunOptions, STOP, Summary, progress_bar, run};

/// What to compare, and how; every setting the suite gives can be overridden.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The suite: dataset, model and schedule.
    #[arg(long, value_enum, default_value_t = Suite::Fashion)]
    pub suite: Suite,
    /// Optimizers, comma-separated, by the library's names (sgd, sgd_gc, SGD_GCC, adam_gc2,
    /// radam_gc2, lookahead_sgd_gc, ...) or the suite's seed script's (sgdGC, adamWGC, rangerGC,
    /// ..., translated as that script defines them; docs/RECIPES.md lists them). Default: the
    /// suite's, which `gclab recipe SUITE` prints.
    #[arg(long, alias = "alg", value_delimiter = ',')]
    pub arms: Option<Vec<String>>,
    /// Number of seeds per arm (seeds 0, 1, ...).
    #[arg(long, default_value_t = 2)]
    pub seeds: u64,
    /// The model (default: the suite's). `r18` ... `r101` are the CIFAR ResNets on the CIFAR
    /// suites and torchvision's ImageNet ResNets on the suites of image files, as the seed's
    /// scripts call them; the seed's ImageNet models are r50bn, r50gn, r101bn, r101gn.
    #[arg(long)]
    pub model: Option<String>,
    /// Epochs (default: the suite's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate for every arm as given (default: the suite's SGD rate, x0.01 for the Adam
    /// family, RAdam and Ranger, x0.1 for Adagrad, as the seed's commands).
    #[arg(long, conflicts_with = "base_lr")]
    pub lr: Option<f64>,
    /// The seed's `--lr`: the SGD rate, scaled per arm as the seed does (x0.01 for the Adam
    /// family, RAdam and Ranger, x0.1 for Adagrad).
    #[arg(long)]
    pub base_lr: Option<f64>,
    /// How the weights start (default: the suite's): torch (burn's defaults, which are
    /// PyTorch's), he-fan-out (torchvision's ResNet), he-fan-out-uniform-gamma (the seed's
    /// Mini-ImageNet).
    #[arg(long, value_enum)]
    pub init: Option<Init>,
    /// Keep the last partial batch of each epoch and score every test image (the seed's loaders
    /// drop it: `drop_last=True`).
    #[arg(long)]
    pub keep_last_batch: bool,
    /// Samples each batch norm normalizes together in training (default: what each of the seed's
    /// 4 GPUs sees: 64 on ImageNet, 32 on Mini-ImageNet and fine-grained, a quarter of
    /// --batch-size when that is given; 0: the whole batch).
    #[arg(long)]
    pub bn_batch: Option<usize>,
    /// RAdam and Ranger arms reproduce the seed's in-place edit of their first moment on their
    /// first (unrectified) steps, instead of the formula.
    #[arg(long)]
    pub seed_buffer_aliasing: bool,
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
    /// Start every run from this torchvision ResNet state dict (`.pth`, e.g. torchvision's
    /// resnet50-0676ba61.pth), for imagenet-r18/34/50/101: names and layouts mapped, a file that
    /// does not fit refused with the names that do not; a head for other classes is not loaded
    /// (the model's own, freshly initialized, trains), as the seed's fine-grained `r50p`.
    #[arg(long, value_name = "FILE")]
    pub pretrained: Option<PathBuf>,
    /// Dataset folder (default: Debian's /usr/share/datasets/fashion-mnist, then the subset shipped
    /// in this repository).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (default: `runs/<suite>-<time>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where to train: flex (burn's CPU backend, with the lab's own kernels), wgpu or vulkan
    /// (burn's wgpu backend; `:cpu` for the CPU's adapter, `:N` for the Nth GPU; needs the `wgpu`
    /// feature), `cuda` or `cuda:N` (needs the `cuda` feature). Several, comma-separated
    /// (`cuda:0,cuda:1`), train data-parallel: each takes its share of every batch and the
    /// optimizer steps once on the summed gradients.
    #[arg(long, default_value = "flex")]
    pub device: Devices,
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
    /// Also write TensorBoard event files, one folder per run: `DIR/<arm>/seed<k>/` (per step
    /// train/loss, train/top1, train/lr; per epoch epoch/*, metrics.csv's columns but the
    /// epoch's seconds); view them with `tensorboard --logdir DIR`.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
}

/// One run's folder under `root` (the runs' or the event files'): `<root>/<arm>/seed<k>`.
fn run_folder(root: &Path, label: &str, seed: u64) -> PathBuf {
    root.join(label).join(format!("seed{seed}"))
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

/// The suite's settings with the arguments' overrides, and the arms.
pub(crate) fn resolve(args: &CompareArgs) -> Result<(SuiteSettings, Vec<Preset>)> {
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let mut settings = args.suite.settings();
    let presets: Vec<Preset> = args
        .arms
        .as_ref()
        .unwrap_or(&settings.arms)
        .iter()
        .map(|name| arm(args.suite, name))
        .collect::<Result<_>>()?;
    if let Some(model) = &args.model {
        settings.model = args.suite.model(model, args.pretrained.is_some())?;
    }
    if let Some(file) = &args.pretrained {
        pretrained::check(settings.model, file)?;
    }
    if let Some(lr) = args.base_lr {
        settings.sgd_lr = lr;
    }
    if let Some(init) = args.init {
        settings.init = init;
    }
    if args.keep_last_batch {
        settings.drop_last = Default::default();
    }
    if args.seed_buffer_aliasing && !presets.iter().any(rectified) {
        bail!("--seed-buffer-aliasing applies to RAdam and Ranger arms, and there is none");
    }
    if let Some(epochs) = args.epochs {
        settings.epochs = epochs;
    }
    if let Some(batch) = args.batch_size {
        // The suite's batch norm groups stand for devices: a batch of another size is shared
        // among as many.
        if let Some(group) = settings.bn_batch {
            let devices = settings.batch_size / group;
            settings.bn_batch = Some(batch.div_ceil(devices.max(1)));
        }
        settings.batch_size = batch;
    }
    if let Some(n) = args.bn_batch {
        settings.bn_batch = (n > 0).then_some(n);
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
    Ok((settings, presets))
}

/// Trains every arm on every seed (seed by seed, so that an interruption leaves whole seeds),
/// writing each run into `<out>/<arm>/seed<k>/`, then `comparison.md` and the plots into `out`;
/// prints the table. Ctrl-C ([`STOP`]) ends the current batch, keeps what finished and reports it.
pub fn compare(args: CompareArgs) -> Result<()> {
    let (settings, presets) = resolve(&args)?;
    // An unavailable device fails here, before the data is read and the folder made.
    args.device.open()?;
    let splits = args.suite.load(args.data.as_ref(), &settings)?;
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{:?}-{}", args.suite, timestamp()).to_lowercase())
    });
    create_dir(&out)?;
    if args.suite == Suite::FineGrained && args.pretrained.is_none() {
        println!(
            "Note: the seed fine-tunes an ImageNet-pretrained ResNet-50 on fine-grained sets (its \
             r50p); this run trains from scratch (torchvision's initialization), so its accuracies \
             are not comparable with the paper's."
        );
    }
    println!(
        "{} from {}: {} training / {} test images; {} on {}, {} arms x {} seeds, {} epochs -> {}",
        splits.name,
        splits.source.display(),
        splits.train.len(),
        splits.test.len(),
        settings.model,
        args.device,
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
                hyper: Hyperparameters {
                    seed_buffer_aliasing: (args.seed_buffer_aliasing && rectified(preset))
                        .then_some(true),
                    ..hyper_for(preset, &settings)
                },
                lr: args.lr.unwrap_or_else(|| lr_for(preset, settings.sgd_lr)),
                schedule: settings.schedule.clone(),
                warmup_epochs: 0,
                epochs: settings.epochs,
                batch_size: settings.batch_size,
                seed,
                augment: settings.augment,
                test_augment: settings.test_augment,
                workers: args.workers,
                init: settings.init,
                drop_last: settings.drop_last,
                bn_batch: settings.bn_batch,
                device: args.device.clone(),
                pretrained: args.pretrained.clone(),
            };
            let dir = run_folder(&out, &config.label, seed);
            let finished = args.resume.then(|| finished_run(&dir, &config)).flatten();
            let summary = match finished {
                Some(summary) => {
                    println!("{} seed {seed}: finished earlier, kept", config.label);
                    summary
                }
                None => {
                    let options = RunOptions {
                        resume: args.resume,
                        tensorboard: args
                            .tensorboard
                            .as_ref()
                            .map(|tb| run_folder(tb, &config.label, seed)),
                    };
                    run(&config, &splits, &dir, &bar, &options)?
                }
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

/// RAdam and Ranger (and Lookahead around RAdam): the arms the seed's buffer aliasing concerns.
fn rectified(preset: &Preset) -> bool {
    matches!(preset.family, Family::RAdam | Family::Ranger)
}

/// The preset `name` names: a library name, or one of the seed's `--alg` names for `suite`,
/// translated as the seed's script defines it (and said so, since the same name means different
/// optimizers in different scripts).
fn arm(suite: Suite, name: &str) -> Result<Preset> {
    if let Some(why) = seed_arms::ambiguity(suite, name.trim()) {
        bail!("the seed's `{name}` means {why}; give the preset you mean");
    }
    match name.parse::<Preset>() {
        Ok(preset) => Ok(preset),
        Err(err) => match seed_arms::translate(suite, name.trim()) {
            Some(seed) => {
                println!(
                    "arm `{}`: the seed runs {} under this name ({}); it is `{}` here",
                    seed.alg,
                    seed.preset.to_ascii_uppercase(),
                    seed.at,
                    seed.preset
                );
                Ok(seed.preset.parse()?)
            }
            None => Err(err.into()),
        },
    }
}

/// The summary of a run in `dir` that finished (not interrupted) with `config`.
fn finished_run(dir: &Path, config: &RunConfig) -> Option<Summary> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    let summary: Summary = serde_json::from_str(&text).ok()?;
    (config.same_numbers_as(&summary.config) && !summary.interrupted).then_some(summary)
}

#[cfg(test)]
pub(crate) mod tests;
