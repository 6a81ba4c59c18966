"""The PyTorch side of `scripts/bench-vs-pytorch.sh`: the seed's GC optimizers and a training step,
timed the way `benches/optim_step.rs` and `benches/train_step.rs` time ours.

The optimizers are written here from the seed's arithmetic (shared/SPEC-seed-optimizers.md, as
the seed writes them: one in-place pass of torch ops per parameter tensor, in a Python loop); the
models are torchvision's ResNet-50 layout, the CIFAR ResNet-20 of gc-lab (projection
shortcuts) and the lab's small CNN (the default job's model), rebuilt here because torchvision is
not installed.

    python torch_bench.py optim [--quick] [--device cpu|cuda]
    python torch_bench.py train resnet20|resnet50|small-cnn [--quick] [--optimizer NAME] [--device cpu|cuda]
        (default sgd_gc, cpu)

On cuda every timed region ends with `torch.cuda.synchronize()`, and the peak memory is the
device's (`torch.cuda.max_memory_allocated`).

Machine-readable lines: `optim_step <name> <ns_per_param> <ms_per_step>` and
`train_step <model> <optimizer> <step_ms> <forward_ms> <backward_ms> <optimizer_ms> <peak_mib>`.
"""

import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def centralize(d, min_rank):
    """GC: subtract each output unit's mean over its fan-in (axis 0 is the output in PyTorch)."""
    if d.dim() > min_rank:
        d.add_(-d.mean(dim=tuple(range(1, d.dim())), keepdim=True))


class SeedOptimizer:
    """Per-tensor loop over in-place torch ops, the seed's way. `gc_rank`: 1 for _GC, 3 for
    _GCC, None for no GC."""

    def __init__(self, params, kind, lr, gc_rank, momentum=0.9, wd=5e-4, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.kind, self.lr, self.gc_rank = kind, lr, gc_rank
        self.momentum, self.wd, self.betas, self.eps = momentum, wd, betas, eps
        self.state = [dict() for _ in self.params]

    @torch.no_grad()
    def step(self):
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            getattr(self, self.kind)(p, p.grad, state)

    def gc(self, d):
        if self.gc_rank is not None:
            centralize(d, self.gc_rank)

    def sgd(self, p, g, state):
        d = g.add(p, alpha=self.wd) if self.wd else g
        self.gc(d)
        if "buf" not in state:
            state["buf"] = d.clone()
        else:
            state["buf"].mul_(self.momentum).add_(d)
        p.add_(state["buf"], alpha=-self.lr)

    def adam(self, p, g, state):
        g = g.add(p, alpha=self.wd) if self.wd else g
        self.gc(g)
        b1, b2 = self.betas
        if not state:
            state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
        state["t"] += 1
        t = state["t"]
        state["m"].mul_(b1).add_(g, alpha=1 - b1)
        state["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (state["v"].sqrt() / math.sqrt(1 - b2**t)).add_(self.eps)
        p.addcdiv_(state["m"], denom, value=-self.lr / (1 - b1**t))

    def adamw(self, p, g, state):
        self.gc(g)
        b1, b2 = self.betas
        if not state:
            state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
        state["t"] += 1
        t = state["t"]
        state["m"].mul_(b1).add_(g, alpha=1 - b1)
        state["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = state["v"].sqrt().add_(self.eps)
        step = self.lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        p.add_(torch.mul(p, self.wd).addcdiv_(state["m"], denom), alpha=-step)

    def adagrad(self, p, g, state):
        g = g.add(p, alpha=self.wd) if self.wd else g
        self.gc(g)
        if not state:
            state.update(sum=torch.zeros_like(p))
        state["sum"].addcmul_(g, g, value=1)
        p.addcdiv_(g, state["sum"].sqrt().add_(1e-10), value=-self.lr)


OPTIMIZERS = {
    # name: (kind, gc_rank, lr, momentum, wd) as in benches/optim_step.rs
    "sgd": ("sgd", None, 0.01, 0.9, 5e-4),
    "sgd_gc": ("sgd", 1, 0.01, 0.9, 5e-4),
    "adam_gc": ("adam", 1, 0.01, 0.0, 5e-4),
    "adamw_gcc": ("adamw", 3, 0.01, 0.0, 5e-4),
    "adagrad_gcc": ("adagrad", 3, 0.01, 0.0, 0.0),
}


def make_optimizer(name, params):
    kind, gc_rank, lr, momentum, wd = OPTIMIZERS[name]
    return SeedOptimizer(params, kind, lr, gc_rank, momentum=momentum, wd=wd)


# ---- models ----

class Basic(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.down = None
        if stride != 1 or cin != width:
            self.down = nn.Sequential(nn.Conv2d(cin, width, 1, stride, bias=False), nn.BatchNorm2d(width))

    def forward(self, x):
        s = x if self.down is None else self.down(x)
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + s)


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, 4 * width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.down = None
        if stride != 1 or cin != 4 * width:
            self.down = nn.Sequential(nn.Conv2d(cin, 4 * width, 1, stride, bias=False), nn.BatchNorm2d(4 * width))

    def forward(self, x):
        s = x if self.down is None else self.down(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + s)


class ResNet(nn.Module):
    def __init__(self, block, depths, widths, imagenet, classes):
        super().__init__()
        w0 = widths[0]
        if imagenet:
            self.stem = nn.Sequential(nn.Conv2d(3, w0, 7, 2, 3, bias=False), nn.BatchNorm2d(w0), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, w0, 3, 1, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU())
        expansion = 4 if block is Bottleneck else 1
        layers, cin = [], w0
        for s, (n, w) in enumerate(zip(depths, widths)):
            for b in range(n):
                layers.append(block(cin, w, 2 if s > 0 and b == 0 else 1))
                cin = w * expansion
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SmallCnn(nn.Module):
    """gc-lab's `models/small.rs`: conv3x3(16)-BN-ReLU-pool, conv3x3(32)-BN-ReLU-pool,
    linear(64)-ReLU, linear(classes), for 28x28 images."""

    def __init__(self, channels, size, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc1 = nn.Linear(32 * (size // 4) ** 2, 64)
        self.fc2 = nn.Linear(64, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def resnet20():
    return ResNet(Basic, [3, 3, 3], [16, 32, 64], False, 10)


def resnet50():
    return ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], True, 1000)


# ---- timing ----

DEVICE = torch.device("cpu")


def sync():
    """Waits for the device's queued work (nothing to wait for on the CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, warmup, samples):
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def bench_optim(quick):
    torch.manual_seed(0)
    params = [p.detach().to(DEVICE).requires_grad_(True) for p in resnet50().parameters()]
    n = sum(p.numel() for p in params)
    grads = [torch.randn_like(p) * 1e-2 for p in params]
    warmup, samples = (1, 3) if quick else (2, 7)
    print(f"ResNet-50 (torchvision layout): {len(params)} parameter tensors, {n} parameters; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {DEVICE}")
    for name in OPTIMIZERS:
        opt = make_optimizer(name, params)

        def step():
            # Fresh gradients each step, as a backward pass hands them over (copied outside the
            # optimizer's arithmetic: assigning .grad is free).
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()

        # Gradient cloning is not the optimizer's work: time it alone and subtract.
        def clone_only():
            for p, g in zip(params, grads):
                p.grad = g.clone()

        total = median_ms(step, warmup, samples)
        clone = median_ms(clone_only, warmup, samples)
        ms = total - clone
        print(f"optim_step {name} {ms * 1e6 / n:.4f} {ms:.3f}")


def bench_train(model_name, quick, optimizer):
    torch.manual_seed(0)
    # As benches/train_step.rs: the same batches, input sizes, warm-up and timed steps.
    channels = 3
    if model_name == "resnet50":
        model, batch, size, classes = resnet50(), 16, 224, 1000
        warmup, steps = (1, 2) if quick else (1, 4)
    elif model_name == "small-cnn":
        channels, batch, size, classes = 1, 128, 28, 10
        model = SmallCnn(channels, size, classes)
        warmup, steps = (3, 10) if quick else (5, 40)
    elif model_name == "resnet20":
        model, batch, size, classes = resnet20(), 128, 32, 10
        warmup, steps = (2, 5) if quick else (3, 15)
    else:
        raise SystemExit(f"unknown model {model_name}: resnet20, resnet50 or small-cnn")
    model.to(DEVICE).train()
    opt = make_optimizer(optimizer, model.parameters())
    x = torch.randn(batch, channels, size, size, device=DEVICE)
    y = torch.arange(batch, device=DEVICE) % classes
    fwd, bwd, stp = [], [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        loss.item()
        t1 = time.perf_counter()
        for p in model.parameters():
            p.grad = None
        loss.backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        sync()
        t3 = time.perf_counter()
        if i >= warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            stp.append(t3 - t2)
    f, b, s = (statistics.median(v) * 1e3 for v in (fwd, bwd, stp))
    if DEVICE.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{model_name}: batch {batch} of {channels}x{size}x{size}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {DEVICE}")
    print(f"train_step {model_name} {optimizer} {f + b + s:.3f} {f:.3f} {b:.3f} {s:.3f} {peak:.1f}")


def main(argv):
    threads = int(os.environ.get("GC_BENCH_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    quick = "--quick" in argv
    global DEVICE
    if "--device" in argv:
        DEVICE = torch.device(argv[argv.index("--device") + 1])
    if argv and argv[0] == "optim":
        bench_optim(quick)
    elif argv and argv[0] == "train":
        model = argv[1] if len(argv) > 1 and not argv[1].startswith("--") else "resnet20"
        optimizer = argv[argv.index("--optimizer") + 1] if "--optimizer" in argv else "sgd_gc"
        bench_train(model, quick, optimizer)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
