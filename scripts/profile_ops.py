"""Where a training step spends its time, by kind of operation: reads `perf script` output (samples
with DWARF call chains) on stdin and attributes each sample to the first category whose pattern
matches its stack.

Work that burn-flex hands to its thread pool is sampled on the pool's threads, whose stacks do not
show which layer or pass asked for it; so convolutions are split by kernel (direct for the forward
pass and weight gradients, transposed for input gradients), not by pass. The lab's own
convolutions (flex_kernels::conv, the default) are split by pass where the stack shows it, the
direct kernels by kernel, the padded copies and im2col by function. The forward/backward split
comes from benches/train_step.rs's timings instead.

Used by scripts/profile-train-step.sh; the categories follow burn-flex's function names in burn
0.22.1.
"""

import re
import sys
from collections import Counter

# (category, pattern over the whole stack), first match wins.
CATEGORIES = [
    ("bench setup (random inputs, model init)", r"RngExt::sample|ElementRandom|TensorData::random|Config::init|Net::seeded"),
    ("optimizer step", r"gradient_centralization::|ModuleOptimizer"),
    ("kernel: page faults, TLB shootdowns", r"exc_page_fault|clear_page|flush_tlb|do_wp_page|do_anonymous_page"),
    ("flex_kernels::conv: direct kernel, weight gradients", r"flex_kernels::conv::(direct|wide)::kernel_dw|\bkernel_dw<\d+(, \d+)?>"),
    ("flex_kernels::conv: dy transposed for the direct weight gradients", r"flex_kernels::conv::direct::transpose"),
    ("flex_kernels::conv: direct kernel, forward and flipped input gradients", r"flex_kernels::conv::(direct|wide)::kernel|\bkernel<\d+(, \d+)?(, (true|false))?>"),
    ("flex_kernels::conv: padded copies (direct, shifted)", r"flex_kernels::conv::shifted::(embed|extract)"),
    ("flex_kernels::conv: im2col, col2im", r"flex_kernels::conv::im2col::<impl flex_kernels::conv::geometry::Geometry>::(im2col|col2im)|Geometry::(im2col|col2im)"),
    ("flex_kernels::conv: forward products", r"flex_kernels::conv::im2col::forward"),
    ("flex_kernels::conv: weight gradient products", r"flex_kernels::conv::im2col::weight_grad"),
    ("flex_kernels::conv: input gradient products", r"flex_kernels::conv::im2col::input_grad"),
    ("transposed conv kernels (input gradients)", r"conv_transpose"),
    ("conv kernels (forward, weight gradients)", r"conv3d_impl|conv2d_f32|conv3d_f32|conv_plane|conv3d_small_channel"),
    ("pooling", r"pool"),
    ("batch norm", r"BatchNorm|batch_norm"),
    ("reductions (sum, mean)", r"ops::reduce"),
    ("elementwise ops", r"binary_op|unary_op|zip_|macerator|float_mul|float_add"),
    ("memory copies and fills", r"memmove|memset|memcpy|copy_2d_tiled"),
    ("gemm on pool threads (convolutions, linear layers)", r"gemm"),
    ("allocator", r"malloc|free|mmap|munmap|__rust_alloc|__rust_dealloc"),
]

def samples(stream):
    stack = []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield " ".join(stack)
            stack = []
        elif line.startswith((" ", "\t")):
            parts = line.split(None, 1)
            if len(parts) == 2:
                stack.append(parts[1])
        else:
            stack = []
    if stack:
        yield " ".join(stack)

def main():
    kinds, total = Counter(), 0
    compiled = [(name, re.compile(p)) for name, p in CATEGORIES]
    for stack in samples(sys.stdin):
        total += 1
        kinds[next((name for name, p in compiled if p.search(stack)), "other")] += 1
    if total == 0:
        raise SystemExit("no samples read; was perf recorded with --call-graph dwarf?")
    print(f"{'kind':<50} {'share':>7}")
    for kind, n in kinds.most_common():
        print(f"{kind:<50} {100 * n / total:>6.1f}%")
    print(f"({total} samples)")

if __name__ == "__main__":
    main()
