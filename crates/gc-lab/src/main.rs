//! `gclab`: the command line. Parse, then call the library; no logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gc_lab::compare::{CompareArgs, compare};
use gc_lab::models::ModelName;

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
    Compare(Box<CompareArgs>),
    /// Run the comparison at every value of one setting (--over lr|base-lr|weight-decay
    /// --values ...); write a table and plots of the final accuracy and loss against the value.
    Sweep(Box<gc_lab::sweep::SweepArgs>),
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
    /// Print a suite's recipe as `gclab compare --suite SUITE` runs it (docs/RECIPES.md sets each
    /// value beside the seed's).
    Recipe {
        /// The suite.
        #[arg(value_enum)]
        suite: gc_lab::suites::Suite,
    },
    /// Print which parameters of a model GC centralizes, along which axis, and why not.
    Plan {
        /// The model (one of: small-cnn, resnet20, r18, r34, r50, r101, imagenet-r18, ...).
        model: ModelName,
        /// gc (conv and linear), gcc (conv only), none, rank-gc or rank-gcc (the seed's rank rule),
        /// burn-rank-gc or burn-rank-gcc (a rank rule on burn's layouts: Linear per input row).
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

/// `gclab` without a subcommand: `gclab compare` with its defaults.
#[derive(Parser, Debug)]
struct DefaultJob {
    #[command(flatten)]
    args: CompareArgs,
}

fn main() -> ExitCode {
    // Training allocates and frees big buffers on every operation: keep them for reuse.
    flex_kernels::malloc::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        None => run_compare(DefaultJob::parse_from(["gclab"]).args),
        Some(Command::Compare(args)) => run_compare(*args),
        Some(Command::Sweep(args)) => {
            gc_lab::train::stop_on_ctrl_c();
            gc_lab::sweep::sweep(*args)
        }
        Some(Command::Report {
            runs,
            out,
            target_loss,
        }) => gc_lab::report::redraw(&runs, out, target_loss),
        Some(Command::Recipe { suite }) => {
            gc_lab::recipe::describe(suite).map(|recipe| print!("{recipe}"))
        }
        Some(Command::Plan {
            model,
            scope,
            channels,
            classes,
        }) => gc_lab::plan::scope(&scope).map(|scope| {
            println!(
                "{}",
                gc_lab::plan::describe(model, scope, channels, classes)
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gclab: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `gclab compare`, with Ctrl-C finishing the current batch and saving what finished.
fn run_compare(args: CompareArgs) -> anyhow::Result<()> {
    gc_lab::train::stop_on_ctrl_c();
    compare(args)
}
