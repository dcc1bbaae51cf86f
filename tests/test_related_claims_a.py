"""Claims from the related literature (issue 16): tangent sensitivity (Daróczy) and trainable
activations as ReLU sub-networks (Apicella et al.).  Hand-computed exact cases, mutation checks
(the claims catch a wrong formula), and every claim at a small budget with its expected outcome."""
from __future__ import annotations

import json

import pytest
from flint import fmpq

from relucert.claims import related_tangent as tg
from relucert.claims import related_trainable as tr
from relucert.claims.api import get_claim, select
from relucert.claims.instance import Instance
from relucert.claims.runner import replay, run_claims
from relucert.claims.source import RandomSource, Reject
from relucert.core.formulas import network_outputs
from relucert.core.linalg import mat_rank
from relucert.core.problem import Point, Problem
from relucert.decide.certify import certify

Q = fmpq


def qv(*vals):
    return [Q(v) if not isinstance(v, tuple) else Q(*v) for v in vals]


def T_rows(T, c=0):
    """Output c's tangent matrix as lists of strings (for readable asserts)."""
    return [[str(v) for v in r] for r in T[c]]


# ---------------------------------------------------------------------------------------------
# tangent sensitivity by hand
# ---------------------------------------------------------------------------------------------

def test_one_neuron_tangent_by_hand():
    """f(x) = 3 relu(2x - 1); theta = (w, b, a).  For x > 1/2 the gradient is (3x, 3, 2x - 1), so
    T = d/dx = (3, 0, 2); for x < 1/2 it is 0."""
    net = tg.ShallowNet([[Q(2)]], [Q(-1)], [[Q(3)]])
    assert net.P == 3
    assert tg.param_grad(net, [Q(1)]) == [[Q(3), Q(3), Q(1)]]
    T = tg.tangent(net, [Q(1)])
    assert T_rows(T) == [["3"], ["0"], ["2"]]
    assert tg.fd_tangent(net, [Q(1)]) == T == tg.tangent(net, [Q(5, 7)])
    assert T_rows(tg.tangent(net, [Q(0)])) == [["0"], ["0"], ["0"]]
    # ||T||^2 = 9 + 4 = s^2 (k w^2 + d a^2); both bounds are tight for one neuron with d = k = 1
    pat = net.pattern([Q(1)])
    assert tg.frob2(T) == tg.frob2_formula(net, pat) == 13 == tg.bound_active(net, pat) == tg.bound_layerwise(net)
    assert net.on_kink([Q(1, 2)]) and not net.on_kink([Q(1)])


def test_two_neuron_tangent_by_hand():
    """w1 = (1, 0), b1 = 0, a1 = 2;  w2 = (1, -1), b2 = 1, a2 = -1  (ReLU, d = 2, k = 1).
    theta = (w1, b1, a1, w2, b2, a2).  At x = (1, 1) both neurons are active:
    w1-rows a1 I = 2 I, a1-row w1 = (1, 0), w2-rows a2 I = -I, a2-row w2 = (1, -1); b-rows 0.
    At x = (1, 3) neuron 2 is off (z2 = -1): its rows vanish."""
    net = tg.ShallowNet([qv(1, 0), qv(1, -1)], qv(0, 1), [qv(2), qv(-1)])
    T11 = tg.tangent(net, qv(1, 1))
    assert T_rows(T11) == [["2", "0"], ["0", "2"], ["0", "0"], ["1", "0"],
                           ["-1", "0"], ["0", "-1"], ["0", "0"], ["1", "-1"]]
    T13 = tg.tangent(net, qv(1, 3))
    assert T_rows(T13) == [["2", "0"], ["0", "2"], ["0", "0"], ["1", "0"]] + [["0", "0"]] * 4
    for x in (qv(1, 1), qv(1, 3), qv(2, 1)):
        assert tg.fd_tangent(net, x) == tg.tangent(net, x)
    # norms: 13 = (1 + 2*4) + (2 + 2*1) and 9; active-node bounds 2*1*2*(1 + 4) = 20 and 10; layer-wise 20
    assert tg.frob2(T11) == 13 and tg.frob2(T13) == 9
    assert tg.bound_active(net, net.pattern(qv(1, 1))) == 20 and tg.bound_active(net, net.pattern(qv(1, 3))) == 10
    assert tg.bound_layerwise(net) == 20
    # leaky ReLU (alpha_minus = 1/10): neuron 2's rows at (1, 3) are scaled by 1/10, not zero
    leaky = tg.ShallowNet(net.W, net.b, net.A, Q(1), Q(1, 10))
    assert T_rows(tg.tangent(leaky, qv(1, 3)))[4:] == [["-1/10", "0"], ["0", "-1/10"], ["0", "0"], ["1/10", "-1/10"]]
    assert tg.fd_tangent(leaky, qv(1, 3)) == tg.tangent(leaky, qv(1, 3))
    # the data set {(1,1), (2,1), (1,3), (-1,0)}: (-1,0) is on neuron 2's kink; two patterns, two
    # tangent matrices, two linear pieces (slopes (1, 1) and (2, 0))
    X = [qv(1, 1), qv(2, 1), qv(1, 3), qv(-1, 0)]
    assert net.on_kink(qv(-1, 0))
    assert tg._distinct(net, X) == {"points": 3, "tangents": 2, "patterns": 2, "jacobians": 2, "affine_pieces": 2}
    inst = Instance(None, None, "tangent", {"network": net.to_json(), "X": X})
    for name in ("tangent-bounds", "tangent-regions", "tangent-linear-regions"):
        assert get_claim(name).evaluate(inst).status == "held"
    # with a2 = 0, f = 2 relu(x_1) has one linear piece on the data, but T still sees neuron 2
    dead = tg.ShallowNet(net.W, net.b, [qv(2), qv(0)])
    assert tg._distinct(dead, X)["affine_pieces"] == 1 and tg._distinct(dead, X)["tangents"] == 2
    inst = Instance(None, None, "tangent", {"network": dead.to_json(), "X": X})
    assert get_claim("tangent-regions").evaluate(inst).status == "held"
    assert get_claim("tangent-linear-regions").evaluate(inst).status == "counterexample"


def test_tangent_claim_catches_a_wrong_closed_form(monkeypatch):
    orig = tg.tangent_of_pattern

    def wrong(net, pattern):      # a_j s_j^2 instead of a_j s_j on the w-rows
        T = orig(net, pattern)
        s = [net.ap if p else net.am for p in pattern]
        out = [[list(r) for r in M] for M in T]
        for c in range(net.k):
            for j in range(net.m):
                for i in range(net.d):
                    out[c][tg.param_index(net, j, "w", i)][i] = net.A[j][c] * s[j] ** 2
        return tuple(tuple(tuple(r) for r in M) for M in out)

    monkeypatch.setattr(tg, "tangent_of_pattern", wrong)
    inst = Instance(None, None, "tangent", {"network": tg.ShallowNet([[Q(1)]], [Q(0)], [[Q(1)]], Q(2), Q(0)).to_json(),
                                            "X": [[Q(1)]]})
    assert get_claim("tangent-bounds").evaluate(inst).status == "counterexample"


# ---------------------------------------------------------------------------------------------
# trainable activation by hand
# ---------------------------------------------------------------------------------------------

def hand_net() -> tr.TrainableNet:
    """sigma(z) = 2 relu(z - 1) - relu(-z + 1) + z/2 + 1, one neuron w = (1, 0) on (x, 1), a = 3."""
    return tr.TrainableNet([qv(1, 0)], [qv(3)], alpha=qv(1, -1), gamma=qv(-1, 1), beta=qv(2, -1),
                           lam=Q(1, 2), mu=Q(1))


def test_hand_trainable_activation_expansion():
    net = hand_net()
    WE, AE, labels = tr.expand(net)
    # (alpha_l w + gamma_l e_1, beta_l a), (+-w, +-lam a), (e_1, mu a)
    assert WE == [qv(1, -1), qv(-1, 1), qv(1, 0), qv(-1, 0), qv(0, 1)]
    assert AE == [qv(6), qv(-3), qv((3, 2)), qv((-3, 2)), qv(3)]
    assert labels[0] == "sub(neuron 0, sub-neuron 0)" and labels[-1] == "const(neuron 0)"
    assert tr.expanded_width(net) == 5 and net.P == 2 + 1 + 6 + 2
    pb = Problem.make([[0, 1]], [[0]], "relu")
    pt = Point.make([[str(v) for v in r] for r in WE], [[str(v) for v in r] for r in AE], pb)
    # f(3) = 3 (2*2 - 0 + 3/2 + 1) = 39/2,  f(-1) = 3 (0 - 2 - 1/2 + 1) = -9/2,  f(1) = 3 (0 + 1/2 + 1) = 9/2
    for x, fx in ((3, Q(39, 2)), (-1, Q(-9, 2)), (1, Q(9, 2)), (Q(1, 3), None)):
        xv = [Q(x), Q(1)]
        got = network_outputs(pb, pt, [xv])[0]
        assert got == net(xv)
        if fx is not None:
            assert got == [fx]
    # along the input line: the only true kink is z = 1 (slope 3 (1 + 1/2) = 9/2 -> 3 (2 + 1/2) = 15/2);
    # the expanded net's breakpoint candidate z = 0 (lin+, lin-) is not a kink: relu(z) - relu(-z) = z
    narrow, expanded = tr.line_profiles(net, WE, AE, qv(0, 1), qv(1, 0))
    assert narrow == expanded == ([Q(1)], [[Q(9, 2)], [Q(15, 2)]], [Q(0)])
    # the narrow gradient equals DPhi^T (relucert's reference gradient) and DPhi = central differences
    D = tr.phi_jacobian(net)
    assert D == tr.phi_jacobian_by_differences(net) and len(D) == 5 * 3 and mat_rank(D, net.P) < len(D)


def hand_transfer_instance() -> Instance:
    """sigma(z) = relu(z) + z (L = 1, lam = 1), one neuron w = (1, 0), a = (1, 0), data x = -1, 1.
    Output 1 is fitted exactly (Y_1 = f_1 = sigma(x) = (-1, 2)); output 2 has residual e_2 = (2, 1),
    orthogonal to sigma(x_i) = (-1, 2) (so dL/da_2 = 0) and every other narrow derivative has a factor
    e_1 = 0 or a_2 = 0: the narrow view is exactly stationary.  The expanded net has the sub-neuron
    relu(x) with its own output weight: dL/dA_2 = (1/2) (2 relu(-1) + 1 relu(1)) = 1/2 != 0."""
    net = tr.TrainableNet([qv(1, 0)], [qv(1, 0)], qv(1), qv(0), qv(1), lam=Q(1))
    WE, AE, labels = tr.expand(net)
    pb = Problem.make([[-1, 1], [1, 1]], [[-1, -2], [2, -1]], "relu")
    pt = Point.make([[str(v) for v in r] for r in WE], [[str(v) for v in r] for r in AE], pb)
    return Instance(pb, pt, "trainable:narrow", {"narrow": net.to_json(), "labels": labels, "mode": "narrow"})


def test_hand_trainable_stationary_not_transferred():
    inst = hand_transfer_instance()
    net, pb, pt, X, Y = tr._load(inst)
    assert tr.narrow_grad(net, X, Y) == [Q(0)] * net.P
    res = certify(pb, pt)
    assert res.verdict == "not_stationary" and res.loss == Q(5, 4)
    from relucert.claims import exact as ex
    gW, gA = ex.gradient(pb, pt.W, pt.A)
    assert gA[0] == [Q(0), Q(1, 2)]
    assert get_claim("trainable-stationary-transfer").evaluate(inst).status == "counterexample"
    assert get_claim("trainable-stationary-pullback").evaluate(inst).status == "held"


def test_full_row_rank_expansion_transfers_stationarity():
    """L = 1, no linear part, alpha beta != 0: DPhi has full row rank, so every narrow-stationary point
    is expanded-stationary (checked on generated narrow-stationary points)."""
    found = 0
    for i in range(12):
        try:
            inst = tr.trainable_instance(RandomSource(f"full:{i}"), modes=("narrow",), max_L=1, linear=("none",))
        except Reject:
            continue
        net = tr.TrainableNet.from_json(inst.meta["narrow"])
        D = tr.phi_jacobian(net)
        assert mat_rank(D, net.P) == len(D)
        assert certify(inst.problem, inst.point).verdict != "not_stationary"
        assert get_claim("trainable-stationary-transfer").evaluate(inst).status == "held"
        found += 1
    assert found >= 6


def test_trainable_claims_catch_wrong_formulas(monkeypatch):
    inst = tr.trainable_instance(RandomSource("mut:0"), modes=("random",), max_L=2, linear=("lam+mu",))
    assert get_claim("trainable-stationary-pullback").evaluate(inst).status == "held"
    orig = tr.narrow_features

    def wrong(net, x):            # d f / d beta_l off by a factor 2
        out = orig(net, x)
        o = net.index()
        for g in out:
            for l_ in range(net.L):
                g[o["beta"] + l_] *= 2
        return out

    monkeypatch.setattr(tr, "narrow_features", wrong)
    assert get_claim("trainable-stationary-pullback").evaluate(inst).status == "counterexample"
    monkeypatch.undo()
    finst = tr.function_instance(RandomSource("mut:1"))
    assert get_claim("trainable-expansion-exact").evaluate(finst).status == "held"
    net = tr.TrainableNet.from_json(finst.meta["narrow"])
    bad = Instance(finst.problem, finst.point, finst.kind,
                   {**finst.meta, "narrow": {**net.to_json(), "beta": [str(v + 1) for v in net.beta]}})
    with pytest.raises(ValueError):          # the saved expanded point no longer matches
        tr._load(Instance.from_json(bad.to_json()))


# ---------------------------------------------------------------------------------------------
# every claim at a small budget, with its expected outcome; counterexamples saved and replayable
# ---------------------------------------------------------------------------------------------

CLAIMS = {"tangent-bounds": "ok", "tangent-regions": "ok", "tangent-linear-regions": "ok",
          "trainable-expansion-exact": "ok", "trainable-stationary-pullback": "ok",
          "trainable-stationary-transfer": "ok"}


@pytest.mark.parametrize("name", list(CLAIMS))
def test_claim_small_budget(name, tmp_path):
    c = get_claim(name)
    assert c.module in ("relucert.claims.related_tangent", "relucert.claims.related_trainable")
    rep = run_claims(select([name]), instances=8, seed=0, out_dir=str(tmp_path), do_shrink=False)[0]
    assert rep.instances == 8 and rep.errors == 0 and rep.status == CLAIMS[name], (rep.to_json(), rep.error_examples)
    if c.expect == "counterexample":
        assert rep.counterexamples > 0
        files = sorted((tmp_path / name).glob("*.json"))
        assert files
        obj = json.load(open(files[0]))
        assert obj["claim"] == name and obj["message"]
        _, _, out = replay(str(files[0]))
        assert out.status == "counterexample"
    else:
        assert rep.counterexamples == 0 and rep.held > 0


def test_saved_transfer_counterexample_is_a_certify_input(tmp_path):
    """The transfer counterexample file is the expanded ReLU network in `relucert certify`'s schema."""
    run_claims(select(["trainable-stationary-transfer"]), instances=8, seed=0, out_dir=str(tmp_path), do_shrink=False)
    f = sorted((tmp_path / "trainable-stationary-transfer").glob("seed0-*.json"))[0]
    obj = json.load(open(f))
    pb = Problem.make(obj["X"], obj["Y"], obj["activation"], obj["loss"])
    pt = Point.make(obj["W"], obj["A"], pb)
    assert certify(pb, pt).verdict == "not_stationary"
    assert "narrow" in obj["meta"] and obj["kind"] == "trainable:narrow"
