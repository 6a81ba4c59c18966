"""Trainable parameter counts of the models gc-lab builds, from their definitions.

The reference values of `models::tests` come from here. The architectures are the seed's
(Yonghongwei/Gradient-Centralization, GC_code/CIFAR100/models/{resnet,vgg,resnext,densenet}.py and
GC_code/Mini_ImageNet/resnet_ws.py); torchvision's published counts are reproduced first, as a
check that the counting is right. Counts are weights, biases and norm affine parameters (BatchNorm
running statistics are buffers, not parameters). Needs only Python 3: `python3 param_counts.py`.
"""


def conv(cin, cout, k, groups=1, bias=False):
    return cout * (cin // groups) * k * k + (cout if bias else 0)


def norm(c):
    return 2 * c  # gamma and beta, for BatchNorm and GroupNorm alike


def linear(cin, cout):
    return cin * cout + cout


def resnet(blocks, bottleneck, stem, classes, bias=False):
    """stem: 'cifar' (3x3 conv) or 'imagenet' (7x7 conv); projection where the shape changes;
    `bias`: a bias on every convolution (the seed's ImageNet myresnet.py / myresnetgn.py)."""
    cb = bias
    total = conv(3, 64, 3 if stem == "cifar" else 7, bias=cb) + norm(64)
    expansion = 4 if bottleneck else 1
    cin = 64
    for stage, (width, n) in enumerate(zip([64, 128, 256, 512], blocks)):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            cout = width * expansion
            if bottleneck:
                total += conv(cin, width, 1, bias=cb) + norm(width)
                total += conv(width, width, 3, bias=cb) + norm(width)
                total += conv(width, cout, 1, bias=cb) + norm(cout)
            else:
                total += conv(cin, width, 3, bias=cb) + norm(width)
                total += conv(width, width, 3, bias=cb) + norm(width)
            if stride != 1 or cin != cout:
                total += conv(cin, cout, 1, bias=cb) + norm(cout)
            cin = cout
    return total + linear(cin, classes)


def vgg_bn(widths, hidden, classes):
    """Convs with bias, each with BatchNorm; `hidden` is torchvision's 25088-4096-4096 head, or
    None for the seed's single Linear(512, classes)."""
    total, cin = 0, 3
    for w in widths:
        total += conv(cin, w, 3, bias=True) + norm(w)
        cin = w
    if hidden is None:
        return total + linear(cin, classes)
    return total + linear(cin * 7 * 7, hidden) + linear(hidden, hidden) + linear(hidden, classes)


def resnext29(cardinality, width, classes):
    total = conv(3, 64, 1) + norm(64)
    cin = 64
    for stage in range(3):
        group_width = cardinality * width
        for b in range(3):
            stride = 2 if stage > 0 and b == 0 else 1
            cout = 2 * group_width
            total += conv(cin, group_width, 1) + norm(group_width)
            total += conv(group_width, group_width, 3, groups=cardinality) + norm(group_width)
            total += conv(group_width, cout, 1) + norm(cout)
            if stride != 1 or cin != cout:
                total += conv(cin, cout, 1) + norm(cout)
            cin = cout
        width *= 2
    return total + linear(cin, classes)


def densenet121(stem, classes, growth=32, layers=(6, 12, 24, 16)):
    """stem: 'cifar' (3x3 conv, nothing after it) or 'imagenet' (7x7 conv + BatchNorm)."""
    c = 2 * growth
    total = conv(3, c, 3) if stem == "cifar" else conv(3, c, 7) + norm(c)
    for i, n in enumerate(layers):
        for _ in range(n):
            total += norm(c) + conv(c, 4 * growth, 1) + norm(4 * growth) + conv(4 * growth, growth, 3)
            c += growth
        if i + 1 < len(layers):
            total += norm(c) + conv(c, c // 2, 1)
            c //= 2
    return total + norm(c) + linear(c, classes)


R18, R34, R50, R101 = [2, 2, 2, 2], [3, 4, 6, 3], [3, 4, 6, 3], [3, 4, 23, 3]
VGG11 = [64, 128, 256, 256, 512, 512, 512, 512]

# torchvision's published counts (its documentation's model tables), to check the method.
PUBLISHED = {
    "torchvision resnet18": (resnet(R18, False, "imagenet", 1000), 11_689_512),
    "torchvision resnet34": (resnet(R34, False, "imagenet", 1000), 21_797_672),
    "torchvision resnet50": (resnet(R50, True, "imagenet", 1000), 25_557_032),
    "torchvision resnet101": (resnet(R101, True, "imagenet", 1000), 44_549_160),
    "torchvision densenet121": (densenet121("imagenet", 1000), 7_978_856),
    "torchvision vgg11_bn": (vgg_bn(VGG11, 4096, 1000), 132_868_840),
}

# What the Rust tests expect.
OURS = {
    "r18 (CIFAR, 100 classes)": resnet(R18, False, "cifar", 100),
    "r34 (CIFAR, 100 classes)": resnet(R34, False, "cifar", 100),
    "r50 (CIFAR, 100 classes)": resnet(R50, True, "cifar", 100),
    "r101 (CIFAR, 100 classes)": resnet(R101, True, "cifar", 100),
    "vgg11-bn (100 classes)": vgg_bn(VGG11, None, 100),
    "resnext29-4x64d (100 classes)": resnext29(4, 64, 100),
    "densenet121 (CIFAR, 100 classes)": densenet121("cifar", 100),
    "imagenet-r50-ws (100 classes)": resnet(R50, True, "imagenet", 100),
    "r50bn / r50gn (conv biases, 1000 classes)": resnet(R50, True, "imagenet", 1000, bias=True),
    "r101bn / r101gn (conv biases, 1000 classes)": resnet(R101, True, "imagenet", 1000, bias=True),
}

# The seed's ImageNet ResNets with conv biases, as counted by instantiating its classes in PyTorch.
SEED_COUNTS = {
    "r50bn / r50gn (conv biases, 1000 classes)": 25_583_592,
    "r101bn / r101gn (conv biases, 1000 classes)": 44_601_832,
}

if __name__ == "__main__":
    ok = True
    for name, (got, published) in PUBLISHED.items():
        ok &= got == published
        print(f"{name:34s} {got:>12,}  published {published:>12,}  {'ok' if got == published else 'MISMATCH'}")
    for name, count in OURS.items():
        seed = SEED_COUNTS.get(name)
        ok &= seed is None or seed == count
        check = "" if seed is None else ("  the seed's" if seed == count else "  MISMATCH with the seed's")
        print(f"{name:34s} {count:>12,}{check}")
    raise SystemExit(0 if ok else 1)
