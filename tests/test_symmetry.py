"""Symmetries (docs/theory.md §7, §9): groups, orbits, flat lines, the exact Hessian, counting, CLI."""
import json
import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from relucert.check import require_valid
from flint import fmpq, fmpq_mat

from relucert import certify
from relucert.tools import embedding as E
from relucert.tools import symmetry as S
from relucert.core import hessian as HS
from relucert.core import linalg as LA
from relucert.decide import second_order as SO
from relucert.core.formulas import forward, ray_coefficients
from relucert.io import load
from relucert.core.problem import Point


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EX = os.path.join(ROOT, "examples", "embedding")
CLI = [sys.executable, "-m", "relucert.cli"]


def _load(name):
    return load(os.path.join(EX, name + ".json"))


def _random_direction(P, rng):
    return [fmpq(rng.randint(-5, 5), rng.randint(1, 4)) for _ in range(P)]


def _ray_c1_c2(pb, pt, v):
    m, d, k = pt.m, pb.d, pb.k
    dW = np.empty((m, d), dtype=object)
    dA = np.empty((m, k), dtype=object)
    for j in range(m):
        for q in range(d):
            dW[j, q] = v[j * d + q]
        for c in range(k):
            dA[j, c] = v[m * d + j * k + c]
    act = pb.activation
    fw = forward(pb.X, pb.Y, pt.W, pt.A, act.alpha_plus, act.alpha_minus)
    c1, c2, *_ = ray_coefficients(pb.X, fw.E, fw.Z, None, pt.W, pt.A, dW, dA, act.alpha_plus, act.alpha_minus)
    return c1, c2


# ---------------------------------------------------------------------------------------------
# groups and orbits
# ---------------------------------------------------------------------------------------------

def test_direction_groups_replicated_and_zero_output():
    pb, pt = _load("diff_min")
    wide = E.split(pb, pt, 0, "1/2,1/2", "1,3").after           # replicated group {0, 1}
    W = wide.W.tolist() + [[fmpq(1), fmpq(-1)], [fmpq(2), fmpq(-2)]]
    A = wide.A.tolist() + [[fmpq(1)], [fmpq(-1, 2)]]              # 1*1 + 2*(-1/2) = 0: zero-output group
    W.append([fmpq(0), fmpq(0)])
    A.append([fmpq(5)])                                           # zero-input neuron
    p = Point.make(W, A, pb)
    E.check_function_preserved(pb, pt, p)                         # same function as the width-1 point
    groups = {tuple(g["neurons"]): g for g in S.direction_groups(pb, p)}
    assert groups[(0, 1)]["kind"] == "replicated" and groups[(0, 1)]["effective_a"] == ["2/3"]
    assert groups[(2, 3)]["kind"] == "zero-output group" and groups[(2, 3)]["direction"] == ["1", "-1"]
    assert groups[(4,)]["kind"].startswith("zero-input")
    assert S.antiparallel_pairs(Point.make([[1, 2], [-2, -4], [1, 0]], [[1], [1], [1]], pb)) == [[0, 1]]


def test_orbits():
    pb, pt = _load("diff_min")
    wide = E.split(pb, pt, 0, "1/3,1/3,1/3").after               # three identical neurons
    o = S.orbits(pb, wide)
    assert o["permutation"]["orbit_size"] == 1
    assert o["permutation"]["identical_pairs"] == [[0, 1], [0, 2], [1, 2]]
    wide = E.split(pb, pt, 0, "1/2,1/2", "1,2").after            # rescaling-equivalent, not identical
    o = S.orbits(pb, wide)
    assert o["permutation"]["orbit_size"] == 2 and o["permutation"]["orbit_size_modulo_rescaling"] == 1
    assert o["rescaling"]["dimension"] == 2
    # |w|^2 - |a|^2 = 8/9 - 1/4 and 32/9 - 1/16
    assert o["rescaling"]["invariants"] == [str(fmpq(8, 9) - fmpq(1, 4)), str(fmpq(32, 9) - fmpq(1, 16))]


# ---------------------------------------------------------------------------------------------
# flat lines at permutation points
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["diff_min", "kink_min", "vec_kink_min", "vec_morse_bott_min"])
def test_flat_line_is_exactly_flat(name):
    pb, pt = _load(name)
    wide = E.split(pb, pt, 0, "1/2,1/2").after
    fl = S.flat_line(pb, wide, 0, 1)
    assert fl["flat"] and fl["permutation_point"]
    for dd in fl["directions"]:
        for key in ("polynomial_delta_positive", "polynomial_delta_negative"):
            c = dd[key]["coefficients"]
            assert c[1:] == ["0", "0", "0", "0"] and dd[key]["valid_for_all_t"]
        assert len(set(dd["loss_at_delta"].values())) == 1
    an = S.analyze(pb, wide)
    assert an["permutation_points"] == [[0, 1]]
    assert an["certify"]["stationary"] is True


def test_flat_line_needs_equal_w_only():
    pb, pt = _load("diff_min")
    p = Point.make([["2/3", "2/3"], ["2/3", "2/3"]], [["1/5"], ["4/5"]], pb)
    fl = S.flat_line(pb, p, 0, 1)
    assert fl["flat"] and not fl["permutation_point"]


# ---------------------------------------------------------------------------------------------
# Hessian
# ---------------------------------------------------------------------------------------------

HESSIAN_POINTS = [
    ("diff_min", None),
    ("diff_min", ("split", dict(neuron=0, beta="1/2,1/2"))),
    ("diff_min", ("split", dict(neuron=0, beta="2,-1", gamma="1,3"))),
    ("diff_min", ("add_neuron", dict(w="dead"))),
    ("zero_not_escape", ("add_neuron", dict(w="zero"))),   # kinks everywhere, a = 0, D linear (= 0)
    ("vec_morse_bott_min", None),
    ("vec_morse_bott_min", ("split", dict(neuron=0, beta="1/2,1/2"))),
    ("vec_morse_bott_min", ("split", dict(neuron=0, beta="1/4,3/4", gamma="2,1"))),
]


@pytest.mark.parametrize("name,op", HESSIAN_POINTS)
def test_hessian_matches_ray_expansion(name, op):
    """c1 = g.v and c2 = v^T H v / 2 exactly, for random directions (docs/theory.md §2)."""
    pb, pt = _load(name)
    if op:
        pt = E.apply(pb, pt, op[0], **op[1]).after
    assert HS.second_order_obstructions(pb, pt) == []
    H = HS.hessian(pb, pt)
    g = HS.gradient(pb, pt)
    P = len(H)
    assert all(H[i][j] == H[j][i] for i in range(P) for j in range(P))
    rng = random.Random(P)
    for _ in range(6):
        v = _random_direction(P, rng)
        c1, c2 = _ray_c1_c2(pb, pt, v)
        assert c1 == sum((a * b for a, b in zip(g, v)), fmpq(0))
        assert c2 == LA.quad(H, v) / 2


def _descartes_inertia(H):
    """Exact inertia from the characteristic polynomial (real-rooted: Descartes' rule is exact)."""
    P = len(H)
    cp = fmpq_mat(P, P, [v for r in H for v in r]).charpoly()
    co = [cp[i] for i in range(P + 1)]                  # low to high
    zero = next(i for i, c in enumerate(co) if c != 0)

    def changes(cs):
        s = [c for c in cs if c != 0]
        return sum(1 for a, b in zip(s, s[1:]) if (a > 0) != (b > 0))
    pos = changes(co)
    neg = changes([c * (-1) ** i for i, c in enumerate(co)])
    return pos, neg, zero


@pytest.mark.parametrize("name,op", HESSIAN_POINTS)
def test_inertia_cross_check(name, op):
    pb, pt = _load(name)
    if op:
        pt = E.apply(pb, pt, op[0], **op[1]).after
    H = HS.hessian(pb, pt)
    inn = HS.inertia(H)
    assert (inn["positive"], inn["negative"], inn["zero"]) == _descartes_inertia(H)
    assert inn["zero"] == len(H) - LA.mat_rank(H, len(H))


def test_kernel_split_at_scalar_permutation_point():
    # width 2, both copies active on every data point: the network is linear on the data, so
    # L depends on v = a1 w1 + a2 w2 only: rank 2, kernel 4 = 2 rescalings + 1 flat line + 1 more
    # (moving w1, w2 against each other with v fixed)
    pb, pt = _load("diff_min")
    wide = E.split(pb, pt, 0, "1/2,1/2").after
    h = SO.hessian_analysis(pb, wide, True)
    assert h["available"] and h["gradient_zero"]
    assert (h["size"], h["rank"], h["zero_eigenvalues"]) == (6, 2, 4)
    assert h["kernel_split"] == {"rescaling": 2, "flat_lines": 1, "dead_neurons": 0, "rest": 1}
    assert h["inertia"] == {"positive": 2, "negative": 0, "zero": 4}
    assert "second_order_saddle" not in h


def test_kernel_split_with_dead_neuron():
    pb, pt = _load("diff_min")
    wide = E.add_neuron(pb, E.split(pb, pt, 0, "1/2,1/2").after, "dead").after
    h = SO.hessian_analysis(pb, wide, True)
    # the dead neuron: its d + k = 3 coordinates are all flat (its rescaling is counted there)
    assert h["kernel_split"] == {"rescaling": 2, "flat_lines": 1, "dead_neurons": 3, "rest": 1}


def test_not_twice_differentiable_at_kinks():
    pb, pt = _load("kink_min")
    h = SO.hessian_analysis(pb, pt)
    assert not h["available"] and "a_j != 0" in h["reasons"][0]
    wide = E.add_neuron(pb, pt, "zero").after
    h = SO.hessian_analysis(pb, wide)
    assert not h["available"]
    assert any("hinge" in r for r in h["reasons"])


def test_vector_output_morse_bott_min_splits_into_second_order_saddle():
    """FINDING (docs/theory.md §7 says replication with all beta > 0 keeps local minimality):

    vec_morse_bott_min (k = 2, w = (1,1), a = (1,0), residuals e = (0,2), (0,0), (0,-1)) is stationary
    with D_j = u (1,-1)^T / 3 != 0 on the whole (flat) set, so neuron 0 is an escape neuron with a != 0 and
    the certifier says inconclusive.  It is a local minimum: no kinks, gradient 0, Hessian PSD with kernel
    = the rescaling direction (Morse-Bott).  Its replication with beta = (1/2, 1/2) is a SADDLE: the flat
    line (a_0 + delta, a_1 - delta) with delta = (0, 1) is not in the Hessian kernel, so v - H v has
    v^T H v < 0 and the exact ray polynomial is -4/9 t^2 + 4/27 t^4."""
    pb, pt = _load("vec_morse_bott_min")
    base = certify(pb, pt)
    # first order: inconclusive (escape neuron with a != 0); the certifier's Morse-Bott test proves it
    assert base.verdict == "local_min" and base.escape_neurons == [0] and "morse_bott" in base.certificate["evidence"]
    assert require_valid(base.certificate) == "local_min"
    h = SO.hessian_analysis(pb, pt, True)
    assert h["inertia"] == {"positive": 3, "negative": 0, "zero": 1}
    assert h["kernel_split"]["rescaling"] == 1 and h["zero_eigenvalues"] == 1
    assert "morse_bott_local_min" in h
    wide = E.split(pb, pt, 0, "1/2,1/2").after
    res = certify(pb, wide)
    # the certifier now proves it too: a second-order descent ray, re-checked independently
    assert res.verdict == "saddle" and "second_order" in res.certificate["evidence"]
    assert require_valid(res.certificate) == "saddle"
    h = SO.hessian_analysis(pb, wide, True)
    assert h["inertia"]["negative"] == 1
    assert h["not_in_kernel"]["flat_lines"] == [[0, 1, 1]]
    so = h["second_order_saddle"]
    assert so["polynomial"] == ["0", "0", "-4/9", "0", "4/27"]
    assert fmpq(*map(int, so["loss_at_t"].split("/"))) < fmpq(5, 6)
    # replication with unequal betas: still a saddle
    wide = E.split(pb, pt, 0, "1/4,3/4", "2,1").after
    assert "second_order_saddle" in SO.hessian_analysis(pb, wide, True)


def test_scalar_split_of_differentiable_min_has_no_negative_curvature():
    # scalar output: Lin_j = 0 at a differentiable stationary point, so every flat line is in the kernel
    pb, pt = _load("diff_min")
    for betas in ("1/2,1/2", "2,-1", "1/3,1/3,1/3"):
        h = SO.hessian_analysis(pb, E.split(pb, pt, 0, betas).after, True)
        assert h["inertia"]["negative"] == 0 and not h["not_in_kernel"]["flat_lines"]


# ---------------------------------------------------------------------------------------------
# counting
# ---------------------------------------------------------------------------------------------

def test_formulas():
    assert [S.stirling2(5, k) for k in range(6)] == [0, 1, 15, 25, 10, 1]
    for r in range(1, 8):
        assert S.T_formula(r, r + 1) == math.factorial(r + 2) // 2
        assert S.T_formula(r, r) == math.factorial(r) == S.G_formula(r, r)
    assert S.T_formula(1, 4) == 37 and S.T_formula(2, 4) == 62 and S.G_formula(2, 4) == 14


def test_enumeration_matches_formulas_up_to_width_5():
    for r in range(1, 6):
        for m in range(r, 6):
            groups = S.enumerate_groupings(r, m, True)
            assert len(groups) == S.T_formula(r, m), (r, m)
            assert len([g for g in groups if all(isinstance(v, int) for v in g)]) == S.G_formula(r, m)
            assert len(S.enumerate_groupings(r, m, False)) == S.G_formula(r, m)


def test_count_table_realisations():
    tab = S.count_table(4, realise_up_to=4)
    assert not tab["findings"]
    assert all(c["match"] for c in tab["T_r_r_plus_1"])
    for row in tab["rows"]:
        assert row["T_match"] and row["G_match"]
        assert row["T_realised_zero_loss"] == row["T_enumerated"]
        assert row["T_realised_distinct"] == row["T_enumerated"]
        assert row["G_realised_stationary"] == row["G_enumerated"]
        a, b = row["zero_neuron_families_stationary"].split(" ")[0].split("/")
        assert a == b


def test_grouping_sets_are_distinct_but_intersect():
    """The T(r*, m) sets are distinct (a generic point of one lies in no other) but not disjoint:
    (w1, a1), (w1, 0) lies in both 'slots 0, 1 replicate neuron 0' and 'slot 1 is a zero-output
    singleton'. So T counts affine subspaces (cones for ReLU), not connected components."""
    pb, pt = S.teacher_problem(1)
    W0, A0 = pt.W.tolist(), pt.A.tolist()
    p = Point.make([W0[0], W0[0]], [A0[0], [0]], pb)
    assert S.in_grouping(p, (0, 0), W0, A0) and S.in_grouping(p, (0, ("z", 0)), W0, A0)
    assert not S.in_grouping(p, (("z", 0), 0), W0, A0)


def test_local_min_problem_is_a_local_min():
    for r in (1, 2, 3):
        pb, pt = S.local_min_problem(r)
        res = certify(pb, pt)
        assert res.verdict == "local_min" and res.loss > 0


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def run(*args):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300)


def test_cli_symmetry_text_and_json(tmp_path):
    wide = str(tmp_path / "w.json")
    assert run("embed", os.path.join(EX, "vec_morse_bott_min.json"), "--split", "0", "--beta", "1/2,1/2",
               "-o", wide).returncode == 0
    r = run("symmetry", wide)
    assert r.returncode == 0, r.stderr
    assert "[permutation point]: exactly flat" in r.stdout
    assert "SECOND-ORDER SADDLE" in r.stdout
    assert "zero eigenvalues 3 = rescaling 2 + flat lines 1 + dead neurons 0 + rest 0" in r.stdout
    r = run("symmetry", wide, "--json")
    out = json.loads(r.stdout)
    assert out["permutation_points"] == [[0, 1]] and out["hessian"]["inertia"]["negative"] == 1


def test_cli_symmetry_count():
    r = run("symmetry", "--count", "--max-width", "4")
    assert r.returncode == 0, r.stderr
    assert "T(r, r+1) = (r+2)!/2: r=1: 3 vs 3 ok" in r.stdout
    assert "enumeration matches T and G" in r.stdout
    assert "False" not in r.stdout.split("T(r, r+1)")[0]


def test_cli_symmetry_bad_input(capsys):
    from relucert.cli import main
    assert main(["symmetry"]) == 2
    assert main(["symmetry", "--count", "--max-width", "9"]) == 2
    assert main(["symmetry", os.path.join(EX, "kink_min.json"), "--count"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("error: ") for e in err)
