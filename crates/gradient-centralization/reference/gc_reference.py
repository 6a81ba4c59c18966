#!/usr/bin/env python3
"""Float64 numpy reference for the Gradient Centralization optimizers.

Replays a trace document (the format is described in README.md here) through the
named optimizer and returns the weights after every step:

    input  {"optimizer", "hyper", "dtype", "rule", "params": [{"name", "kind", "shape", "groups",
            "value", "grads"}, ...]}
           (hyper.lr: a number, or a list with one lr per gradient step, step k using lr[k])
    output {"optimizer": <name lowercased>, "steps": [{<param name>: [flat values], ...}, ...]}

The arithmetic follows the seed (Yong et al., ECCV 2020, repository Yonghongwei/Gradient-Centralization)
as restated in SPEC-seed-optimizers.md, and for RAdam, Ranger and Lookahead the seed's
algorithm-GC/algorithm/{RAdam,Ranger,Lookahead}.py; see README.md for the formulas. Everything is
computed in float64 whatever the document's `dtype` says.

Library use:  run_trace(doc) -> output doc   (raises TraceError, a ValueError, on any problem)
Command line: python3 gc_reference.py FILE|-   (prints the output JSON; on error prints
              "error: <json path>: <message>" on stderr and exits with status 1)
"""

import json
import math
import sys

import numpy as np

__all__ = [
    "TraceError",
    "OPTIMIZERS",
    "KIND_RANK",
    "run_trace",
    "centralize_axis0",
    "centralize_transposed",
    "make_centralizer",
    "output_unit_slices",
    "radam_rho",
    "radam_rectified",
]


class TraceError(ValueError):
    """A problem with a trace document; `path` is the JSON path of the offending part."""

    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


# --------------------------------------------------------------------------------------------------
# Optimizer table: name -> (family, gc variant or None, where GC applies: "grad" or "update")
# --------------------------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": ("sgd", None, "grad"),
    "sgd_gc": ("sgd", "gc", "grad"),
    "sgd_gcc": ("sgd", "gcc", "grad"),
    "sgdw": ("sgdw", None, "grad"),
    "sgdw_gc": ("sgdw", "gc", "grad"),
    "sgdw_gcc": ("sgdw", "gcc", "grad"),
    "adam": ("adam", None, "grad"),
    "adam_gc": ("adam", "gc", "grad"),
    "adam_gcc": ("adam", "gcc", "grad"),
    "adam_gc2": ("adam", "gc", "update"),
    "adam_gcc2": ("adam", "gcc", "update"),
    "adamw": ("adamw", None, "grad"),
    "adamw_gc": ("adamw", "gc", "grad"),
    "adamw_gcc": ("adamw", "gcc", "grad"),
    "adamw_gc2": ("adamw", "gc", "update"),
    "adamw_gcc2": ("adamw", "gcc", "update"),
    "adamw_torch": ("adamw_torch", None, "grad"),
    "adagrad": ("adagrad", None, "grad"),
    "adagrad_gc": ("adagrad", "gc", "grad"),
    "adagrad_gcc": ("adagrad", "gcc", "grad"),
    # The seed's algorithm-GC/algorithm/RAdam.py: `_gc(c)` is its gc_loc=True (GC on the raw gradient),
    # `_gc(c)2` its default gc_loc=False (GC on the final update).
    "radam": ("radam", None, "grad"),
    "radam_gc": ("radam", "gc", "grad"),
    "radam_gcc": ("radam", "gcc", "grad"),
    "radam_gc2": ("radam", "gc", "update"),
    "radam_gcc2": ("radam", "gcc", "update"),
    # The seed's Ranger.py: RAdam with Lookahead built in; GC locations as RAdam's.
    "ranger": ("ranger", None, "grad"),
    "ranger_gc": ("ranger", "gc", "grad"),
    "ranger_gcc": ("ranger", "gcc", "grad"),
    "ranger_gc2": ("ranger", "gc", "update"),
    "ranger_gcc2": ("ranger", "gcc", "update"),
}

# The seed's Lookahead.py wraps any optimizer: `lookahead_<name>` for every name above but Ranger's,
# which has Lookahead built in. Its family is `lookahead_<family>`.
LOOKAHEAD_PREFIX = "lookahead_"
OPTIMIZERS.update({LOOKAHEAD_PREFIX + name: (LOOKAHEAD_PREFIX + family, variant, loc)
                   for name, (family, variant, loc) in list(OPTIMIZERS.items()) if family != "ranger"})

_REQUIRED = object()

# Hyperparameters each family accepts, with the seed's / PyTorch's defaults. A key that is not in the
# family's table is an error (as torch's constructors reject an unexpected keyword).
_SGD_HYPER = {"lr": _REQUIRED, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}
_ADAM_HYPER = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}
HYPER_DEFAULTS = {
    "sgd": _SGD_HYPER,
    "sgdw": _SGD_HYPER,
    "adam": _ADAM_HYPER,
    "adamw": _ADAM_HYPER,  # the seed's AdamW: weight_decay defaults to 0
    "adamw_torch": dict(_ADAM_HYPER, weight_decay=1e-2),  # torch.optim.AdamW: 1e-2
    "adagrad": {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0,
                "eps": 1e-10},
    # seed_buffer_aliasing: reproduce the seed's in-place update of the stored first moment in the
    # unrectified steps (see _radam_update). Not a constructor argument of the seed: off, the reference
    # keeps the first moment as the formulas state it.
    "radam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
              "seed_buffer_aliasing": False},
    # Ranger's own defaults: beta1 0.95, eps 1e-5; Lookahead every k = 6 steps with alpha 0.5.
    "ranger": {"lr": 1e-3, "betas": (0.95, 0.999), "eps": 1e-5, "weight_decay": 0.0, "k": 6, "alpha": 0.5,
               "seed_buffer_aliasing": False},
}
# Lookahead.py: the inner family's keys plus k (default 5) and alpha (default 0.5).
HYPER_DEFAULTS.update({LOOKAHEAD_PREFIX + family: dict(table, k=5, alpha=0.5)
                       for family, table in list(HYPER_DEFAULTS.items()) if family != "ranger"})
ALL_HYPER_KEYS = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps", "amsgrad",
                  "lr_decay", "initial_accumulator_value", "seed_buffer_aliasing", "k", "alpha")

# Rank of each kind's weight in PyTorch layout.
KIND_RANK = {
    "linear": 2,
    "conv1d": 3,
    "conv2d": 4,
    "conv3d": 5,
    "conv_transpose1d": 3,
    "conv_transpose2d": 4,
    "conv_transpose3d": 5,
    "embedding": 2,
    "bias": 1,
    "norm": 1,
}
CONV_KINDS = ("conv1d", "conv2d", "conv3d")
CONV_TRANSPOSE_KINDS = ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
# `layer` rule: which kinds each variant centralizes.
LAYER_RULE_KINDS = {
    "gc": frozenset(CONV_KINDS + CONV_TRANSPOSE_KINDS + ("linear",)),
    "gcc": frozenset(CONV_KINDS + CONV_TRANSPOSE_KINDS),
}
# `rank_rule` rule: a tensor is centralized when its PyTorch-layout rank exceeds this.
RANK_RULE_THRESHOLD = {"gc": 1, "gcc": 3}
RULES = ("layer", "rank_rule")
DTYPES = ("f32", "f64")


# --------------------------------------------------------------------------------------------------
# The GC operation
# --------------------------------------------------------------------------------------------------

def centralize_axis0(x, keep_fan_in_one=True):
    """GC per index of axis 0, the mean taken over every other axis.

    A tensor whose slices hold a single element (fan-in 1) is returned unchanged when
    `keep_fan_in_one` (the `layer` rule): centralizing it would zero it. The seed's rank rule has no
    such exception and zeroes it (`keep_fan_in_one=False`).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError("centralize_axis0 needs a tensor of rank >= 2")
    rows = x.reshape(x.shape[0], -1)
    if rows.shape[1] == 1 and keep_fan_in_one:
        return x.copy()
    return (rows - rows.mean(axis=1, keepdims=True)).reshape(x.shape)


def centralize_transposed(x, groups=1):
    """GC per OUTPUT channel of a transposed conv weight laid out (in, out/groups, k...).

    Output channel g*out_per_group + j gathers the input rows g*(in/groups) .. (g+1)*(in/groups) at
    column j and every kernel position; its mean is taken over those elements. Fan-in 1: unchanged.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 3:
        raise ValueError("centralize_transposed needs a tensor of rank >= 3")
    cin, opg = x.shape[0], x.shape[1]
    if groups < 1 or cin % groups != 0:
        raise ValueError(f"in channels {cin} not divisible by groups {groups}")
    ipg = cin // groups
    k = int(np.prod(x.shape[2:], dtype=np.int64))
    if ipg * k == 1:
        return x.copy()
    blocks = x.reshape(groups, ipg, opg, k)
    return (blocks - blocks.mean(axis=(1, 3), keepdims=True)).reshape(x.shape)


def output_unit_slices(kind, shape, groups=1, rule="layer"):
    """Index arrays (into the flat tensor) of each unit that a rule centralizes over.

    `layer` + transposed conv: one entry per output channel (the grouped fan-in); otherwise one
    entry per index of axis 0. Used by the tests and as documentation of the slicing.
    """
    shape = tuple(shape)
    idx = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    if rule == "layer" and kind in CONV_TRANSPOSE_KINDS:
        cin, opg = shape[0], shape[1]
        ipg = cin // groups
        out = []
        for g in range(groups):
            for j in range(opg):
                out.append(idx[g * ipg:(g + 1) * ipg, j].ravel())
        return out
    return [idx[o].ravel() for o in range(shape[0])]


def make_centralizer(kind, shape, groups, rule, variant):
    """Return the function applying GC to one tensor of this param, or None when it is never centralized."""
    if variant is None:
        return None
    rank = len(shape)
    if rule == "layer":
        if kind not in LAYER_RULE_KINDS[variant]:
            return None
        if kind in CONV_TRANSPOSE_KINDS:
            return lambda x: centralize_transposed(x, groups)
        return centralize_axis0
    if rule == "rank_rule":
        if rank > RANK_RULE_THRESHOLD[variant]:
            # The seed's arithmetic exactly: a fan-in-1 slice is zeroed, as the seed does.
            return lambda x: centralize_axis0(x, keep_fan_in_one=False)
        return None
    raise AssertionError(rule)


# --------------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------------

def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number(x, path, minimum=None, below=None, maximum=None):
    if not _is_number(x):
        raise TraceError(path, f"expected a number, got {json.dumps(x)}")
    x = float(x)
    if not math.isfinite(x):
        raise TraceError(path, "expected a finite number")
    if minimum is not None and x < minimum:
        raise TraceError(path, f"must be >= {minimum}, got {x!r}")
    if maximum is not None and x > maximum:
        raise TraceError(path, f"must be <= {maximum}, got {x!r}")
    if below is not None and not x < below:
        raise TraceError(path, f"must be < {below}, got {x!r}")
    return x


def _bool(x, path):
    if not isinstance(x, bool):
        raise TraceError(path, f"expected true or false, got {json.dumps(x)}")
    return x


def _int(x, path, minimum):
    # An integer as JSON writes one (3, not 3.0), as the Rust replay reads it.
    if isinstance(x, bool) or not isinstance(x, int):
        raise TraceError(path, f"expected an integer, got {json.dumps(x)}")
    x = int(x)
    if x < minimum:
        raise TraceError(path, f"must be >= {minimum}, got {x}")
    return x


def _number_list(x, n, path):
    if not isinstance(x, list):
        raise TraceError(path, "expected a list of numbers")
    if len(x) != n:
        raise TraceError(path, f"expected {n} numbers (the product of the shape), got {len(x)}")
    for i, v in enumerate(x):
        if not _is_number(v):
            raise TraceError(f"{path}[{i}]", f"expected a number, got {json.dumps(v)}")
    arr = np.array(x, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise TraceError(f"{path}[{int(bad[0])}]", "expected a finite number")
    return arr


def _check_keys(obj, allowed, path):
    for key in obj:
        if key not in allowed:
            raise TraceError(f"{path}.{key}", f"unknown key (expected one of: {', '.join(allowed)})")


def parse_optimizer_name(name, path="$.optimizer"):
    if not isinstance(name, str):
        raise TraceError(path, "expected a string")
    key = name.lower()
    if key not in OPTIMIZERS:
        raise TraceError(path, f"unknown optimizer {name!r} (expected one of: {', '.join(OPTIMIZERS)})")
    return key


def inner_family(family):
    """The family a `lookahead_<family>` wraps; any other family is its own."""
    return family[len(LOOKAHEAD_PREFIX):] if family.startswith(LOOKAHEAD_PREFIX) else family


def parse_hyper(family, hyper, path="$.hyper"):
    if hyper is None:
        hyper = {}
    if not isinstance(hyper, dict):
        raise TraceError(path, "expected an object")
    table = HYPER_DEFAULTS[family]
    for key in hyper:
        if key not in table:
            if key in ALL_HYPER_KEYS:
                raise TraceError(f"{path}.{key}", f"not a hyperparameter of the {family} family "
                                                  f"(accepted: {', '.join(table)})")
            raise TraceError(f"{path}.{key}", f"unknown hyperparameter (accepted for {family}: "
                                              f"{', '.join(table)})")
    h = {}
    for key, default in table.items():
        p = f"{path}.{key}"
        if key not in hyper:
            if default is _REQUIRED:
                raise TraceError(p, f"required for the {family} family (PyTorch has no default)")
            h[key] = default
            continue
        v = hyper[key]
        if key in ("nesterov", "amsgrad", "seed_buffer_aliasing"):
            h[key] = _bool(v, p)
        elif key == "k":
            h[key] = _int(v, p, 1)
        elif key == "alpha":
            h[key] = _number(v, p, minimum=0.0, maximum=1.0)
        elif key == "betas":
            if not isinstance(v, list) or len(v) != 2:
                raise TraceError(p, "expected a list of two numbers")
            h[key] = (_number(v[0], f"{p}[0]", 0.0, 1.0), _number(v[1], f"{p}[1]", 0.0, 1.0))
        elif key == "dampening":
            h[key] = _number(v, p)
        elif key == "lr" and isinstance(v, list):
            # A learning-rate schedule: one lr per gradient step (step k uses lr[k]), as a scheduler
            # writes param_groups[i]["lr"] between steps. Its length is checked against the steps in
            # run_trace, once the params are read.
            h[key] = [_number(x, f"{p}[{i}]", minimum=0.0) for i, x in enumerate(v)]
        else:  # lr, momentum, weight_decay, eps, lr_decay, initial_accumulator_value
            h[key] = _number(v, p, minimum=0.0)
    sgd_like = inner_family(family) in ("sgd", "sgdw")
    if sgd_like and h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
        raise TraceError(f"{path}.nesterov", "Nesterov momentum requires a momentum and zero dampening")
    return h


class _Param:
    __slots__ = ("name", "kind", "shape", "groups", "value", "grads", "gc")


def parse_params(params, rule, variant, path="$.params"):
    if not isinstance(params, list):
        raise TraceError(path, "expected a list of params")
    out = []
    names = set()
    n_steps = None
    allowed = ("name", "kind", "shape", "groups", "value", "grads")
    for i, raw in enumerate(params):
        pp = f"{path}[{i}]"
        if not isinstance(raw, dict):
            raise TraceError(pp, "expected an object")
        _check_keys(raw, allowed, pp)
        for key in ("name", "kind", "shape", "value", "grads"):
            if key not in raw:
                raise TraceError(f"{pp}.{key}", "missing")
        p = _Param()
        p.name = raw["name"]
        if not isinstance(p.name, str) or not p.name:
            raise TraceError(f"{pp}.name", "expected a non-empty string")
        if p.name in names:
            raise TraceError(f"{pp}.name", f"duplicate param name {p.name!r}")
        names.add(p.name)
        p.kind = raw["kind"]
        if p.kind not in KIND_RANK:
            raise TraceError(f"{pp}.kind", f"unknown kind {json.dumps(p.kind)} "
                                           f"(expected one of: {', '.join(KIND_RANK)})")
        shape = raw["shape"]
        if not isinstance(shape, list) or not shape:
            raise TraceError(f"{pp}.shape", "expected a non-empty list of positive integers")
        p.shape = tuple(_int(d, f"{pp}.shape[{j}]", 1) for j, d in enumerate(shape))
        if len(p.shape) != KIND_RANK[p.kind]:
            raise TraceError(f"{pp}.shape", f"a {p.kind} weight has rank {KIND_RANK[p.kind]} in PyTorch "
                                            f"layout, got rank {len(p.shape)}")
        p.groups = _int(raw.get("groups", 1), f"{pp}.groups", 1)
        if p.groups != 1:
            if p.kind not in CONV_KINDS + CONV_TRANSPOSE_KINDS:
                raise TraceError(f"{pp}.groups", f"groups applies to conv kinds only, not {p.kind}")
            if p.shape[0] % p.groups != 0:
                raise TraceError(f"{pp}.groups", f"axis 0 ({p.shape[0]}) is not divisible by groups "
                                                 f"({p.groups})")
        n = int(np.prod(p.shape, dtype=np.int64))
        p.value = _number_list(raw["value"], n, f"{pp}.value").reshape(p.shape)
        grads = raw["grads"]
        if not isinstance(grads, list):
            raise TraceError(f"{pp}.grads", "expected a list of gradient steps")
        if n_steps is None:
            n_steps = len(grads)
        elif len(grads) != n_steps:
            raise TraceError(f"{pp}.grads", f"expected {n_steps} gradient steps (as the first param), "
                                            f"got {len(grads)}")
        p.grads = [_number_list(g, n, f"{pp}.grads[{s}]").reshape(p.shape) for s, g in enumerate(grads)]
        p.gc = make_centralizer(p.kind, p.shape, p.groups, rule, variant)
        out.append(p)
    return out, (n_steps or 0)


# --------------------------------------------------------------------------------------------------
# One optimizer step per family. `w` and `g` are float64 arrays; `st` is the param's state dict;
# `C` the centralizer (None: not centralized); `t` the step number, from 1; `h` this step's
# hyperparameters, `h["lr"]` this step's (scheduled) learning rate, used wherever torch/the seed use
# group["lr"]: SGD(W) w - lr*d and SGDW's decay wd*lr*w_old; Adam's lr/(1-b1^t); the seed's AdamW
# lr*sqrt(1-b2^t)/(1-b1^t), which also scales its decay; adamw_torch's w*(1-lr*wd) and lr/(1-b1^t);
# Adagrad's clr = lr/(1+(t-1)*lr_decay); RAdam's and Ranger's (r*lr). Momentum buffers, moments and
# Lookahead's slow weights hold no lr.
# --------------------------------------------------------------------------------------------------

def _momentum(d, st, h, t):
    mu = h["momentum"]
    if mu == 0:
        return d
    if t == 1:
        buf = d.copy()
    else:
        buf = mu * st["buf"] + (1.0 - h["dampening"]) * d
    st["buf"] = buf
    return d + mu * buf if h["nesterov"] else buf


def _step_sgd(w, g, st, h, t, C, loc):
    # SGD / SGD_GC / SGD_GCC: L2 into the gradient, then GC, then momentum.
    wd = h["weight_decay"]
    d = g + wd * w if wd != 0 else g
    if C is not None:
        d = C(d)
    d = _momentum(d, st, h, t)
    return w - h["lr"] * d


def _step_sgdw(w, g, st, h, t, C, loc):
    # SGDW / SGDW_GC / SGDW_GCC: GC on the raw gradient; decoupled decay with the pre-update weights.
    w_old = w
    d = C(g) if C is not None else g
    d = _momentum(d, st, h, t)
    w = w - h["lr"] * d
    wd = h["weight_decay"]
    if wd != 0:
        w = w - (wd * h["lr"]) * w_old
    return w


def _moments(g, st, h):
    b1, b2 = h["betas"]
    amsgrad = h.get("amsgrad", False)  # RAdam and Ranger have none
    if "m" not in st:
        st["m"] = np.zeros_like(g)
        st["v"] = np.zeros_like(g)
        if amsgrad:
            st["vmax"] = np.zeros_like(g)
    st["m"] = b1 * st["m"] + (1.0 - b1) * g
    st["v"] = b2 * st["v"] + (1.0 - b2) * (g * g)
    if amsgrad:
        st["vmax"] = np.maximum(st["vmax"], st["v"])
        return st["m"], st["vmax"]
    return st["m"], st["v"]


def _step_adam(w, g, st, h, t, C, loc):
    # Adam / Adam_GC(C) (GC on the L2-augmented gradient) / Adam_GC(C)2 (GC on the update).
    b1, b2 = h["betas"]
    bc1 = 1.0 - b1 ** t
    bc2 = 1.0 - b2 ** t
    wd = h["weight_decay"]
    if wd != 0:
        g = g + wd * w
    if C is not None and loc == "grad":
        g = C(g)
    m, v = _moments(g, st, h)
    denom = np.sqrt(v) / math.sqrt(bc2) + h["eps"]
    step_size = h["lr"] / bc1
    if C is not None and loc == "update":
        delta = C(step_size * m / denom)
        return w - delta
    return w - step_size * (m / denom)


def _step_adamw(w, g, st, h, t, C, loc):
    # The seed's AdamW / AdamW_GC(C) / AdamW_GC(C)2: eps outside the bias correction, decay scaled by
    # the bias-corrected step.
    b1, b2 = h["betas"]
    if C is not None and loc == "grad":
        g = C(g)
    m, v = _moments(g, st, h)
    denom = np.sqrt(v) + h["eps"]
    bc1 = 1.0 - b1 ** t
    bc2 = 1.0 - b2 ** t
    step_size = h["lr"] * math.sqrt(bc2) / bc1
    u = h["weight_decay"] * w + m / denom
    if C is not None and loc == "update":
        delta = C(step_size * u)
        return w - delta
    return w - step_size * u


def _step_adamw_torch(w, g, st, h, t, C, loc):
    # torch.optim.AdamW: decoupled decay by lr*wd first, then the Adam step.
    b1, b2 = h["betas"]
    w = w * (1.0 - h["lr"] * h["weight_decay"])
    m, v = _moments(g, st, h)
    bc1 = 1.0 - b1 ** t
    bc2 = 1.0 - b2 ** t
    denom = np.sqrt(v) / math.sqrt(bc2) + h["eps"]
    step_size = h["lr"] / bc1
    return w - step_size * (m / denom)


def _step_adagrad(w, g, st, h, t, C, loc):
    # Adagrad / Adagrad_GC(C): L2, GC, decayed lr, accumulated squares.
    if "sum" not in st:
        st["sum"] = np.full_like(w, h["initial_accumulator_value"])
    wd = h["weight_decay"]
    if wd != 0:
        g = g + wd * w
    if C is not None:
        g = C(g)
    clr = h["lr"] / (1.0 + (t - 1) * h["lr_decay"])
    st["sum"] = st["sum"] + g * g
    std = np.sqrt(st["sum"]) + h["eps"]
    return w - clr * (g / std)


def radam_rho(b2, t):
    """RAdam's (rho_t, rho_inf): the length of the approximated simple moving average at step t and its
    limit, in the seed's order of operations."""
    b2t = b2 ** t
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    return rho_inf - 2.0 * t * b2t / (1.0 - b2t), rho_inf


def radam_rectified(family, rho):
    """Whether step with this rho_t takes the rectified (adaptive) branch: RAdam rho >= 5, Ranger rho > 5
    (its N_sma_threshhold 5, compared strictly). rho_t < t, so steps 1 to 5 never do."""
    return rho > 5.0 if family == "ranger" else rho >= 5.0


def _radam_update(w, g, st, h, t, C, loc, family):
    # RAdam / RAdam_GC(C) (GC on the raw gradient) / RAdam_GC(C)2 (GC on the final update); Ranger's
    # step before its Lookahead. Decay is added to the update u (not to the gradient), so it is scaled
    # by r*lr, and by 1/(1-b1^t) in the unrectified steps.
    b1, b2 = h["betas"]
    if C is not None and loc == "grad":
        g = C(g)
    m, v = _moments(g, st, h)
    rho, rho_inf = radam_rho(b2, t)
    bc1 = 1.0 - b1 ** t
    if radam_rectified(family, rho):
        b2t = b2 ** t
        r = math.sqrt((1.0 - b2t) * (rho - 4.0) / (rho_inf - 4.0) * (rho - 2.0) / rho * rho_inf
                      / (rho_inf - 2.0)) / bc1
        u = m / (np.sqrt(v) + h["eps"])
        aliased = False
    else:
        # SGD with momentum on the bias-corrected first moment. `u` is the stored m itself; every
        # operation below makes a new array, so the stored m keeps its value.
        r = 1.0 / bc1
        u = m
        aliased = h["seed_buffer_aliasing"]
    wd = h["weight_decay"]
    if wd != 0:
        u = u + wd * w
    if C is not None and loc == "update":
        u = C(u)
    if aliased:
        # The seed's `G_grad = exp_avg` is the stored first moment, and its in-place decay and GC
        # change it: the step's final update becomes the first moment that the next step reads.
        st["m"] = u
    return w - (r * h["lr"]) * u


def _step_radam(w, g, st, h, t, C, loc):
    return _radam_update(w, g, st, h, t, C, loc, "radam")


def _step_ranger(w, g, st, h, t, C, loc):
    # Ranger / Ranger_GC(C) / Ranger_GC(C)2: the RAdam step (rho > 5), then every k-th step the slow
    # weights, which start at the weights before the first step, move alpha of the way to the fast
    # weights, and the fast weights are reset to them.
    if "slow" not in st:
        st["slow"] = w.copy()
    w = _radam_update(w, g, st, h, t, C, loc, "ranger")
    if t % h["k"] == 0:
        st["slow"] = st["slow"] + h["alpha"] * (w - st["slow"])
        w = st["slow"].copy()
    return w


def _lookahead(inner):
    """The seed's Lookahead around an inner step: a counter from 0; when it is 0 after the inner step,
    the slow weights (a copy of the fast weights at their first use, i.e. after step 1) move alpha of the
    way to the fast weights and the fast weights are reset to them; the counter then counts to k and
    restarts at 0. So the syncs follow steps 1, 1+k, 1+2k, ..."""

    def step(w, g, st, h, t, C, loc):
        w = inner(w, g, st.setdefault("inner", {}), h, t, C, loc)
        counter = st.get("counter", 0)
        if counter == 0:
            if "slow" not in st:
                st["slow"] = w.copy()
            st["slow"] = st["slow"] + h["alpha"] * (w - st["slow"])
            w = st["slow"].copy()
        counter += 1
        st["counter"] = 0 if counter >= h["k"] else counter
        return w

    return step


_STEP = {
    "sgd": _step_sgd,
    "sgdw": _step_sgdw,
    "adam": _step_adam,
    "adamw": _step_adamw,
    "adamw_torch": _step_adamw_torch,
    "adagrad": _step_adagrad,
    "radam": _step_radam,
    "ranger": _step_ranger,
}
_STEP.update({family: _lookahead(_STEP[inner_family(family)])
              for family in HYPER_DEFAULTS if family.startswith(LOOKAHEAD_PREFIX)})


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------

def run_trace(doc):
    """Answer a trace document (a dict, as parsed from JSON); raises TraceError on any problem."""
    if not isinstance(doc, dict):
        raise TraceError("$", "expected an object")
    _check_keys(doc, ("optimizer", "hyper", "dtype", "rule", "params"), "$")
    for key in ("optimizer", "params"):
        if key not in doc:
            raise TraceError(f"$.{key}", "missing")
    name = parse_optimizer_name(doc["optimizer"])
    family, variant, loc = OPTIMIZERS[name]
    dtype = doc.get("dtype", "f32")
    if dtype not in DTYPES:
        raise TraceError("$.dtype", f"expected one of {', '.join(DTYPES)}, got {json.dumps(dtype)}")
    rule = doc.get("rule", "layer")
    if rule not in RULES:
        raise TraceError("$.rule", f"expected one of {', '.join(RULES)}, got {json.dumps(rule)}")
    h = parse_hyper(family, doc.get("hyper"))
    params, n_steps = parse_params(doc["params"], rule, variant)
    lrs = lr_schedule(h["lr"], n_steps)

    step_fn = _STEP[family]
    weights = [p.value.copy() for p in params]
    states = [{} for _ in params]
    steps = []
    for s in range(n_steps):
        t = s + 1
        # This step's hyperparameters: the scheduled lr replaces the number everywhere the step reads
        # `lr` (as torch and the seed read group["lr"] afresh on every step); the state (momentum
        # buffers, moments, Adagrad's sum, Lookahead's slow weights and counter, the step count t)
        # carries over unchanged.
        hs = dict(h, lr=lrs[s])
        snapshot = {}
        for i, p in enumerate(params):
            weights[i] = step_fn(weights[i], p.grads[s], states[i], hs, t, p.gc, loc)
            snapshot[p.name] = weights[i].ravel().tolist()
        steps.append(snapshot)
    return {"optimizer": name, "steps": steps}


def lr_schedule(lr, n_steps, path="$.hyper.lr"):
    """The learning rate of each step: a number repeated, or a list of exactly one lr per step."""
    if isinstance(lr, list):
        if len(lr) != n_steps:
            raise TraceError(path, f"a learning-rate schedule needs one lr per gradient step: expected "
                                   f"{n_steps}, got {len(lr)}")
        return [float(x) for x in lr]
    return [float(lr)] * n_steps


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def loads(text):
    """Parse JSON strictly (no NaN/Infinity, no duplicate keys); raises TraceError."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise TraceError("$", f"malformed JSON: {e}") from None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: gc_reference.py FILE|-\n")
        return 2
    try:
        if argv[0] == "-":
            text = sys.stdin.read()
        else:
            with open(argv[0], encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    try:
        out = run_trace(loads(text))
    except TraceError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    sys.stdout.write(json.dumps(out, separators=(",", ":")))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
