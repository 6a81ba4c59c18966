"""Ours against PyTorch in alternating pairs: the driver behind `scripts/bench-vs-pytorch.sh`.

Every comparison (the GC optimizers' step over ResNet-50's parameters; a training step of each
model) runs as `--pairs` rounds; a round runs our bench process, then each PyTorch version's, one
after the other, so that every version sees the machine as ours did. Each round's figures and
ratios are printed as they come; the summary gives, per metric, the median of our times, the
median of PyTorch's and the median of the rounds' ratios.

A comparison is *busy* for a PyTorch version when PyTorch's own time for any of its headline
metrics moves by more than 15% between rounds ((max - min) / min): the machine was doing
something else, and the ratio cannot be trusted either way. Busy comparisons print their
rounds but no headline ratio, and the script exits with status 3.

Only the standard library: this runs under the machine's python3; each PyTorch runs in its own
virtual environment (`--torch VERSION=PYTHON`).
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys

BUSY_SPREAD = 0.15

# (phase name, field index in a `train_step` line, unit, headline)
TRAIN_FIELDS = [
    ("step", 3, "ms", True),
    ("forward", 4, "ms", True),
    ("backward", 5, "ms", True),
    ("optimizer", 6, "ms", False),
    ("peak_memory", 7, "MiB", True),
]
OPTIMIZERS = ["sgd_gc", "adam_gc", "adamw_gcc", "adagrad_gcc"]


def run(cmd):
    """Runs one bench process; its output. Exits on failure, naming the command."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"bench-vs-pytorch: `{' '.join(cmd)}` failed (status {done.returncode})")
    return done.stdout


def fields(output, tag):
    return [line.split() for line in output.splitlines() if line.startswith(tag + " ")]


def train_figures(output, model):
    rows = [f for f in fields(output, "train_step") if f[1] == model]
    if not rows:
        raise SystemExit(f"bench-vs-pytorch: no `train_step {model}` line in:\n{output}")
    return {name: float(rows[0][i]) for name, i, _, _ in TRAIN_FIELDS}


def optim_figures(output):
    found = {f[1]: float(f[2]) for f in fields(output, "optim_step")}
    missing = [name for name in OPTIMIZERS if name not in found]
    if missing:
        raise SystemExit(f"bench-vs-pytorch: no optim_step line for {missing} in:\n{output}")
    return {name: found[name] for name in OPTIMIZERS}


def spread(values):
    return (max(values) - min(values)) / min(values)


def comparison(title, ours_cmd, torch_cmds, parse, units, headline, pairs):
    """Runs `pairs` rounds of one comparison; returns its summary rows and busy verdicts."""
    rounds = []
    for k in range(1, pairs + 1):
        print(f"== {title}: round {k} of {pairs}", flush=True)
        ours = parse(run(ours_cmd))
        theirs = {}
        for version, cmd in torch_cmds.items():
            theirs[version] = parse(run(cmd))
        rounds.append((ours, theirs))
        for metric in ours:
            line = f"   {metric:<12} ours {ours[metric]:>10.3f} {units[metric]:<8}"
            for version, figures in theirs.items():
                t = figures[metric]
                line += f" | torch {version} {t:>10.3f}, ours/torch {ours[metric] / t:6.3f}"
            print(line, flush=True)
    summary, busy = [], {}
    for version in torch_cmds:
        moved = {m: spread([t[version][m] for _, t in rounds]) for m in headline}
        worst = max(moved, key=moved.get)
        if moved[worst] > BUSY_SPREAD:
            busy[version] = (worst, moved[worst], [t[version][worst] for _, t in rounds])
        for metric in rounds[0][0]:
            ours = statistics.median(o[metric] for o, _ in rounds)
            theirs = statistics.median(t[version][metric] for _, t in rounds)
            ratio = statistics.median(o[metric] / t[version][metric] for o, t in rounds)
            summary.append((metric, version, units[metric], ours, theirs, ratio,
                            metric in headline, moved.get(metric)))
    return summary, busy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optim-bench", required=True, help="our optim_step bench binary")
    parser.add_argument("--train-bench", required=True, help="our train_step bench binary")
    parser.add_argument("--torch-bench", required=True, help="benches/pytorch/torch_bench.py")
    parser.add_argument("--torch", action="append", required=True, metavar="VERSION=PYTHON")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--models", default="resnet20,resnet50,small-cnn")
    parser.add_argument("--no-optim", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--commit", default="unknown")
    args = parser.parse_args()
    if args.pairs < 3:
        raise SystemExit("bench-vs-pytorch: --pairs must be at least 3 (a median of fewer says little)")
    torches = dict(t.split("=", 1) for t in args.torch)
    threads = os.environ.get("GC_BENCH_THREADS", str(os.cpu_count()))
    quick = ["--quick"] if args.quick else []

    versions = {}
    for version, python in torches.items():
        versions[version] = subprocess.run(
            [python, "-c", "import torch; print(torch.__version__)"],
            capture_output=True, text=True, check=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    print(f"bench-vs-pytorch, {datetime.datetime.now():%Y-%m-%d %H:%M}, commit {args.commit}")
    print(f"PyTorch {', '.join(f'{v} ({versions[v]})' for v in torches)}; {threads} threads each; "
          f"{cpu}; {args.pairs} rounds per comparison{', --quick' if args.quick else ''}")
    print(f"busy: PyTorch's own time of a headline metric moving by more than "
          f"{BUSY_SPREAD:.0%} between rounds", flush=True)

    results = []
    if not args.no_optim:
        units = {name: "ns/param" for name in OPTIMIZERS}
        ours = [args.optim_bench, *quick, "--only", ",".join(OPTIMIZERS)]
        theirs = {v: [p, args.torch_bench, "optim", *quick] for v, p in torches.items()}
        summary, busy = comparison("optimizer step, ResNet-50's parameters", ours, theirs,
                                   optim_figures, units, OPTIMIZERS, args.pairs)
        results.append(("optim_step", summary, busy))
    for model in [m for m in args.models.split(",") if m]:
        units = {name: unit for name, _, unit, _ in TRAIN_FIELDS}
        headline = [name for name, _, _, h in TRAIN_FIELDS if h]
        ours = [args.train_bench, model, "--no-gc-share", *quick]
        theirs = {v: [p, args.torch_bench, "train", model, *quick] for v, p in torches.items()}
        summary, busy = comparison(f"training step {model}, SGD_GC", ours, theirs,
                                   lambda out, m=model: train_figures(out, m), units, headline,
                                   args.pairs)
        results.append((model, summary, busy))

    print()
    print(f"Medians over {args.pairs} rounds (commit {args.commit}; ratio: the median of the rounds' "
          f"ours/torch; moved: PyTorch's own spread between rounds)")
    print(f"{'comparison':<12} {'metric':<12} {'torch':<8} {'unit':<9} {'ours':>10} {'torch':>10} "
          f"{'ours/torch':>10} {'moved':>6}")
    for name, summary, _ in results:
        for metric, version, unit, ours, theirs, ratio, _, moved in summary:
            moved = "" if moved is None else f"{moved:.0%}"
            print(f"{name:<12} {metric:<12} {version:<8} {unit:<9} {ours:>10.3f} {theirs:>10.3f} "
                  f"{ratio:>10.3f} {moved:>6}")
    print()
    any_busy = False
    for name, summary, busy in results:
        for version, (metric, moved, values) in busy.items():
            any_busy = True
            shown = ", ".join(f"{v:.3f}" for v in values)
            print(f"BUSY {name} torch {version}: PyTorch's {metric} moved {moved:.0%} between "
                  f"rounds ({shown}); no headline ratio. Rerun on a quiet machine.")
        for metric, version, _, _, _, ratio, headline, _ in summary:
            if headline and version not in busy:
                print(f"ratio {name} {metric} torch-{version} {ratio:.4f}")
    return 3 if any_busy else 0


if __name__ == "__main__":
    sys.exit(main())
