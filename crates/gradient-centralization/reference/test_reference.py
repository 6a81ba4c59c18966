"""Self-checks of the GC reference. Run (numpy needed, e.g. the reference venv):

    reference/.venv/bin/python -m unittest discover -s reference      # from the crate directory
    ../.venv/bin/python -m unittest test_reference                    # ... or from reference/.venv's parent
"""

import copy
import glob
import json
import math
import os
import subprocess
import sys
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gc_reference as ref  # noqa: E402
import generate_fixtures as gen  # noqa: E402

FIXTURE_DIR = os.path.normpath(os.path.join(HERE, "..", "tests", "fixtures"))


def param(name, kind, shape, rng, groups=1, steps=5):
    n = int(np.prod(shape))
    p = {"name": name, "kind": kind, "shape": list(shape),
         "value": (rng.standard_normal(n) * 0.5).tolist(),
         "grads": [(rng.standard_normal(n) * 0.1).tolist() for _ in range(steps)]}
    if groups != 1:
        p["groups"] = groups
    return p


def doc(optimizer, params, rule="layer", **hyper):
    return {"optimizer": optimizer, "hyper": hyper, "rule": rule, "params": params}


def lr_at(lr, t):
    """The lr of step t (from 1): `lr` is a number or a schedule with one lr per step."""
    return lr[t - 1] if isinstance(lr, list) else lr


def centralized_units(p, rule, variant):
    """Flat index sets over which `p` is centralized, or [] when it is not centralized."""
    shape = tuple(p["shape"])
    if ref.make_centralizer(p["kind"], shape, p.get("groups", 1), rule, variant) is None:
        return []
    units = ref.output_unit_slices(p["kind"], shape, p.get("groups", 1), rule)
    return [u for u in units if u.size > 1]


class GcOperation(unittest.TestCase):
    def test_hand_computed_2x3(self):
        g = np.array([[1.0, 2.0, 3.0], [4.0, 6.0, 8.0]])
        np.testing.assert_array_equal(ref.centralize_axis0(g), [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0]])

    def test_conv_mean_is_per_filter_not_per_kernel_position(self):
        g = np.zeros((2, 2, 1, 2))
        g[0] = [[[1.0, 3.0]], [[5.0, 7.0]]]  # filter mean 4
        g[1] = 1.0  # constant filter -> zero
        out = ref.centralize_axis0(g)
        np.testing.assert_array_equal(out[0].ravel(), [-3.0, -1.0, 1.0, 3.0])
        np.testing.assert_array_equal(out[1], 0.0)

    def test_zero_mean_per_centralized_unit(self):
        rng = np.random.default_rng(1)
        cases = [("linear", (6, 7), 1), ("conv1d", (5, 2, 3), 1), ("conv2d", (4, 3, 3, 3), 1),
                 ("conv3d", (3, 2, 2, 2, 2), 1), ("conv2d", (4, 1, 3, 3), 2),
                 ("conv_transpose1d", (4, 3, 5), 2), ("conv_transpose2d", (4, 3, 2, 2), 1),
                 ("conv_transpose2d", (6, 2, 3, 3), 3), ("conv_transpose3d", (2, 2, 2, 2, 2), 1),
                 ("embedding", (5, 3), 1)]
        for kind, shape, groups in cases:
            for rule in ref.RULES:
                for variant in ("gc", "gcc"):
                    C = ref.make_centralizer(kind, shape, groups, rule, variant)
                    if C is None:
                        continue
                    g = rng.standard_normal(shape)
                    out = C(g).ravel()
                    for unit in ref.output_unit_slices(kind, shape, groups, rule):
                        with self.subTest(kind=kind, rule=rule, variant=variant, groups=groups):
                            self.assertLess(abs(out[unit].sum()), 1e-12)

    def test_idempotent_and_norm_not_increased(self):
        rng = np.random.default_rng(2)
        g = rng.standard_normal((6, 2, 3, 3))
        for C in (ref.centralize_axis0, lambda x: ref.centralize_transposed(x, 3)):
            once = C(g)
            np.testing.assert_allclose(C(once), once, rtol=0, atol=1e-15)
            self.assertLessEqual(np.linalg.norm(once), np.linalg.norm(g))

    def test_grouped_transposed_conv_zero_mean_over_output_fan_in(self):
        rng = np.random.default_rng(3)
        cin, opg, groups, kh, kw = 6, 2, 3, 3, 2
        g = rng.standard_normal((cin, opg, kh, kw))
        out = ref.centralize_transposed(g, groups)
        ipg = cin // groups
        for grp in range(groups):
            for j in range(opg):
                rows = slice(grp * ipg, (grp + 1) * ipg)
                fan_in = g[rows, j]  # (ipg, kh, kw): output channel grp*opg + j
                self.assertEqual(fan_in.size, ipg * kh * kw)
                self.assertLess(abs(out[rows, j].sum()), 1e-12)
                np.testing.assert_allclose(out[rows, j], fan_in - fan_in.mean(), rtol=0, atol=1e-15)
        # The seed's rank rule centralizes the same tensor per INPUT channel instead.
        seed = ref.centralize_axis0(g)
        for i in range(cin):
            self.assertLess(abs(seed[i].sum()), 1e-12)
        self.assertFalse(np.allclose(seed, out))

    def test_fan_in_one_left_unchanged(self):
        g = np.array([[0.5], [-1.0], [2.0]])
        np.testing.assert_array_equal(ref.centralize_axis0(g), g)
        t = np.arange(4.0).reshape(2, 2, 1)  # transposed conv, groups 2: in/groups = 1, kernel 1
        np.testing.assert_array_equal(ref.centralize_transposed(t, 2), t)

    def test_rule_tables(self):
        def on(kind, shape, rule, variant, groups=1):
            return ref.make_centralizer(kind, tuple(shape), groups, rule, variant) is not None
        # layer rule
        for kind, shape in [("conv1d", (5, 2, 3)), ("conv2d", (4, 3, 3, 3)), ("conv_transpose1d", (4, 3, 5)),
                            ("conv_transpose2d", (4, 3, 2, 2))]:
            self.assertTrue(on(kind, shape, "layer", "gc"))
            self.assertTrue(on(kind, shape, "layer", "gcc"))
        self.assertTrue(on("linear", (6, 7), "layer", "gc"))
        self.assertFalse(on("linear", (6, 7), "layer", "gcc"))
        for kind, shape in [("embedding", (5, 3)), ("bias", (6,)), ("norm", (4,))]:
            self.assertFalse(on(kind, shape, "layer", "gc"))
            self.assertFalse(on(kind, shape, "layer", "gcc"))
        # rank_rule: rank only
        self.assertTrue(on("embedding", (5, 3), "rank_rule", "gc"))
        self.assertTrue(on("linear", (6, 7), "rank_rule", "gc"))
        self.assertFalse(on("conv1d", (5, 2, 3), "rank_rule", "gcc"))
        self.assertTrue(on("conv_transpose2d", (4, 3, 2, 2), "rank_rule", "gcc"))
        self.assertFalse(on("bias", (6,), "rank_rule", "gc"))


class Invariants(unittest.TestCase):
    def check_mean_invariant(self, optimizer, rule, hyper, expect_constant=True, param_set=gen.PARAM_SET,
                             long=False):
        variant = ref.OPTIMIZERS[optimizer][1]
        if long:
            params = gen.make_params(param_set, gen.LONG_SEED, gen.LONG_N_STEPS)
        else:
            params = gen.make_params(param_set)
        out = ref.run_trace(doc(optimizer, params, rule, **hyper))
        checked = 0
        broken = 0
        for p in params:
            w0 = np.array(p["value"])
            for unit in centralized_units(p, rule, variant):
                m0 = w0[unit].mean()
                for step in out["steps"]:
                    m = np.array(step[p["name"]])[unit].mean()
                    checked += 1
                    if abs(m - m0) > 1e-12:
                        broken += 1
        self.assertGreater(checked, 0)
        if expect_constant:
            self.assertEqual(broken, 0, f"{optimizer}/{rule}: {broken} of {checked} unit means moved")
        else:
            self.assertGreater(broken, 0, f"{optimizer}/{rule}: unit means unexpectedly constant")

    def test_sgd_gc_keeps_unit_weight_means(self):
        for rule in ref.RULES:
            for hyper in (gen.SGD_HYPER, dict(gen.SGD_HYPER, nesterov=True), dict(gen.SGD_HYPER, momentum=0.0)):
                with self.subTest(rule=rule, hyper=hyper):
                    self.check_mean_invariant("sgd_gc", rule, hyper)
                    self.check_mean_invariant("sgd_gcc", rule, hyper)

    def test_gc2_keeps_unit_weight_means(self):
        for rule in ref.RULES:
            for opt in ("adam_gc2", "adam_gcc2", "adamw_gc2", "adamw_gcc2"):
                with self.subTest(rule=rule, optimizer=opt):
                    self.check_mean_invariant(opt, rule, gen.ADAM_HYPER)
            self.check_mean_invariant("adam_gc2", rule, gen.ADAM_AMSGRAD_HYPER)

    def test_lr_schedule_keeps_unit_weight_means(self):
        # A per-step lr scales each step's (centralized) update: the means still never move.
        sched = gen.LR_SCHEDULE_PARAM_SET
        for rule in ref.RULES:
            for opt in ("sgd_gc", "sgd_gcc"):
                for hyper in (dict(gen.SGD_HYPER, lr=gen.SGD_LR_SCHEDULE),
                              dict(gen.SGD_HYPER, lr=gen.SGD_LR_SCHEDULE, nesterov=True)):
                    with self.subTest(rule=rule, optimizer=opt, hyper=hyper):
                        self.check_mean_invariant(opt, rule, hyper, param_set=sched)
            for opt in ("adam_gc2", "adamw_gcc2"):
                with self.subTest(rule=rule, optimizer=opt):
                    self.check_mean_invariant(opt, rule, dict(gen.ADAM_HYPER, lr=gen.ADAM_LR_SCHEDULE),
                                              param_set=sched)
        for opt, hyper in (("adam_gc", dict(gen.ADAM_HYPER, lr=gen.ADAM_LR_SCHEDULE)),
                           ("adagrad_gcc", gen.ADAGRAD_LR_SCHEDULE_HYPER),
                           ("sgdw_gcc", dict(gen.SGD_HYPER, lr=gen.SGD_LR_SCHEDULE))):
            with self.subTest(optimizer=opt):
                self.check_mean_invariant(opt, "layer", hyper, expect_constant=False, param_set=sched)

    def test_radam_ranger_lookahead_keep_unit_weight_means(self):
        # GC on the update (_gc2): every step moves a unit by a centralized vector; Lookahead's slow weights
        # (the initial weights for Ranger, those after step 1 for the wrapper) and the interpolation
        # between them keep the means too.
        for rule in ref.RULES:
            for opt in ("radam_gc2", "radam_gcc2", "ranger_gc2", "ranger_gcc2", "lookahead_radam_gc2",
                        "lookahead_sgd_gc", "lookahead_adam_gc2"):
                hyper = gen.ALL_FAMILY_HYPER[ref.OPTIMIZERS[opt][0]]
                for h in (hyper, dict(hyper, seed_buffer_aliasing=True) if "seed_buffer_aliasing" in hyper
                          else hyper):
                    with self.subTest(rule=rule, optimizer=opt, hyper=h):
                        self.check_mean_invariant(opt, rule, h, long=True)
        # GC on the gradient: the rectified steps divide the centralized m by sqrt(v) elementwise.
        for opt in ("radam_gc", "ranger_gc"):
            hyper = dict(gen.ALL_FAMILY_HYPER[ref.OPTIMIZERS[opt][0]], weight_decay=0.0)
            with self.subTest(optimizer=opt):
                self.check_mean_invariant(opt, "layer", hyper, expect_constant=False, long=True)

    def test_invariant_fails_where_the_spec_says(self):
        for opt, hyper in (("adam_gc", gen.ADAM_HYPER), ("adamw_gc", gen.ADAM_HYPER),
                           ("adagrad_gc", gen.ADAGRAD_HYPER), ("sgdw_gc", gen.SGD_HYPER)):
            with self.subTest(optimizer=opt):
                self.check_mean_invariant(opt, "layer", hyper, expect_constant=False)


class HandRolled(unittest.TestCase):
    """Each family against a plain-Python loop over one scalar-per-element list."""

    def setUp(self):
        rng = np.random.default_rng(4)
        self.p = param("fc.bias", "bias", (5,), rng)  # never centralized: pure optimizer arithmetic
        self.w0 = list(self.p["value"])
        self.grads = self.p["grads"]

    def run_ref(self, optimizer, **hyper):
        out = ref.run_trace(doc(optimizer, [copy.deepcopy(self.p)], **hyper))
        return [s["fc.bias"] for s in out["steps"]]

    def assert_steps(self, got, want):
        self.assertEqual(len(got), len(want))
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)

    LR_SCHEDULE = [0.05, 0.2, 0.1, 0.02, 0.3]  # one lr per step (5 steps), non-monotone

    def test_sgd_momentum(self):
        mu, damp, wd = 0.9, 0.1, 0.01
        for lr in (0.1, self.LR_SCHEDULE):
            for nesterov, dampening in ((False, damp), (True, 0.0)):
                w, buf, want = list(self.w0), None, []
                for t, g in enumerate(self.grads, 1):
                    d = [gi + wd * wi for gi, wi in zip(g, w)]
                    if t == 1:
                        buf = list(d)
                    else:
                        buf = [mu * b + (1 - dampening) * di for b, di in zip(buf, d)]
                    upd = [di + mu * b for di, b in zip(d, buf)] if nesterov else buf
                    w = [wi - lr_at(lr, t) * u for wi, u in zip(w, upd)]
                    want.append(w)
                with self.subTest(lr=lr, nesterov=nesterov):
                    got = self.run_ref("sgd", lr=lr, momentum=mu, dampening=dampening, nesterov=nesterov,
                                       weight_decay=wd)
                    self.assert_steps(got, want)

    def test_sgdw_decays_pre_update_weights(self):
        mu, wd = 0.9, 0.01
        for lr in (0.1, self.LR_SCHEDULE):
            w, buf, want = list(self.w0), None, []
            for t, g in enumerate(self.grads, 1):
                a = lr_at(lr, t)  # the decay uses this step's lr too
                buf = list(g) if t == 1 else [mu * b + gi for b, gi in zip(buf, g)]
                w = [wi - a * b - wd * a * wi for wi, b in zip(w, buf)]
                want.append(w)
            with self.subTest(lr=lr):
                self.assert_steps(self.run_ref("sgdw", lr=lr, momentum=mu, weight_decay=wd), want)

    def adam_loop(self, kind, lr, b1, b2, eps, wd, amsgrad):
        w = list(self.w0)
        m = [0.0] * len(w)
        v = [0.0] * len(w)
        vmax = [0.0] * len(w)
        want = []
        schedule = lr
        for t, g in enumerate(self.grads, 1):
            lr = lr_at(schedule, t)
            if kind == "adam":
                g = [gi + wd * wi for gi, wi in zip(g, w)]
            if kind == "adamw_torch":
                w = [wi * (1 - lr * wd) for wi in w]
            m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
            v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
            vmax = [max(a, b) for a, b in zip(vmax, v)]
            vv = vmax if amsgrad else v
            bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
            if kind == "adamw":  # the seed's AdamW
                step = lr * math.sqrt(bc2) / bc1
                w = [wi - step * (wd * wi + mi / (math.sqrt(vi) + eps)) for wi, mi, vi in zip(w, m, vv)]
            else:
                w = [wi - lr / bc1 * mi / (math.sqrt(vi) / math.sqrt(bc2) + eps) for wi, mi, vi in zip(w, m, vv)]
            want.append(w)
        return want

    def test_adam_family(self):
        for kind in ("adam", "adamw", "adamw_torch"):
            for amsgrad in (False, True):
                for lr in (0.01, [x / 10 for x in self.LR_SCHEDULE]):
                    with self.subTest(kind=kind, amsgrad=amsgrad, lr=lr):
                        want = self.adam_loop(kind, lr, 0.9, 0.6, 1e-8, 0.01, amsgrad)
                        got = self.run_ref(kind, lr=lr, betas=[0.9, 0.6], eps=1e-8, weight_decay=0.01,
                                           amsgrad=amsgrad)
                        self.assert_steps(got, want)

    def test_adagrad(self):
        init, wd = 0.1, 0.01
        for lr, lr_decay, eps in ((0.1, 0.01, 1e-10), (self.LR_SCHEDULE, 0.05, 1e-6)):
            w, s, want = list(self.w0), [init] * len(self.w0), []
            for t, g in enumerate(self.grads, 1):
                g = [gi + wd * wi for gi, wi in zip(g, w)]
                clr = lr_at(lr, t) / (1 + (t - 1) * lr_decay)  # this step's lr, decayed by t
                s = [si + gi * gi for si, gi in zip(s, g)]
                w = [wi - clr * gi / (math.sqrt(si) + eps) for wi, gi, si in zip(w, g, s)]
                want.append(w)
            with self.subTest(lr=lr):
                got = self.run_ref("adagrad", lr=lr, lr_decay=lr_decay, initial_accumulator_value=init,
                                   weight_decay=wd, eps=eps)
                self.assert_steps(got, want)

    def test_defaults(self):
        # Adam with all defaults == explicit torch defaults; adamw_torch's default decay is 1e-2.
        self.assert_steps(self.run_ref("adam"), self.adam_loop("adam", 1e-3, 0.9, 0.999, 1e-8, 0.0, False))
        self.assert_steps(self.run_ref("adamw_torch"),
                          self.adam_loop("adamw_torch", 1e-3, 0.9, 0.999, 1e-8, 1e-2, False))
        self.assert_steps(self.run_ref("adamw"), self.adam_loop("adamw", 1e-3, 0.9, 0.999, 1e-8, 0.0, False))

    def test_sgd_gc_on_linear_matches_manual(self):
        rng = np.random.default_rng(5)
        p = param("fc.weight", "linear", (3, 4), rng, steps=3)
        lr, mu, wd = 0.1, 0.9, 0.01
        w = np.array(p["value"]).reshape(3, 4)
        buf = None
        out = ref.run_trace(doc("SGD_GC", [p], lr=lr, momentum=mu, weight_decay=wd))
        self.assertEqual(out["optimizer"], "sgd_gc")
        for t, g in enumerate(p["grads"], 1):
            d = np.array(g).reshape(3, 4) + wd * w
            d = d - d.mean(axis=1, keepdims=True)
            buf = d.copy() if t == 1 else mu * buf + d
            w = w - lr * buf
            np.testing.assert_allclose(out["steps"][t - 1]["fc.weight"], w.ravel(), rtol=1e-14, atol=1e-15)


class LrSchedule(unittest.TestCase):
    """hyper.lr as a list: one lr per gradient step, step k using lr[k]."""

    FAMILY_HYPER = dict(gen.ALL_FAMILY_HYPER, adagrad=dict(gen.ADAGRAD_HYPER, lr_decay=0.05),
                        lookahead_adagrad=dict(gen.ADAGRAD_HYPER, lr_decay=0.05, **gen.LOOKAHEAD_HYPER))

    def test_constant_schedule_equals_scalar_lr(self):
        params = gen.make_params(gen.LR_SCHEDULE_PARAM_SET)
        for name, (family, variant, _loc) in ref.OPTIMIZERS.items():
            for rule in (ref.RULES if variant else ("layer",)):
                for hyper in (self.FAMILY_HYPER[family], dict(gen.ADAM_AMSGRAD_HYPER, lr=3e-3)
                              if family.startswith("adam") else dict(self.FAMILY_HYPER[family], lr=0.37)):
                    with self.subTest(optimizer=name, rule=rule, hyper=hyper):
                        lr = hyper["lr"]
                        scalar = ref.run_trace(doc(name, params, rule, **hyper))
                        listed = ref.run_trace(doc(name, params, rule, **dict(hyper, lr=[lr] * gen.N_STEPS)))
                        self.assertEqual(listed, scalar)  # bit for bit

    def test_constant_schedule_equals_scalar_lr_over_eight_steps(self):
        # RAdam, Ranger and Lookahead on the 8-step draw: both RAdam branches and the syncs.
        params = gen.make_params(gen.PARAM_SET, gen.LONG_SEED, gen.LONG_N_STEPS)
        for name in ("radam_gc", "radam_gcc2", "ranger", "ranger_gc2", "lookahead_sgd_gc",
                     "lookahead_radam_gc2"):
            hyper = self.FAMILY_HYPER[ref.OPTIMIZERS[name][0]]
            aliased = dict(hyper, seed_buffer_aliasing=True) if "seed_buffer_aliasing" in hyper else hyper
            for h in (hyper, aliased):
                with self.subTest(optimizer=name, hyper=h):
                    scalar = ref.run_trace(doc(name, params, **h))
                    listed = ref.run_trace(doc(name, params, **dict(h, lr=[h["lr"]] * gen.LONG_N_STEPS)))
                    self.assertEqual(listed, scalar)

    def test_one_step_schedule_equals_scalar(self):
        params = gen.make_params(gen.LR_SCHEDULE_PARAM_SET)
        for p in params:
            p["grads"] = p["grads"][:1]
        for name, (family, _variant, _loc) in ref.OPTIMIZERS.items():
            hyper = self.FAMILY_HYPER[family]
            for a in (0.0, 0.03, hyper["lr"]):
                with self.subTest(optimizer=name, lr=a):
                    scalar = ref.run_trace(doc(name, params, **dict(hyper, lr=a)))
                    listed = ref.run_trace(doc(name, params, **dict(hyper, lr=[a])))
                    self.assertEqual(len(listed["steps"]), 1)
                    self.assertEqual(listed, scalar)

    def test_steps_of_a_schedule_are_scalar_runs_chained(self):
        # Step k of a schedule run == one scalar-lr step k from the schedule run's state only where no
        # state is carried (SGD without momentum): then each step is w - lr[k]*C(g + wd*w).
        params = gen.make_params(gen.LR_SCHEDULE_PARAM_SET)
        hyper = dict(gen.SGD_HYPER, momentum=0.0)
        sched = gen.SGD_LR_SCHEDULE
        out = ref.run_trace(doc("sgd_gc", copy.deepcopy(params), **dict(hyper, lr=sched)))
        cur = copy.deepcopy(params)
        for k, a in enumerate(sched):
            step = copy.deepcopy(cur)
            for p, q in zip(step, params):
                p["grads"] = [q["grads"][k]]
            one = ref.run_trace(doc("sgd_gc", step, **dict(hyper, lr=a)))["steps"][0]
            self.assertEqual(one, out["steps"][k])
            for p in cur:
                p["value"] = one[p["name"]]

    def test_two_step_sgd_momentum_by_hand(self):
        # w0 = [1, -2], g1 = [0.5, 0.25], g2 = [-1, 0.5], mu = 0.9, lr = [0.5, 0.25], no decay.
        # t=1: buf = g1 = [0.5, 0.25];                    w1 = w0 - 0.5*buf  = [0.75, -2.125]
        # t=2: buf = 0.9*buf + g2 = [-0.55, 0.725];       w2 = w1 - 0.25*buf = [0.8875, -2.30625]
        p = {"name": "b", "kind": "bias", "shape": [2], "value": [1.0, -2.0],
             "grads": [[0.5, 0.25], [-1.0, 0.5]]}
        out = ref.run_trace(doc("sgd", [p], lr=[0.5, 0.25], momentum=0.9))
        np.testing.assert_allclose(out["steps"][0]["b"], [0.75, -2.125], rtol=0, atol=1e-15)
        np.testing.assert_allclose(out["steps"][1]["b"], [0.8875, -2.30625], rtol=0, atol=1e-15)
        # The same with the lrs swapped differs: lr is applied to the buffer of its own step.
        swapped = ref.run_trace(doc("sgd", [p], lr=[0.25, 0.5], momentum=0.9))
        np.testing.assert_allclose(swapped["steps"][1]["b"], [0.875 + 0.275, -2.0625 - 0.3625], rtol=0,
                                   atol=1e-15)

    def test_two_step_sgd_gc_on_linear_head_by_hand(self):
        # Linear(3, 1): weight [1, 3], one output unit with fan-in 3, centralized over its 3 inputs.
        # g1 = [1, 2, 3] -> C = [-1, 0, 1]; g2 = [3, 0, 0] -> C = [2, -1, -1]; mu = 0.9, lr = [0.5, 0.25].
        # t=1: buf = [-1, 0, 1];                w1 = [0.5, 0, -0.5]
        # t=2: buf = 0.9*buf + C(g2) = [1.1, -1, -0.1];  w2 = w1 - 0.25*buf = [0.225, 0.25, -0.475]
        p = {"name": "head.weight", "kind": "linear", "shape": [1, 3], "value": [0.0, 0.0, 0.0],
             "grads": [[1.0, 2.0, 3.0], [3.0, 0.0, 0.0]]}
        for rule in ref.RULES:
            out = ref.run_trace(doc("sgd_gc", [p], rule, lr=[0.5, 0.25], momentum=0.9))
            np.testing.assert_allclose(out["steps"][0]["head.weight"], [0.5, 0.0, -0.5], rtol=0, atol=1e-15)
            np.testing.assert_allclose(out["steps"][1]["head.weight"], [0.225, 0.25, -0.475], rtol=0,
                                       atol=1e-15)
        # _gcc does not centralize linear under the layer rule: plain momentum SGD.
        out = ref.run_trace(doc("sgd_gcc", [p], lr=[0.5, 0.25], momentum=0.9))
        np.testing.assert_allclose(out["steps"][1]["head.weight"], [-0.5 - 0.25 * 3.9, -1.0 - 0.25 * 1.8,
                                                                    -1.5 - 0.25 * 2.7], rtol=0, atol=1e-15)

    def test_adam_bias_correction_and_adagrad_decay_use_t_not_the_lr_index(self):
        # Adam, step 2 with lr [0, a]: step 1 moves nothing, but m, v and t still advance, so step 2 is
        # w0 - (a/(1-b1^2)) * m2/(sqrt(v2)/sqrt(1-b2^2) + eps).
        p = {"name": "b", "kind": "bias", "shape": [1], "value": [0.5], "grads": [[0.2], [-0.1]]}
        a, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
        out = ref.run_trace(doc("adam", [p], lr=[0.0, a]))
        self.assertEqual(out["steps"][0]["b"], [0.5])
        m = b1 * (1 - b1) * 0.2 + (1 - b1) * -0.1
        v = b2 * (1 - b2) * 0.04 + (1 - b2) * 0.01
        want = 0.5 - (a / (1 - b1 ** 2)) * m / (math.sqrt(v) / math.sqrt(1 - b2 ** 2) + eps)
        self.assertAlmostEqual(out["steps"][1]["b"][0], want, delta=1e-16)
        # Adagrad with lr [0, a], lr_decay d: clr at step 2 is a/(1 + d), sum = init + 0.04 + 0.01.
        d, init = 0.5, 0.1
        out = ref.run_trace(doc("adagrad", [p], lr=[0.0, a], lr_decay=d, initial_accumulator_value=init))
        self.assertEqual(out["steps"][0]["b"], [0.5])
        want = 0.5 - a / (1 + d) * -0.1 / (math.sqrt(init + 0.04 + 0.01) + 1e-10)
        self.assertAlmostEqual(out["steps"][1]["b"][0], want, delta=1e-16)
        # adamw_torch: the decay w*(1 - lr*wd) uses the current step's lr (none at step 1).
        out = ref.run_trace(doc("adamw_torch", [p], lr=[0.0, a], weight_decay=0.5))
        self.assertEqual(out["steps"][0]["b"], [0.5])
        want = 0.5 * (1 - a * 0.5) - (a / (1 - b1 ** 2)) * m / (math.sqrt(v) / math.sqrt(1 - b2 ** 2) + eps)
        self.assertAlmostEqual(out["steps"][1]["b"][0], want, delta=1e-16)

    def test_new_param_kinds_in_the_schedule_set(self):
        shapes = {name: (kind, tuple(shape), groups) for name, kind, shape, groups in gen.LR_SCHEDULE_PARAM_SET}
        # Linear(8, 1) head: one unit of fan-in 8 under both rules for _gc; layer rule _gcc leaves it.
        kind, shape, groups = shapes["head.weight"]
        self.assertEqual(shape[0], 1)
        self.assertGreaterEqual(shape[1], 5)
        for rule in ref.RULES:
            units = ref.output_unit_slices(kind, shape, groups, rule)
            self.assertEqual([u.size for u in units], [shape[1]])
            self.assertIsNotNone(ref.make_centralizer(kind, shape, groups, rule, "gc"))
        self.assertIsNone(ref.make_centralizer(kind, shape, groups, "layer", "gcc"))
        g = np.arange(8.0).reshape(1, 8)
        np.testing.assert_array_equal(ref.make_centralizer(kind, shape, groups, "layer", "gc")(g), g - 3.5)
        # Grouped transposed conv (4, 3, 2, 2), groups 2: 6 output channels, each over 2 rows x 4 taps.
        kind, shape, groups = shapes["upg2.weight"]
        self.assertEqual((kind, shape, groups), ("conv_transpose2d", (4, 3, 2, 2), 2))
        units = ref.output_unit_slices(kind, shape, groups, "layer")
        self.assertEqual([u.size for u in units], [8] * 6)
        self.assertEqual(shapes["upg2.bias"], ("bias", (6,), 1))
        # Odd conv2d (3, 5, 3, 1): 3 filters over 15.
        kind, shape, groups = shapes["convodd.weight"]
        self.assertEqual([u.size for u in ref.output_unit_slices(kind, shape, groups, "layer")], [15] * 3)

    def test_schedule_errors(self):
        p = param("fc.weight", "linear", (2, 3), np.random.default_rng(8), steps=3)

        def err(d, fragment):
            with self.assertRaises(ValueError) as cm:
                ref.run_trace(d)
            self.assertIn(fragment, str(cm.exception))

        err(doc("sgd", [p], lr=[0.1, 0.2]), "$.hyper.lr: a learning-rate schedule needs one lr per")
        err(doc("sgd", [p], lr=[0.1, 0.2, 0.3, 0.4]), "$.hyper.lr")
        err(doc("adam", [p], lr=[]), "$.hyper.lr")
        err(doc("sgd", [p], lr=[0.1, -0.2, 0.3]), "$.hyper.lr[1]")
        err(doc("adagrad", [p], lr=[0.1, "0.2", 0.3]), "$.hyper.lr[1]")
        err(doc("adam", [p], lr=[0.1, True, 0.3]), "$.hyper.lr[1]")
        err(doc("adam", [p], lr=[[0.1], 0.2, 0.3]), "$.hyper.lr[0]")
        err(doc("adam", [p], lr={"0": 0.1}), "$.hyper.lr")
        with self.assertRaises(ValueError):
            ref.run_trace(ref.loads('{"optimizer": "sgd", "hyper": {"lr": [0.1, NaN]}, "params": []}'))
        # Integers are numbers; a schedule of zero steps for zero params is fine.
        self.assertEqual(len(ref.run_trace(doc("sgd", [p], lr=[1, 0, 2]))["steps"]), 3)
        self.assertEqual(ref.run_trace(doc("sgd", [], lr=[])), {"optimizer": "sgd", "steps": []})

    def test_cli_accepts_a_schedule(self):
        p = param("fc.weight", "linear", (2, 3), np.random.default_rng(9), steps=2)
        script = os.path.join(HERE, "gc_reference.py")
        good = json.dumps(doc("adamw_gc", [p], lr=[0.01, 0.001], weight_decay=0.1))
        r = subprocess.run([sys.executable, script, "-"], input=good, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), ref.run_trace(json.loads(good)))
        bad = json.dumps(doc("adamw_gc", [p], lr=[0.01]))
        r = subprocess.run([sys.executable, script, "-"], input=bad, capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertIn("error: $.hyper.lr:", r.stderr)


def long_params():
    """The RAdam/Ranger/Lookahead fixtures' 8-step draw."""
    return gen.make_params(gen.PARAM_SET, gen.LONG_SEED, gen.LONG_N_STEPS)


def exact_rho_five():
    """(b2, t): a beta2 whose rho_t is exactly 5.0 in float64, found by bisection and a scan of the floats
    around the root (there is one for t = 6 near b2 = 0.83977); None if this platform's pow gives none."""
    for t in range(6, 12):
        lo, hi = 0.0, 0.999999
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if ref.radam_rho(mid, t)[0] < 5.0 else (lo, mid)
        for i in range(-64, 65):
            b2 = float(lo + i * np.spacing(lo))
            if ref.radam_rho(b2, t)[0] == 5.0:
                return b2, t
    return None


class RAdamRanger(unittest.TestCase):
    """The seed's RAdam.py and Ranger.py."""

    def test_rho_for_the_fixture_betas(self):
        # beta2 = 0.9: rho_inf = 2/(1-0.9) - 1 = 19; rho_t = 19 - 2t*0.9^t/(1-0.9^t):
        # t=1: 19 - 2*0.9/0.1 = 1;  t=2: 19 - 4*0.81/0.19 = 1.947;  t=3: 19 - 6*0.729/0.271 = 2.860;
        # t=4: 3.737;  t=5: 19 - 10*0.59049/0.40951 = 4.581;  t=6: 19 - 12*0.531441/0.468559 = 5.390;
        # t=7: 6.165;  t=8: 6.907. So steps 1-5 unrectified, 6-8 rectified, under >= 5 and > 5 alike.
        want = [1.0, 1.947, 2.860, 3.737, 4.581, 5.390, 6.165, 6.907]
        rhos = [ref.radam_rho(0.9, t)[0] for t in range(1, 9)]
        np.testing.assert_allclose(rhos, want, rtol=0, atol=5e-4)
        self.assertAlmostEqual(ref.radam_rho(0.9, 1)[1], 19.0, delta=1e-13)
        self.assertAlmostEqual(rhos[1], 3.7 / 1.9, delta=1e-14)  # rho_2 = (1 + 3 b2)/(1 + b2)
        self.assertEqual(gen.LONG_BETAS[1], 0.9)
        for family in ("radam", "ranger"):
            self.assertEqual([ref.radam_rectified(family, r) for r in rhos], [False] * 5 + [True] * 3)
        self.assertEqual(gen.RECTIFIED_FROM, 6)
        # rho_t < t whatever beta2, so no optimizer rectifies steps 1-5 (rho_1 = 1 exactly in theory).
        for b2 in (0.0, 0.5, 0.9, 0.99, 0.999, 0.9999):
            for t in range(1, 30):
                self.assertLess(ref.radam_rho(b2, t)[0], t + 1e-9)
        # The seed's default beta2 = 0.999: rho_5 = 4.996, rho_6 = 5.994.
        self.assertLess(ref.radam_rho(0.999, 5)[0], 5.0)
        self.assertGreater(ref.radam_rho(0.999, 6)[0], 5.0)

    def test_threshold_rho_exactly_five(self):
        found = exact_rho_five()
        if found is None:
            self.skipTest("no beta2 with rho_t == 5.0 exactly on this platform")
        b2, t = found
        self.assertTrue(ref.radam_rectified("radam", 5.0))
        self.assertFalse(ref.radam_rectified("ranger", 5.0))
        rng = np.random.default_rng(10)
        p = param("fc.weight", "linear", (3, 4), rng, steps=t)
        hyper = dict(lr=0.01, betas=[0.9, b2], eps=1e-8, weight_decay=0.01)
        radam = ref.run_trace(doc("radam", [p], **hyper))["steps"]
        ranger = ref.run_trace(doc("ranger", [p], **dict(hyper, k=t + 1)))["steps"]
        self.assertEqual(radam[:t - 1], ranger[:t - 1])  # both unrectified before step t
        self.assertNotEqual(radam[t - 1], ranger[t - 1])  # step t: RAdam rectifies (>=), Ranger not (>)
        # RAdam's step t by hand from step t-1's state: rho = 5, so
        # r = sqrt((1-b2^t)*(5-4)/(rho_inf-4)*(5-2)/5*rho_inf/(rho_inf-2)) / (1-b1^t).
        rho_inf = 2 / (1 - b2) - 1
        r = math.sqrt((1 - b2 ** t) * 1 / (rho_inf - 4) * 3 / 5 * rho_inf / (rho_inf - 2)) / (1 - 0.9 ** t)
        w, m, v = np.array(p["value"]), 0.0, 0.0
        for s, g in enumerate(p["grads"], 1):
            g = np.array(g)
            m, v = 0.9 * m + 0.1 * g, b2 * v + (1 - b2) * g * g
            if s < t:
                w = w - (0.01 / (1 - 0.9 ** s)) * (m + 0.01 * w)
        w = w - (r * 0.01) * (m / (np.sqrt(v) + 1e-8) + 0.01 * w)
        np.testing.assert_allclose(radam[t - 1]["fc.weight"], w, rtol=1e-13, atol=1e-15)

    def test_constant_gradient_by_hand(self):
        # One element, w0 = 1, g = 0.5 every step, lr 0.1, betas (0.9, 0.9), eps 0, no decay.
        # m_t = 0.5*(1-0.9^t), v_t = 0.25*(1-0.9^t).
        # Unrectified (t <= 5): r*m = m/(1-0.9^t) = 0.5, so w_t = 1 - 0.05*t: 0.95, 0.90, 0.85, 0.80, 0.75.
        # Rectified (t = 6, 7): u = m/sqrt(v) = sqrt(1-0.9^t) and r = sqrt((1-0.9^t)*X_t)/(1-0.9^t), so
        # r*u = sqrt(X_t), X_t = (rho-4)/(19-4)*(rho-2)/rho*19/(19-2):
        # t=6: rho = 5.389565, X = 1.389565/15 * 3.389565/5.389565 * 19/17 = 0.0651152, sqrt 0.2551768;
        #      w6 = 0.75 - 0.1*0.2551768 = 0.72448232
        # t=7: rho = 6.164813, X = 0.1089706, sqrt 0.3301070;  w7 = w6 - 0.0330107 = 0.69147162.
        # Ranger (rho > 5: the same branches) with k = 3, alpha 0.5 and slow weights from w0 = 1:
        # t=3: fast 0.85 -> slow = 1 + 0.5*(0.85 - 1) = 0.925, w3 = 0.925; w4 = 0.875, w5 = 0.825,
        # t=6: fast 0.825 - 0.02551768 = 0.79948232 -> slow = 0.925 + 0.5*(0.79948232 - 0.925)
        #      = 0.86224116, w6 = 0.86224116;  t=7: w7 = 0.86224116 - 0.0330107 = 0.82923046.
        p = {"name": "b", "kind": "bias", "shape": [1], "value": [1.0], "grads": [[0.5]] * 7}
        hyper = dict(lr=0.1, betas=[0.9, 0.9], eps=0.0)
        got = [s["b"][0] for s in ref.run_trace(doc("radam", [p], **hyper))["steps"]]
        np.testing.assert_allclose(got, [0.95, 0.90, 0.85, 0.80, 0.75, 0.72448232, 0.69147162], rtol=0,
                                   atol=5e-9)
        exact6 = 0.75 - 0.1 * math.sqrt(1.389564601256193 / 15 * 3.389564601256193 / 5.389564601256193
                                        * 19 / 17)
        self.assertAlmostEqual(got[5], exact6, delta=1e-13)
        got = [s["b"][0] for s in ref.run_trace(doc("ranger", [p], **dict(hyper, k=3, alpha=0.5)))["steps"]]
        np.testing.assert_allclose(got, [0.95, 0.90, 0.925, 0.875, 0.825, 0.86224116, 0.82923046], rtol=0,
                                   atol=5e-9)

    # 2x2 linear weight, two unrectified steps: betas (0.5, 0.5) give rho_inf = 3 < 5 (never rectified),
    # r_1 = 1/(1-0.5) = 2, r_2 = 1/(1-0.25) = 4/3; lr 0.1, decay 0.1; g2 = 0.
    W0 = [1.0, 2.0, 3.0, 5.0]
    G1 = [0.2, 0.4, -0.2, 0.6]
    HYPER_2X2 = dict(lr=0.1, betas=[0.5, 0.5], weight_decay=0.1)

    def run_2x2(self, name, **extra):
        p = {"name": "w", "kind": "linear", "shape": [2, 2], "value": self.W0, "grads": [self.G1, [0.0] * 4]}
        return [s["w"] for s in ref.run_trace(doc(name, [p], **dict(self.HYPER_2X2, **extra)))["steps"]]

    def test_radam_gc_by_hand(self):
        # GC on the gradient. C(g1) = [[-0.1, 0.1], [-0.4, 0.4]] (row means 0.3, 0.2); m1 = 0.5*C(g1);
        # u1 = m1 + 0.1*w0 = [[0.05, 0.25], [0.1, 0.7]]; w1 = w0 - 2*0.1*u1 = [[0.99, 1.95], [2.98, 4.86]].
        # t=2: m2 = 0.5*m1 = [[-0.025, 0.025], [-0.1, 0.1]];
        #      u2 = m2 + 0.1*w1 = [[0.074, 0.22], [0.198, 0.586]]; w2 = w1 - (0.4/3)*u2.
        # seed_buffer_aliasing: the decay went into the stored m, m1 = u1; m2 = 0.5*u1 = [[0.025, 0.125],
        #      [0.05, 0.35]]; u2 = [[0.124, 0.32], [0.348, 0.836]]; w2 = w1 - (0.4/3)*u2.
        w1 = [0.99, 1.95, 2.98, 4.86]
        got = self.run_2x2("radam_gc")
        np.testing.assert_allclose(got[0], w1, rtol=0, atol=1e-15)
        np.testing.assert_allclose(got[1], np.array(w1) - 0.4 / 3 * np.array([0.074, 0.22, 0.198, 0.586]),
                                   rtol=0, atol=1e-15)
        got = self.run_2x2("radam_gc", seed_buffer_aliasing=True)
        np.testing.assert_allclose(got[0], w1, rtol=0, atol=1e-15)
        np.testing.assert_allclose(got[1], np.array(w1) - 0.4 / 3 * np.array([0.124, 0.32, 0.348, 0.836]),
                                   rtol=0, atol=1e-15)

    def test_radam_gc2_by_hand(self):
        # GC on the update. m1 = 0.5*g1 = [[0.1, 0.2], [-0.1, 0.3]];
        #      u1 = m1 + 0.1*w0 = [[0.2, 0.4], [0.2, 0.8]]; C(u1) = [[-0.1, 0.1], [-0.3, 0.3]];
        #      w1 = w0 - 0.2*C(u1) = [[1.02, 1.98], [3.06, 4.94]].
        # t=2: m2 = 0.5*m1 = [[0.05, 0.1], [-0.05, 0.15]];
        #      u2 = m2 + 0.1*w1 = [[0.152, 0.298], [0.256, 0.644]] (row means 0.225, 0.45);
        #      C(u2) = [[-0.073, 0.073], [-0.194, 0.194]]; w2 = w1 - (0.4/3)*C(u2).
        # seed_buffer_aliasing: m1 = C(u1); m2 = [[-0.05, 0.05], [-0.15, 0.15]];
        #      u2 = [[0.052, 0.248], [0.156, 0.644]]; C(u2) = [[-0.098, 0.098], [-0.244, 0.244]].
        # Ranger_GC2 with k = 2, alpha 0.5: step 1 as RAdam; after step 2 the weights are (w0 + w2)/2.
        w1 = np.array([1.02, 1.98, 3.06, 4.94])
        w2 = w1 - 0.4 / 3 * np.array([-0.073, 0.073, -0.194, 0.194])
        w2_aliased = w1 - 0.4 / 3 * np.array([-0.098, 0.098, -0.244, 0.244])
        got = self.run_2x2("radam_gc2")
        np.testing.assert_allclose(got[0], w1, rtol=0, atol=1e-15)
        np.testing.assert_allclose(got[1], w2, rtol=0, atol=1e-15)
        got = self.run_2x2("radam_gc2", seed_buffer_aliasing=True)
        np.testing.assert_allclose(got[0], w1, rtol=0, atol=1e-15)
        np.testing.assert_allclose(got[1], w2_aliased, rtol=0, atol=1e-15)
        for aliasing, want in ((False, w2), (True, w2_aliased)):
            got = self.run_2x2("ranger_gc2", k=2, alpha=0.5, eps=1e-8, seed_buffer_aliasing=aliasing)
            np.testing.assert_allclose(got[0], w1, rtol=0, atol=1e-15)
            np.testing.assert_allclose(got[1], (np.array(self.W0) + want) / 2, rtol=0, atol=1e-15)
        # radam (no GC) and radam_gcc (linear not centralized under the layer rule) are the same here.
        self.assertEqual(self.run_2x2("radam"), self.run_2x2("radam_gcc"))

    def radam_loop(self, family, grads, w0, lr, b1, b2, eps, wd, aliasing, k=None, alpha=None):
        """RAdam / Ranger over one scalar per element (a bias: never centralized)."""
        w = list(w0)
        m = [0.0] * len(w)
        v = [0.0] * len(w)
        slow = list(w)
        out = []
        for t, g in enumerate(grads, 1):
            a = lr_at(lr, t)
            m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
            v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
            rho_inf = 2 / (1 - b2) - 1
            rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
            if (rho > 5) if family == "ranger" else (rho >= 5):
                r = math.sqrt((1 - b2 ** t) * (rho - 4) / (rho_inf - 4) * (rho - 2) / rho * rho_inf
                              / (rho_inf - 2)) / (1 - b1 ** t)
                u = [mi / (math.sqrt(vi) + eps) + wd * wi for mi, vi, wi in zip(m, v, w)]
            else:
                r = 1 / (1 - b1 ** t)
                u = [mi + wd * wi for mi, wi in zip(m, w)]
                if aliasing:
                    m = list(u)
            w = [wi - r * a * ui for wi, ui in zip(w, u)]
            if family == "ranger" and t % k == 0:
                slow = [si + alpha * (wi - si) for si, wi in zip(slow, w)]
                w = list(slow)
            out.append(w)
        return out

    def test_against_a_plain_loop(self):
        p = long_params()[3]  # fc.bias, 8 steps
        self.assertEqual(p["kind"], "bias")
        sched = gen.RADAM_LR_SCHEDULE
        cases = (("radam", {}), ("ranger", dict(k=3, alpha=0.6)), ("ranger", dict(k=1, alpha=0.3)))
        for family, extra in cases:
            for lr in (0.01, sched):
                for wd in (0.0, 0.05):
                    for aliasing in (False, True):
                        for b1, b2 in ((0.9, 0.9), (0.95, 0.999), (0.8, 0.7)):
                            hyper = dict(lr=lr, betas=[b1, b2], eps=1e-8, weight_decay=wd,
                                         seed_buffer_aliasing=aliasing, **extra)
                            with self.subTest(family=family, hyper=hyper):
                                want = self.radam_loop(family, p["grads"], p["value"], lr, b1, b2, 1e-8, wd,
                                                       aliasing, **extra)
                                out = ref.run_trace(doc(family, [p], **hyper))["steps"]
                                got = [s[p["name"]] for s in out]
                                for a, b in zip(got, want):
                                    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)

    def test_aliasing_changes_only_what_the_seed_writes_into_m(self):
        params = long_params()
        for family in ("radam", "ranger"):
            base = dict(gen.ALL_FAMILY_HYPER[family])
            # No decay, no GC on the update: u is m itself, so the seed's writes change nothing.
            for name in (family, f"{family}_gc", f"{family}_gcc"):
                for rule in ref.RULES:
                    h = dict(base, weight_decay=0.0)
                    on = dict(h, seed_buffer_aliasing=True)
                    with self.subTest(optimizer=name, rule=rule):
                        self.assertEqual(ref.run_trace(doc(name, params, rule, **h)),
                                         ref.run_trace(doc(name, params, rule, **on)))
            # No decay, GC on the update: the seed writes C(m) into m. GC is a linear projection, so the
            # next unrectified update C(b1*C(m) + (1-b1)*g) equals C(b1*m + (1-b1)*g) up to rounding; the
            # first rectified step, m/(sqrt(v)+eps), tells them apart. Params never centralized: no change.
            first = gen.RECTIFIED_FROM
            for name in (f"{family}_gc2", f"{family}_gcc2"):
                for rule in ref.RULES:
                    h = dict(base, weight_decay=0.0)
                    off = ref.run_trace(doc(name, params, rule, **h))["steps"]
                    on = ref.run_trace(doc(name, params, rule, **dict(h, seed_buffer_aliasing=True)))["steps"]
                    variant = ref.OPTIMIZERS[name][1]
                    for p in params:
                        with self.subTest(optimizer=name, rule=rule, param=p["name"]):
                            a = np.array([s[p["name"]] for s in off])
                            b = np.array([s[p["name"]] for s in on])
                            self.assertEqual(a[0].tolist(), b[0].tolist())
                            if centralized_units(p, rule, variant):
                                np.testing.assert_allclose(a[:first - 1], b[:first - 1], rtol=1e-13,
                                                           atol=1e-15)
                                for x, y in zip(a[first - 1:], b[first - 1:]):
                                    self.assertGreater(np.abs(x - y).max(), 1e-6)
                            else:
                                self.assertEqual(a.tolist(), b.tolist())
            # Decay: every param changes from step 2 on.
            for name in (family, f"{family}_gc", f"{family}_gc2"):
                off = ref.run_trace(doc(name, params, **base))["steps"]
                on = ref.run_trace(doc(name, params, **dict(base, seed_buffer_aliasing=True)))["steps"]
                with self.subTest(optimizer=name, decay=True):
                    self.assertEqual(off[0], on[0])
                    for p in params:
                        self.assertTrue(all(x[p["name"]] != y[p["name"]] for x, y in zip(off[1:], on[1:])))

    def test_ranger_without_a_sync_is_radam_with_the_strict_test(self):
        # k past the last step: no sync; with no rho_t exactly 5 the two tests agree, so Ranger is RAdam
        # bit for bit (same lr, betas, eps, decay, aliasing).
        params = long_params()
        for variant in ("", "_gc", "_gcc", "_gc2", "_gcc2"):
            for rule in (ref.RULES if variant else ("layer",)):
                for aliasing in (False, True):
                    h = dict(gen.RADAM_HYPER, seed_buffer_aliasing=aliasing)
                    with self.subTest(variant=variant, rule=rule, aliasing=aliasing):
                        radam = ref.run_trace(doc("radam" + variant, params, rule, **h))["steps"]
                        ranger = ref.run_trace(doc("ranger" + variant, params, rule,
                                                   **dict(h, k=gen.LONG_N_STEPS + 1, alpha=0.5)))["steps"]
                        self.assertEqual(radam, ranger)

    def test_ranger_syncs(self):
        params = long_params()
        for k in (1, 2, 3, 6):
            # alpha 0: every k-th step resets the weights to the initial ones.
            out = ref.run_trace(doc("ranger_gc", params, **dict(gen.RANGER_HYPER, k=k, alpha=0.0)))["steps"]
            for t in range(k, gen.LONG_N_STEPS + 1, k):
                with self.subTest(k=k, t=t):
                    for p in params:
                        self.assertEqual(out[t - 1][p["name"]], p["value"])
            # alpha 1: the slow weights follow the fast ones; the result is Ranger without a sync, to
            # rounding (slow + (w - slow) need not be w exactly).
            out = ref.run_trace(doc("ranger_gc", params, **dict(gen.RANGER_HYPER, k=k, alpha=1.0)))["steps"]
            plain = ref.run_trace(doc("ranger_gc", params, **dict(gen.RANGER_HYPER, k=99)))["steps"]
            for a, b in zip(out, plain):
                for name in a:
                    np.testing.assert_allclose(a[name], b[name], rtol=1e-13, atol=1e-15)

    def test_defaults(self):
        self.assertEqual(ref.HYPER_DEFAULTS["radam"], {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                                       "weight_decay": 0.0, "seed_buffer_aliasing": False})
        self.assertEqual(ref.HYPER_DEFAULTS["ranger"], {"lr": 1e-3, "betas": (0.95, 0.999), "eps": 1e-5,
                                                        "weight_decay": 0.0, "k": 6, "alpha": 0.5,
                                                        "seed_buffer_aliasing": False})
        params = long_params()
        for name, explicit in (("radam_gc2", dict(lr=1e-3, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0,
                                                  seed_buffer_aliasing=False)),
                               ("ranger_gc2", dict(lr=1e-3, betas=[0.95, 0.999], eps=1e-5, weight_decay=0.0,
                                                   k=6, alpha=0.5, seed_buffer_aliasing=False))):
            with self.subTest(optimizer=name):
                implicit = ref.run_trace(doc(name.upper(), params))
                self.assertEqual(implicit, ref.run_trace(doc(name, params, **explicit)))
                self.assertEqual(implicit["optimizer"], name)


class Lookahead(unittest.TestCase):
    """The seed's Lookahead.py around any optimizer but Ranger."""

    def test_names(self):
        base = [n for n, (f, _v, _l) in ref.OPTIMIZERS.items()
                if not f.startswith(ref.LOOKAHEAD_PREFIX)]
        wrapped = [n for n in ref.OPTIMIZERS if n.startswith(ref.LOOKAHEAD_PREFIX)]
        self.assertEqual(sorted(wrapped),
                         sorted("lookahead_" + n for n in base if not n.startswith("ranger")))
        self.assertEqual(len(wrapped), 25)
        for name in wrapped:
            inner = name[len("lookahead_"):]
            family, variant, loc = ref.OPTIMIZERS[name]
            self.assertEqual((ref.inner_family(family), variant, loc), ref.OPTIMIZERS[inner])
            self.assertEqual(ref.HYPER_DEFAULTS[family],
                             dict(ref.HYPER_DEFAULTS[ref.OPTIMIZERS[inner][0]], k=5, alpha=0.5))

    def test_sgd_by_hand(self):
        # SGD, lr 1, no momentum, g = 1 every step, w0 = 0: the inner step is w - 1.
        # k = 2, alpha 0.5: counter 0 after step 1 -> slow = w1 = -1 (its first use), slow += 0.5*(w1 - slow)
        # = -1, w1 = -1; step 2: -2 (counter 1 -> 2 -> 0); step 3: -3, sync: slow = -1 + 0.5*(-3 + 1) = -2,
        # w3 = -2; step 4: -3; step 5: -4, sync: slow = -2 + 0.5*(-4 + 2) = -3, w5 = -3.
        # k = 1: a sync after every step: -1; -2 -> -1.5; -2.5 -> -2; -3 -> -2.5; -3.5 -> -3.
        # (The paper's Algorithm 1 with k = 2 would start the slow weights at w0 = 0 and sync after steps 2
        # and 4: -1, -2 -> -1, -2, -3 -> -2, -3.)
        p = {"name": "b", "kind": "bias", "shape": [1], "value": [0.0], "grads": [[1.0]] * 5}
        for k, want in ((2, [-1, -2, -2, -3, -3]), (1, [-1, -1.5, -2, -2.5, -3])):
            out = ref.run_trace(doc("lookahead_sgd", [p], lr=1.0, k=k, alpha=0.5))["steps"]
            got = [s["b"][0] for s in out]
            self.assertEqual(got, want)
        # k past the last step: the only sync is after step 1, which changes nothing.
        self.assertEqual(ref.run_trace(doc("lookahead_sgd", [p], lr=1.0, k=6))["steps"],
                         ref.run_trace(doc("sgd", [p], lr=1.0))["steps"])

    def test_sgd_gc_momentum_by_hand(self):
        # Linear(2, 1) weight [1, 2], w0 = [0, 0], g1 = [1, 3], g2 = g3 = [0, 0], momentum 0.5, lr 1, k = 2,
        # alpha 0.5. C(g1) = [-1, 1]. t=1: buf = [-1, 1], w1 = [1, -1] = slow. t=2: buf = [-0.5, 0.5],
        # w2 = [1.5, -1.5]. t=3: buf = [-0.25, 0.25], fast [1.75, -1.75]; sync: slow = [1, -1] + 0.5*[0.75,
        # -0.75] = [1.375, -1.375] = w3. The momentum buffer carries over the sync.
        p = {"name": "w", "kind": "linear", "shape": [1, 2], "value": [0.0, 0.0],
             "grads": [[1.0, 3.0], [0.0, 0.0], [0.0, 0.0]]}
        out = ref.run_trace(doc("lookahead_sgd_gc", [p], lr=1.0, momentum=0.5, k=2))["steps"]
        got = [s["w"] for s in out]
        self.assertEqual(got, [[1.0, -1.0], [1.5, -1.5], [1.375, -1.375]])

    def test_syncs_follow_steps_one_plus_multiples_of_k(self):
        params = long_params()
        for name in ("lookahead_sgd_gc", "lookahead_adam_gc2", "lookahead_adamw_gcc", "lookahead_adagrad_gc",
                     "lookahead_radam_gc2", "lookahead_adamw_torch", "lookahead_sgdw"):
            inner = name[len("lookahead_"):]
            hyper = gen.ALL_FAMILY_HYPER[ref.OPTIMIZERS[name][0]]
            inner_hyper = {key: v for key, v in hyper.items() if key not in ("k", "alpha")}
            plain = ref.run_trace(doc(inner, params, **inner_hyper))["steps"]
            for k in (1, 2, 3, 5):
                with self.subTest(optimizer=name, k=k):
                    out = ref.run_trace(doc(name, params, **dict(hyper, k=k)))["steps"]
                    self.assertEqual(out[:k], plain[:k])  # the sync after step 1 changes nothing
                    self.assertNotEqual(out[k], plain[k])  # the sync after step 1 + k does
                    # alpha 0: each sync resets the weights to those after step 1.
                    out = ref.run_trace(doc(name, params, **dict(hyper, k=k, alpha=0.0)))["steps"]
                    for t in range(1, gen.LONG_N_STEPS + 1, k):
                        self.assertEqual(out[t - 1], plain[0])

    def test_against_a_plain_loop(self):
        # Lookahead around Adam (one scalar per element), with a schedule: the inner state carries over
        # every sync, the slow weights start after step 1.
        p = long_params()[4]  # bn.weight, 8 steps
        lr, b1, b2, eps, wd, k, alpha = gen.RADAM_LR_SCHEDULE, 0.9, 0.99, 1e-8, 0.01, 3, 0.6
        w, m, v, slow, counter, want = list(p["value"]), [0.0] * 4, [0.0] * 4, None, 0, []
        for t, g in enumerate(p["grads"], 1):
            g = [gi + wd * wi for gi, wi in zip(g, w)]
            m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
            v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
            a = lr_at(lr, t)
            w = [wi - a / (1 - b1 ** t) * mi / (math.sqrt(vi) / math.sqrt(1 - b2 ** t) + eps)
                 for wi, mi, vi in zip(w, m, v)]
            if counter == 0:
                slow = list(w) if slow is None else slow
                slow = [si + alpha * (wi - si) for si, wi in zip(slow, w)]
                w = list(slow)
            counter = (counter + 1) % k
            want.append(w)
        got = ref.run_trace(doc("lookahead_adam", [p], lr=lr, betas=[b1, b2], eps=eps, weight_decay=wd, k=k,
                                alpha=alpha))["steps"]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a[p["name"]], b, rtol=1e-14, atol=1e-16)

    def test_defaults(self):
        params = long_params()
        self.assertEqual(ref.run_trace(doc("Lookahead_Adam_GC", params)),
                         ref.run_trace(doc("lookahead_adam_gc", params, k=5, alpha=0.5, lr=1e-3)))
        self.assertEqual(ref.run_trace(doc("Lookahead_Adam_GC", params))["optimizer"], "lookahead_adam_gc")



class Errors(unittest.TestCase):
    def setUp(self):
        self.p = param("fc.weight", "linear", (2, 3), np.random.default_rng(6), steps=2)

    def assertTraceError(self, d, fragment):
        with self.assertRaises(ValueError) as cm:
            ref.run_trace(d)
        self.assertIn(fragment, str(cm.exception))

    def test_errors(self):
        p = self.p
        self.assertTraceError(doc("sgd_gcx", [p], lr=0.1), "$.optimizer")
        self.assertTraceError(doc("sgd", [p], lr=0.1, momentun=0.9), "$.hyper.momentun")
        self.assertTraceError(doc("sgd", [p], lr=0.1, betas=[0.9, 0.99]), "$.hyper.betas")
        self.assertTraceError(doc("sgd_gc", [p]), "$.hyper.lr")
        self.assertTraceError(doc("sgdw", [p]), "$.hyper.lr")
        self.assertTraceError(doc("sgd", [p], lr=0.1, nesterov=True), "$.hyper.nesterov")
        self.assertTraceError(doc("sgd", [p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
                              "$.hyper.nesterov")
        self.assertTraceError(doc("adam", [p], betas=[0.9]), "$.hyper.betas")
        self.assertTraceError(doc("adam", [p], rule="rank"), "$.rule")
        bad = copy.deepcopy(p)
        bad["value"] = bad["value"][:-1]
        self.assertTraceError(doc("adam", [bad]), "$.params[0].value")
        bad = copy.deepcopy(p)
        bad["grads"][1] = bad["grads"][1] + [0.0]
        self.assertTraceError(doc("adam", [bad]), "$.params[0].grads[1]")
        other = param("fc.bias", "bias", (2,), np.random.default_rng(7), steps=1)
        self.assertTraceError(doc("adam", [p, other]), "$.params[1].grads")
        bad = copy.deepcopy(p)
        bad["shape"] = [6]
        self.assertTraceError(doc("adam", [bad]), "$.params[0].shape")
        bad = copy.deepcopy(p)
        bad["kind"] = "dense"
        self.assertTraceError(doc("adam", [bad]), "$.params[0].kind")
        self.assertTraceError(doc("adam", [p, copy.deepcopy(p)]), "$.params[1].name")
        d = doc("adam", [p])
        d["extra"] = 1
        self.assertTraceError(d, "$.extra")

    def test_radam_ranger_lookahead_errors(self):
        p = self.p
        err = self.assertTraceError
        err(doc("radam", [p], amsgrad=True), "$.hyper.amsgrad: not a hyperparameter of the radam family")
        err(doc("radam", [p], k=3), "$.hyper.k: not a hyperparameter of the radam family")
        err(doc("radam", [p], momentum=0.9), "$.hyper.momentum")
        err(doc("ranger", [p], nesterov=False), "$.hyper.nesterov")
        err(doc("adam", [p], seed_buffer_aliasing=True), "$.hyper.seed_buffer_aliasing: not a hyperparameter")
        err(doc("lookahead_sgd", [p], lr=0.1, seed_buffer_aliasing=True), "$.hyper.seed_buffer_aliasing")
        err(doc("sgd", [p], lr=0.1, k=5), "$.hyper.k: not a hyperparameter of the sgd family")
        err(doc("radam", [p], seed_buffer_aliasing=1), "$.hyper.seed_buffer_aliasing: expected true or false")
        err(doc("ranger", [p], seed_buffer_aliasing="true"), "$.hyper.seed_buffer_aliasing")
        err(doc("radam", [p], betas=[0.9, 1.0]), "$.hyper.betas[1]")
        err(doc("ranger", [p], betas=[-0.1, 0.9]), "$.hyper.betas[0]")
        err(doc("radam", [p], eps=-1e-8), "$.hyper.eps")
        err(doc("ranger", [p], weight_decay=-0.1), "$.hyper.weight_decay")
        for name in ("ranger", "lookahead_adam", "lookahead_radam_gc2"):
            err(doc(name, [p], k=0), "$.hyper.k: must be >= 1")
            err(doc(name, [p], k=2.5), "$.hyper.k: expected an integer")
            err(doc(name, [p], k=2.0), "$.hyper.k: expected an integer")
            err(doc(name, [p], k=True), "$.hyper.k: expected an integer")
            err(doc(name, [p], k="3"), "$.hyper.k")
            err(doc(name, [p], alpha=1.5), "$.hyper.alpha: must be <= 1.0")
            err(doc(name, [p], alpha=-0.5), "$.hyper.alpha: must be >= 0.0")
            err(doc(name, [p], alpha=None), "$.hyper.alpha: expected a number")
        err(doc("lookahead_sgd", [p], k=2), "$.hyper.lr: required for the lookahead_sgd family")
        err(doc("lookahead_sgd", [p], lr=0.1, nesterov=True), "$.hyper.nesterov")
        err(doc("lookahead_ranger", [p]), "$.optimizer")
        err(doc("lookahead_lookahead_sgd", [p], lr=0.1), "$.optimizer")
        err(doc("radam_gc3", [p]), "$.optimizer")
        # Accepted: alpha at both ends, the switch on a family that has it.
        for hyper in (dict(k=2), dict(alpha=0.0), dict(alpha=1), dict(seed_buffer_aliasing=True)):
            self.assertEqual(len(ref.run_trace(doc("ranger_gc", [p], **hyper))["steps"]), 2)
        out = ref.run_trace(doc("lookahead_radam", [p], seed_buffer_aliasing=True, k=1))
        self.assertEqual(len(out["steps"]), 2)

    def test_cli(self):
        script = os.path.join(HERE, "gc_reference.py")
        good = json.dumps(doc("Adam_GC", [self.p]))
        r = subprocess.run([sys.executable, script, "-"], input=good, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), ref.run_trace(json.loads(good)))
        r = subprocess.run([sys.executable, script, "-"], input=json.dumps(doc("nope", [self.p])),
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")
        self.assertIn("$.optimizer", r.stderr)


class Fixtures(unittest.TestCase):
    def test_fixtures_reproduce(self):
        files = sorted(glob.glob(os.path.join(FIXTURE_DIR, "*.json")))
        if not files:
            self.skipTest("no fixtures generated yet")
        names = {os.path.basename(f)[:-5] for f in files}
        for stem, *_ in gen.fixture_list() + gen.lr_schedule_fixture_list() + gen.long_fixture_list():
            self.assertIn(stem, names)
        for path in files:
            with open(path, encoding="utf-8") as f:
                fx = json.load(f)
            if fx.get("source") != gen.SOURCE:
                continue
            with self.subTest(fixture=os.path.basename(path)):
                self.assertEqual(ref.run_trace(fx["input"]), fx["expected"])

    def test_fixture_inputs_are_deterministic(self):
        a, b = gen.make_params(), gen.make_params()
        self.assertEqual(a, b)
        c = gen.make_params(gen.LR_SCHEDULE_PARAM_SET)
        self.assertEqual(c, gen.make_params(gen.LR_SCHEDULE_PARAM_SET))
        self.assertEqual(c[:len(a)], a)  # the schedule set extends the common one
        d = gen.make_params(gen.PARAM_SET, gen.LONG_SEED, gen.LONG_N_STEPS)
        self.assertEqual(d, gen.make_params(gen.PARAM_SET, gen.LONG_SEED, gen.LONG_N_STEPS))
        self.assertEqual([(p["name"], p["shape"]) for p in d], [(p["name"], p["shape"]) for p in a])
        self.assertNotEqual(d[0]["value"], a[0]["value"])  # a draw of its own
        for p in c + d:
            for arr in [p["value"]] + p["grads"]:
                x = np.array(arr)
                np.testing.assert_array_equal(x.astype(np.float32).astype(np.float64), x)
        self.assertTrue(all(len(p["grads"]) == gen.LONG_N_STEPS for p in d))

    def test_long_fixtures(self):
        fixtures = gen.long_fixture_list()
        stems = [stem for stem, *_ in fixtures]
        self.assertEqual(len(stems), len(set(stems)))
        self.assertLessEqual(len(stems), 30)
        for required in ("radam__layer", "radam_gc__layer", "radam_gcc__layer", "radam_gc2__layer",
                         "radam_gcc2__layer", "radam_gc__rank_rule", "radam_gcc__rank_rule",
                         "radam_gc2__rank_rule", "radam_gcc2__rank_rule",
                         "radam_gc2__layer__seed_buffer_aliasing", "ranger__layer", "ranger_gc__layer",
                         "ranger_gcc__layer", "ranger_gc2__layer", "ranger_gcc2__layer",
                         "ranger_gc__rank_rule", "ranger_gcc__rank_rule", "ranger_gc2__rank_rule",
                         "ranger_gcc2__rank_rule", "ranger_gc2__layer__seed_buffer_aliasing",
                         "ranger_gc2__layer__k6", "lookahead_sgd__layer", "lookahead_sgd_gc__layer",
                         "lookahead_adam_gc__layer", "radam_gc2__layer__lr_schedule",
                         "ranger_gc2__layer__lr_schedule"):
            self.assertIn(required, stems)
        for stem, name, _rule, hyper in fixtures:
            with self.subTest(fixture=stem):
                family = ref.OPTIMIZERS[name][0]
                h = ref.parse_hyper(family, hyper)  # valid for its family
                self.assertEqual(set(hyper), set(ref.HYPER_DEFAULTS[family]))  # every key written out
                if "weight_decay" in h:
                    self.assertEqual(h["weight_decay"], 1e-2)  # so that the seed's aliasing shows
                if "seed_buffer_aliasing" in h:
                    self.assertEqual(h["seed_buffer_aliasing"], stem.endswith("seed_buffer_aliasing"))
        self.assertEqual(dict(fixtures[[s for s, *_ in fixtures].index("ranger_gc2__layer__k6")][3])["k"],
                         ref.HYPER_DEFAULTS["ranger"]["k"])

    def test_schedule_fixtures(self):
        stems = [stem for stem, *_ in gen.lr_schedule_fixture_list()]
        self.assertEqual(len(stems), len(set(stems)))
        for required in ("sgd_gc__layer__lr_schedule", "sgd_gc__layer__lr_schedule_nesterov",
                         "sgdw_gcc__layer__lr_schedule", "adam_gc__layer__lr_schedule",
                         "adam_gc2__layer__lr_schedule", "adamw_gc__layer__lr_schedule",
                         "adamw_torch__layer__lr_schedule", "adagrad_gcc__layer__lr_schedule",
                         "adam_gc__layer__lr_schedule_amsgrad"):
            self.assertIn(required, stems)
        for stem, name, _rule, hyper in gen.lr_schedule_fixture_list():
            with self.subTest(fixture=stem):
                self.assertIsInstance(hyper["lr"], list)
                self.assertEqual(len(hyper["lr"]), gen.N_STEPS)
                self.assertGreaterEqual(len(hyper["lr"]), 4)
                self.assertGreater(len(set(hyper["lr"])), 2)
                ref.parse_hyper(ref.OPTIMIZERS[name][0], hyper)  # valid for its family
        adagrad = dict(gen.lr_schedule_fixture_list()[-1][3])
        self.assertNotEqual(adagrad["eps"], 1e-10)
        self.assertNotEqual(adagrad["lr_decay"], 0)


if __name__ == "__main__":
    unittest.main()
