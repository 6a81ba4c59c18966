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
    def check_mean_invariant(self, optimizer, rule, hyper, expect_constant=True, param_set=gen.PARAM_SET):
        variant = ref.OPTIMIZERS[optimizer][1]
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

    FAMILY_HYPER = dict(gen.FAMILY_HYPER, adagrad=dict(gen.ADAGRAD_HYPER, lr_decay=0.05))

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
        for stem, *_ in gen.fixture_list() + gen.lr_schedule_fixture_list():
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
        for p in c:
            for arr in [p["value"]] + p["grads"]:
                x = np.array(arr)
                np.testing.assert_array_equal(x.astype(np.float32).astype(np.float64), x)

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
