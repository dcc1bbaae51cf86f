"""Hand-computed unit cases for every verdict (expectations derived in tests/cases.py)."""
from fractions import Fraction

import numpy as np
import pytest
from flint import fmpq

from relucert import certify
from relucert.check import Rejected, require_valid
from relucert.errors import InputError
from relucert.io import problem_point_from_dict
from relucert.core.problem import Activation, Problem, to_fmpq
from relucert.decide.stationarity import decide_phi

from cases import CASES, DEGENERATE_MIN


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_verdict(name):
    data, verdict, escape, loss = CASES[name]
    pb, pt = problem_point_from_dict(data)
    res = certify(pb, pt)
    assert res.verdict == verdict, res.report()
    assert res.escape_neurons == escape
    assert res.loss == to_fmpq(loss)
    assert require_valid(res.certificate) == verdict


def test_kink_not_stationary_direction():
    # phi(r) = -relu(r2)/2: the descent must move w along +r2 and L' must equal phi(r) < 0
    pb, pt = problem_point_from_dict(CASES["kink_not_stationary"][0])
    ev = certify(pb, pt).certificate["evidence"]["not_stationary"]
    assert ev["reason"] == "S2"
    r = [Fraction(v) for v in ev["direction"]["dw"]]
    assert r[1] > 0
    assert Fraction(ev["derivative"]) == -Fraction(1, 2) * r[1]


def test_gradient_direction_is_minus_G():
    pb, pt = problem_point_from_dict(CASES["gradient"][0])
    ev = certify(pb, pt).certificate["evidence"]["not_stationary"]
    assert ev["reason"] == "S1"
    assert ev["direction"]["da"] == ["1/2"]          # -G with G = -1/2
    assert Fraction(ev["derivative"]) == Fraction(-1, 4)  # -||G||^2


def test_origin_escape_path_leading_term():
    pb, pt = problem_point_from_dict(CASES["origin"][0])
    ep = certify(pb, pt).certificate["evidence"]["escape_path"]
    D = [Fraction(v) for v in ep["D"]]
    poly = [Fraction(c) for c in ep["polynomial"]]
    assert poly[:3] == [0, 0, 0]
    assert poly[3] == -sum(v * v for v in D)
    assert Fraction(ep["loss_at_t0"]) < Fraction(1, 4)


def test_degenerate_needs_cones_not_separable():
    # three dependent normals with a concave hinge: gamma = (5, 5, -1) up to the 1/3 factor
    pb, pt = problem_point_from_dict(DEGENERATE_MIN)
    res = certify(pb, pt)
    st = res.certificate["evidence"]["neurons"][0]["stationarity"]
    assert st["method"] in ("cones", "rays")
    gammas = sorted(Fraction(h["gamma"]) for h in st["hinges"])
    assert gammas == [-1, 5, 5]
    for method in ("cones", "rays", "z3"):
        assert certify(pb, pt, method=method).verdict == "local_min"


def test_theory_example_phi_all_methods():
    e1, e2, e12 = (fmpq(1), fmpq(0)), (fmpq(0), fmpq(1)), (fmpq(1), fmpq(1))
    b = [fmpq(0), fmpq(0)]
    good = {e1: fmpq(5), e2: fmpq(5), e12: fmpq(-1)}
    bad = {e1: fmpq(1, 2), e2: fmpq(1, 2), e12: fmpq(-1)}
    for m in ("cones", "rays", "z3", "auto"):
        assert decide_phi(b, good, m).ok is True
        res = decide_phi(b, bad, m)
        assert res.ok is False
        assert res.value < 0


def test_vector_inconclusive_says_why():
    pb, pt = problem_point_from_dict(CASES["vec_inconclusive"][0])
    res = certify(pb, pt)
    assert "a_j != 0" in res.reason and "second-order" in res.reason


def test_decimal_strings_are_exact():
    pb = Problem.make([["0.1"], [0.1]], [[1], ["3/7"]])
    assert pb.X[0, 0] == fmpq(1, 10)
    assert pb.X[1, 0] == fmpq(*(0.1).as_integer_ratio())   # a float is its binary value
    assert pb.X[1, 0] != fmpq(1, 10)
    assert pb.Y[1, 0] == fmpq(3, 7)


def test_json_numbers_are_exact_decimals(tmp_path):
    from relucert.io import load
    p = tmp_path / "p.json"
    p.write_text('{"X": [[0.1]], "Y": [[1e-3]], "W": [[0.3]], "A": [2.5]}')
    pb, pt = load(str(p))
    assert pb.X[0, 0] == fmpq(1, 10) and pb.Y[0, 0] == fmpq(1, 1000) and pt.W[0, 0] == fmpq(3, 10)
    assert pt.A.shape == (1, 1) and pt.A[0, 0] == fmpq(5, 2)


def test_npz_floats_are_exact_binary(tmp_path):
    from relucert.io import load
    p = tmp_path / "p.npz"
    np.savez(p, X=np.array([[0.1]], dtype=np.float32), Y=np.array([[0.2]]), W=np.array([[0.3]]),
             A=np.array([[0.7]], dtype=np.float32))
    pb, pt = load(str(p))
    assert pb.X[0, 0] == fmpq(*float(np.float32(0.1)).as_integer_ratio())
    assert pt.A[0, 0] == fmpq(*float(np.float32(0.7)).as_integer_ratio())


def test_activation_parsing():
    assert Activation.parse("relu").alpha_minus == 0
    assert Activation.parse("leaky_relu:0.01").alpha_minus == fmpq(1, 100)
    assert Activation.parse("abs").alpha_minus == -1
    assert Activation.parse({"alpha_plus": "2", "alpha_minus": "1/3"}).alpha_plus == 2
    with pytest.raises(InputError, match="alpha_plus = alpha_minus"):
        Activation.parse({"alpha_plus": "1", "alpha_minus": "1"})
    with pytest.raises(InputError, match="unknown activation"):
        Activation.parse("tanh")


@pytest.mark.parametrize("bad, msg", [
    ({"X": [[1, 2]], "Y": [[1]], "W": [[1, 2, 3]], "A": [[1]]}, "W has 3 columns but X has 2"),
    ({"X": [[1], [2]], "Y": [[1]], "W": [[1]], "A": [[1]]}, "X has 2 rows but Y has 1"),
    ({"X": [[1]], "Y": [[1]], "W": [[1], [2]], "A": [[1]]}, "W has 2 rows"),
    ({"X": [[1]], "Y": [[1, 2]], "W": [[1]], "A": [[1]]}, "A has 1 columns but Y has 2"),
    ({"X": [], "Y": [], "W": [[1]], "A": [[1]]}, "X is empty"),
    ({"X": [[1], [1, 2]], "Y": [[1], [1]], "W": [[1]], "A": [[1]]}, "ragged"),
    ({"X": [["nan"]], "Y": [[1]], "W": [[1]], "A": [[1]]}, "not finite"),
    ({"X": [[1]], "Y": [[1]], "W": [[1]]}, "missing key"),
    ({"X": [[1]], "Y": [["abc"]], "W": [[1]], "A": [[1]]}, "cannot read"),
    ({"X": [[1]], "Y": [[1]], "W": [[1]], "A": [[1]], "loss": "l1"}, "unknown loss"),
])
def test_bad_input_messages(bad, msg):
    with pytest.raises(InputError, match=msg):
        problem_point_from_dict(bad)


def test_checker_rejects_tampering():
    pb, pt = problem_point_from_dict(CASES["kink_min"][0])
    cert = certify(pb, pt).certificate
    import copy
    for mutate, msg in [
        (lambda c: c.__setitem__("verdict", "saddle"), "escape path"),
        (lambda c: c["point"]["A"][0].__setitem__(0, "2"), "fingerprint"),
        (lambda c: c["problem"]["Y"][1].__setitem__(0, "1"), "fingerprint"),
        (lambda c: c["evidence"]["loss"].__setitem__("value", "1/3"), "loss"),
        (lambda c: c["evidence"]["neurons"][0]["stationarity"]["patterns"][0].__setitem__("s", ["2"]), "s"),
    ]:
        c = copy.deepcopy(cert)
        mutate(c)
        with pytest.raises(Rejected, match=msg):
            require_valid(c)


def test_vector_second_order_saddle_hand_computed():
    # X = (1), (-1); Y = (0, 0), (0, -1); one ReLU neuron w = 0, a = (1, 0): f = 0, e = (0,0), (0,1).
    # G = 0 (sigma(0) = 0) and phi(r) = a.D(r) = 0 for every r, D(r) = (0, relu(-r)/2): at r = -1,
    # D = (0, 1/2) != 0, so neuron 0 is an escape neuron with a != 0 (vector output: Theorems A/B say
    # nothing).  Along w = -t, a = (1, 0) + t delta: x2 gives h = t, output t(1, t delta_2) ... with the
    # best delta = -g/H: u = (1, 0) on x2 only, h = 0 everywhere, so H = 0 and delta = -lam g,
    # g = D = (0, 1/2), lam = (|u|^2/2n)/|g|^2 + 1 = (1/4)/(1/4) + 1 = 2: delta = (0, -1).
    # L(t) - L = [(t)^2 + (t * (-t) - 1)^2 - 1] / 4 = (-t^2 + t^4)/4: c2 = -1/4 < 0 -> saddle.
    pb, pt = problem_point_from_dict({"activation": "relu", "X": [[1], [-1]], "Y": [[0, 0], [0, -1]],
                                      "W": [[0]], "A": [[1, 0]]})
    res = certify(pb, pt)
    assert res.verdict == "saddle" and res.escape_neurons == [0]
    so = res.certificate["evidence"]["second_order"]
    assert so["dW"] == [["-1"]] and so["dA"] == [["0", "-1"]]
    assert so["polynomial"] == ["0", "0", "-1/4", "0", "1/4"] and so["t_max"] is None
    t0 = Fraction(so["t0"])
    assert Fraction(so["loss_at_t0"]) == Fraction(1, 4) + (-t0 ** 2 + t0 ** 4) / 4
    assert require_valid(res.certificate) == "saddle"
    import copy
    for mutate, msg in [
        (lambda c: c.__setitem__("verdict", "local_min"), "escape neuron"),
        (lambda c: c.__setitem__("verdict", "inconclusive"), "saddle proof"),
        (lambda c: c["evidence"].pop("second_order"), "exactly one of"),
        (lambda c: c["evidence"].__setitem__("escape_path", {}), "exactly one of"),
        (lambda c: c["evidence"]["second_order"]["polynomial"].__setitem__(2, "-1/3"), "polynomial differs"),
        (lambda c: c["evidence"]["second_order"]["dA"][0].__setitem__(1, "0"), "polynomial differs"),
        (lambda c: c["evidence"]["second_order"].__setitem__("t0", "2"), "loss at t0"),
        (lambda c: c["evidence"]["second_order"].__setitem__("t0", "0"), "t0 outside"),
    ]:
        c = copy.deepcopy(res.certificate)
        mutate(c)
        with pytest.raises(Rejected, match=msg):
            require_valid(c)
    # a direction with L' = 0 but c2 >= 0 is not a proof: moving a alone (w = 0 outputs nothing)
    c = copy.deepcopy(res.certificate)
    c["evidence"]["second_order"].update(dW=[["0"]], dA=[["1", "0"]], polynomial=["0", "0", "0", "0", "0"])
    with pytest.raises(Rejected, match="not negative"):
        require_valid(c)


def test_vector_morse_bott_local_min_and_forgeries():
    # X = (1,0), (0,1), (1,1); w = (1,1), a = (1,0): f = (1,0), (1,0), (2,0); residuals e = (0,2), (0,0),
    # (0,-1) (b = (0,1) orthogonal to a, sum c_i h_i = 2 - 2 = 0): stationary, D(r) = (0, (2 r1 - r1 - r2)/3)
    # != 0 with phi = a.D = 0: an escape neuron with a != 0, so Theorem A says nothing.  Smooth; the exact
    # Hessian is PSD of rank 3 with kernel = the rescaling direction (w, -a) = (1, 1, -1, 0): Morse-Bott.
    pb, pt = problem_point_from_dict({"activation": "relu", "X": [[1, 0], [0, 1], [1, 1]],
                                      "Y": [[1, -2], [1, 0], [2, 1]], "W": [[1, 1]], "A": [[1, 0]]})
    res = certify(pb, pt)
    assert res.verdict == "local_min" and res.escape_neurons == [0]
    mb = res.certificate["evidence"]["morse_bott"]
    assert (mb["parameters"], mb["hessian_rank"], mb["tangent_dimension"], mb["dead_neurons"]) == (4, 3, 1, [])
    assert require_valid(res.certificate) == "local_min"
    import copy
    for mutate, msg in [
        (lambda c: c.__setitem__("verdict", "inconclusive"), "Morse-Bott proof"),
        (lambda c: c["evidence"].pop("morse_bott"), "escape neuron is recorded"),
        (lambda c: c["evidence"]["morse_bott"].__setitem__("hessian_rank", 4), "recorded rank"),
    ]:
        c = copy.deepcopy(res.certificate)
        mutate(c)
        with pytest.raises(Rejected, match=msg):
            require_valid(c)
    # forged Morse-Bott proofs on saddles are rejected: a smooth rank-one saddle (negative curvature) ...
    pb, pt = problem_point_from_dict({"activation": "relu", "X": [[1, 1], [1, -1]], "Y": [[1, 2], [1, -2]],
                                      "W": [[1, 0]], "A": [[1, 0]]})
    sad = certify(pb, pt)
    assert sad.verdict == "saddle"
    c = copy.deepcopy(sad.certificate)
    c["verdict"] = "local_min"
    c["evidence"].pop("second_order")
    c["evidence"]["morse_bott"] = dict(mb)
    with pytest.raises(Rejected, match="not positive semi-definite"):
        require_valid(c)
    # ... and a non-smooth one (w = 0: every point on the kink)
    pb, pt = problem_point_from_dict({"activation": "relu", "X": [[1], [-1]], "Y": [[0, 0], [0, -1]],
                                      "W": [[0]], "A": [[1, 0]]})
    c = copy.deepcopy(certify(pb, pt).certificate)
    c["verdict"] = "local_min"
    c["evidence"].pop("second_order")
    c["evidence"]["morse_bott"] = dict(mb)
    with pytest.raises(Rejected, match="w = 0"):
        require_valid(c)
