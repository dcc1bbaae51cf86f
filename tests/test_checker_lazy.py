"""The checker (relucert/check/kernel.py) computes the pre-activations once as integers, builds the
Fraction matrix Z only when a check reads all of it, and evaluates the loss after a move of a few
neurons from the point's residuals plus their change (issue 15: the checker's cost falls with the
certifier's; a not_stationary certificate needs only the quantities it rests on).

Oracles: the loss after a move recomputed from the definitions with Fractions (written out here,
independent of the checker and of relucert.core); Z entries from plain Fraction dot products."""
from __future__ import annotations

import random
from fractions import Fraction as Q

import numpy as np
import pytest

from relucert.check import kernel
from relucert.core.problem import Point, Problem
from relucert.decide.certify import certify


def _oracle_loss(X, Y, W, A, c, ap, am, factor):
    n = len(X)
    tot = Q(0)
    for x, y in zip(X, Y):
        h = [sum((a * b for a, b in zip(w, x)), Q(0)) for w in W]
        h = [ap * z if z > 0 else am * z for z in h]
        for o in range(len(y)):
            f = sum((h[j] * A[j][o] for j in range(len(W))), Q(0)) + (c[o] if c is not None else 0)
            tot += (f - y[o]) ** 2
    return tot / (2 * n) * factor


def _cert(rng, with_c, act="relu", loss="half_mean"):
    n, d, m, k = rng.randint(2, 7), rng.randint(1, 4), rng.randint(1, 6), rng.randint(1, 3)
    X = np.array([[rng.choice([0.0, 0.5, -1.0, rng.gauss(0, 1)]) for _ in range(d)] for _ in range(n)])
    pb = Problem.make(X, np.array([[rng.gauss(0, 1) for _ in range(k)] for _ in range(n)]), act, loss)
    pt = Point.make(np.array([[rng.gauss(0, 1) for _ in range(d)] for _ in range(m)]),
                    np.array([[rng.gauss(0, 1) for _ in range(k)] for _ in range(m)]), pb,
                    c=[rng.gauss(0, 1) for _ in range(k)] if with_c else None)
    return certify(pb, pt).certificate


@pytest.mark.parametrize("act", ["relu", "abs", "leaky_relu:1/10"])
def test_loss_after_a_move_equals_the_definition(act):
    rng = random.Random(3)
    for trial in range(40):
        cert = _cert(rng, trial % 2 == 0, act, "mse" if trial % 3 == 0 else "half_mean")
        inst = kernel._Instance(cert)
        for _ in range(4):
            W = [list(w) for w in inst.W]
            A = [list(a) for a in inst.A]
            moved = rng.sample(range(inst.m), rng.randint(0, inst.m))
            for j in moved:
                if rng.random() < 0.6:
                    W[j] = [w + Q(rng.randint(-3, 3), rng.randint(1, 4)) for w in W[j]]
                if rng.random() < 0.6:
                    A[j] = [a + Q(rng.randint(-3, 3), rng.randint(1, 4)) for a in A[j]]
            c = None
            if inst.c is not None and rng.random() < 0.5:
                c = [v + Q(rng.randint(-2, 2), 3) for v in inst.c]
            want = _oracle_loss(inst.X, inst.Y, W, A, c if c is not None else inst.c, inst.ap, inst.am,
                                inst.factor)
            assert inst.loss_after(W, A, c) == want
        # columns and the lazily built Z agree with plain Fraction dot products
        Z = [[sum((a * b for a, b in zip(w, x)), Q(0)) for w in inst.W] for x in inst.X]
        assert all(inst.zcol(j) == [row[j] for row in Z] for j in range(inst.m))
        assert inst.Z == Z


def test_not_stationary_check_builds_no_full_z(monkeypatch):
    # an S1 certificate of a plainly non-stationary point: the checker accepts it reading G and one
    # column of Z only
    rng = np.random.default_rng(4)
    pb = Problem.make(rng.standard_normal((40, 3)), rng.standard_normal((40, 1)), "relu")
    pt = Point.make(rng.standard_normal((30, 3)), rng.standard_normal((30, 1)), pb)
    cert = certify(pb, pt).certificate
    assert cert["verdict"] == "not_stationary" and cert["evidence"]["not_stationary"]["reason"] == "S1"
    built = []
    orig = kernel._Instance.Z.fget

    def spy(self):
        built.append(1)
        return orig(self)
    monkeypatch.setattr(kernel._Instance, "Z", property(spy))
    assert kernel.derive_verdict(cert) == "not_stationary"
    assert built == []
    # and a forged step is still rejected (the loss at the step is recomputed)
    ns = cert["evidence"]["not_stationary"]
    ns["loss_at_step"] = str(Q(ns["loss_at_step"]) + Q(1, 10 ** 9))
    with pytest.raises(kernel.Rejected, match="loss at step"):
        kernel.derive_verdict(cert)
