//! `gclab`: the command line. Parse, then call the library; no logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::{Parser, Subcommand};
use gc_lab::models::{ModelName, Net};
use gc_lab::report::{arms, find_summaries, write_report};
use gc_lab::suites::{Suite, hyper_for, lr_for};
use gc_lab::train::files::create_dir;
use gc_lab::train::{RunConfig, STOP, progress_bar, run};
use gradient_centralization::{GcPlan, Preset, Scope};

#[derive(Parser, Debug)]
#[command(
    name = "gclab",
    version,
    about = "Train real models with and without Gradient Centralization and compare them.",
    long_about = "Train real models with and without Gradient Centralization (Yong et al., ECCV 2020) \
                  and compare them. Without a subcommand, runs `gclab compare`: SGD against SGD_GC \
                  on Fashion-MNIST, then prints the table and the paths of the plots."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train several optimizers over several seeds on one suite; write a table and plots.
    Compare(CompareArgs),
    /// Redraw the table and plots from finished runs (folders holding summary.json files).
    Report {
        /// Run folders (searched recursively for summary.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where to write comparison.md and the plots (default: the first folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The training loss whose first epoch the table reports (default: the highest final loss).
        #[arg(long)]
        target_loss: Option<f64>,
    },
    /// Print which parameters of a model GC centralizes, along which axis, and why not.
    Plan {
        /// The model (one of: small-cnn, resnet20, r18, r34, r50, r101, imagenet-r18, ...).
        model: ModelName,
        /// gc (conv and linear), gcc (conv only), none, seed-gc or seed-gcc (the seed's rank rule).
        #[arg(long, default_value = "gc")]
        scope: String,
        /// Input channels.
        #[arg(long, default_value_t = 3)]
        channels: usize,
        /// Classes.
        #[arg(long, default_value_t = 1000)]
        classes: usize,
    },
}

#[derive(Parser, Debug)]
struct CompareArgs {
    /// The suite: dataset, model and schedule.
    #[arg(long, value_enum, default_value_t = Suite::Fashion)]
    suite: Suite,
    /// Optimizers, comma-separated, by the seed's names (sgd, sgd_gc, SGD_GCC, adam_gc, AdamW_GCC, ...).
    #[arg(
        long,
        alias = "alg",
        value_delimiter = ',',
        default_value = "sgd,sgd_gc"
    )]
    arms: Vec<String>,
    /// Number of seeds per arm (seeds 0, 1, ...).
    #[arg(long, default_value_t = 2)]
    seeds: u64,
    /// The model (default: the suite's).
    #[arg(long)]
    model: Option<ModelName>,
    /// Epochs (default: the suite's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Learning rate for every arm (default: the suite's SGD rate, x0.01 for Adam/AdamW, x0.1 for
    /// Adagrad, as the seed's commands).
    #[arg(long)]
    lr: Option<f64>,
    /// Batch size (default: the suite's).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Weight decay (default: the suite's).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Training images per class (default: the suite's; 0 for all).
    #[arg(long)]
    train_per_class: Option<usize>,
    /// Test images per class (default: the suite's; 0 for all).
    #[arg(long)]
    test_per_class: Option<usize>,
    /// Dataset folder (default: Debian's /usr/share/datasets/fashion-mnist, then the subset shipped
    /// in this repository).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder (default: `runs/<suite>-<time>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Threads preparing batches.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The training loss whose first epoch the table reports (default: the highest final loss).
    #[arg(long)]
    target_loss: Option<f64>,
    /// Continue the runs in --out: finished runs are kept, interrupted ones resume from their last
    /// epoch's checkpoint (ending with the numbers an uninterrupted run gives), missing ones start.
    #[arg(long, requires = "out")]
    resume: bool,
}

fn main() -> ExitCode {
    // Training allocates and frees big buffers on every operation: keep them for reuse.
    flex_kernels::malloc::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        None => compare(CompareArgs::parse_from(["compare"])),
        Some(Command::Compare(args)) => compare(args),
        Some(Command::Report {
            runs,
            out,
            target_loss,
        }) => report(runs, out, target_loss),
        Some(Command::Plan {
            model,
            scope,
            channels,
            classes,
        }) => plan(model, &scope, channels, classes),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gclab: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Seconds since the Unix epoch as `YYYYmmdd-HHMMSS` (UTC), for default folder names.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
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

fn compare(args: CompareArgs) -> Result<()> {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\ngclab: second Ctrl-C, exiting now");
            std::process::exit(130);
        }
        eprintln!(
            "\ngclab: Ctrl-C: finishing the current batch, saving results (Ctrl-C again to quit now)"
        );
    });
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
    let arms = arms(summaries);
    let written = write_report(&arms, args.target_loss, &out)?;
    println!("\n{}", std::fs::read_to_string(&written[0])?);
    for path in &written {
        println!("wrote {}", path.display());
    }
    if STOP.load(Ordering::SeqCst) {
        bail!(
            "interrupted; the finished epochs are saved in {}",
            out.display()
        );
    }
    Ok(())
}

/// The summary of a run in `dir` that finished (not interrupted) with `config`.
fn finished_run(dir: &std::path::Path, config: &RunConfig) -> Option<gc_lab::train::Summary> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    let summary: gc_lab::train::Summary = serde_json::from_str(&text).ok()?;
    (config.same_numbers_as(&summary.config) && !summary.interrupted).then_some(summary)
}

fn report(runs: Vec<PathBuf>, out: Option<PathBuf>, target_loss: Option<f64>) -> Result<()> {
    let found = find_summaries(&runs)?;
    let out = out.unwrap_or_else(|| runs[0].clone());
    create_dir(&out)?;
    let arms = arms(found.into_iter().map(|(_, s)| s).collect());
    let written = write_report(&arms, target_loss, &out)?;
    println!("{}", std::fs::read_to_string(&written[0])?);
    for path in &written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn plan(model: ModelName, scope: &str, channels: usize, classes: usize) -> Result<()> {
    let scope = match scope.to_ascii_lowercase().as_str() {
        "gc" => Scope::ConvLinear,
        "gcc" => Scope::ConvOnly,
        "none" => Scope::None,
        "seed-gc" => Scope::SEED_GC,
        "seed-gcc" => Scope::SEED_GCC,
        other => bail!("unknown scope `{other}`; expected gc, gcc, none, seed-gc or seed-gcc"),
    };
    let net = Net::new(
        model,
        channels,
        model.default_size(),
        classes,
        &Device::flex(),
    );
    let plan = GcPlan::new(&net, scope);
    println!("{model} ({channels} input channels, {classes} classes)\n{plan}");
    Ok(())
}
