"""Related-literature claims (issue 16, part b): Lapedes-Farber bumps and Brea et al. permutation points.

Hand-computed cases first (a 1-D trapezoid, a 2-D bump, a tiny deep polynomial network's exact
Hessian and its kernel), then every claim of the two modules at a small budget with its expected outcome.
"""
from __future__ import annotations

import random

import pytest
from flint import fmpq

from relucert.claims import related_bumps as rb
from relucert.claims import related_permutation as rp
from relucert.claims.api import select
from relucert.claims.instance import Instance
from relucert.claims.runner import run_claims
from relucert.claims.source import RandomSource

Q = fmpq


# ---------------------------------------------------------------------------------------------
# bumps by hand
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("am", [Q(0), Q(1, 4), Q(-1)])
def test_trapezoid_by_hand(am):
    """[a, b] = [0, 1], e = 1/4: 0 outside, ramps on [0, 1/4] and [3/4, 1], 1 on [1/4, 3/4]."""
    net = rb.bump_net([Q(0)], [Q(1)], Q(1, 4), Q(1), am)
    hand = {Q(-1): 0, Q(0): 0, Q(1, 16): Q(1, 4), Q(1, 8): Q(1, 2), Q(1, 4): 1, Q(1, 2): 1, Q(3, 4): 1,
            Q(7, 8): Q(1, 2), Q(1): 0, Q(5): 0}
    for x, want in hand.items():
        assert net([x]) == [Q(want)], x


def test_trapezoid_formula_terms_by_hand():
    """Leaky rho (1, 1/4) at x = 1/8: rho(1/8) - rho(-1/8) - rho(-5/8) + rho(-7/8) = 3/32, and
    c1 = 1/((1 - 1/4) 1/4) = 16/3, so T = 1/2; B = c2 (rho(1/2) - rho(-1/2)) - c2/4 = 4/3 * 5/8 - 1/3 = 1/2."""
    net = rb.bump_net([Q(0)], [Q(1)], Q(1, 4), Q(1), Q(1, 4))
    z1, z2 = net.preacts([Q(1, 8)])
    assert z1 == [Q(1, 8), Q(-1, 8), Q(-5, 8), Q(-7, 8)]
    assert z2 == [Q(1, 2), Q(-1, 2)]             # S and S - 1 with S = T = 1/2
    assert net([Q(1, 8)]) == [Q(1, 2)]


def test_two_dimensional_bump_by_hand():
    """Box [0,1]^2, e = 1/4: 1 at the centre, 1/2 half way up one ramp, 0 where both ramps are at 1/2
    (S = 1/2 + 1/2 - 1 = 0), 1/4 at (3/16, 1/2)."""
    net = rb.bump_net([Q(0), Q(0)], [Q(1), Q(1)], Q(1, 4), Q(1), Q(0))
    assert net([Q(1, 2), Q(1, 2)]) == [1]
    assert net([Q(1, 8), Q(1, 2)]) == [Q(1, 2)]
    assert net([Q(1, 8), Q(1, 8)]) == [0]
    assert net([Q(1, 16), Q(1, 2)]) == [Q(1, 4)]
    assert net([Q(3, 2), Q(1, 2)]) == [0]


def test_indicator_claim_rejects_a_wrong_bump():
    """A bump with the threshold off by one (S = sum T_j, no - (d-1)) is 1 on the margins' cross:
    the exact cell check finds it."""
    lo, hi, e = [Q(0), Q(0)], [Q(1), Q(1)], Q(1, 4)
    net = rb.bump_net(lo, hi, e, Q(1), Q(0))
    net.bs[1] = [Q(0), Q(-1)]
    inst = Instance(kind="lapedes_farber_bump", meta={"lo": lo, "hi": hi, "e": e, "network": net.to_json()})
    out = rb.bumps_indicator.claim.evaluate(inst)
    assert out.status == "counterexample", out.message


def test_bump_sum_is_zero_on_cell_boundaries_and_g_at_centres():
    g = rb.Target("affine", Q(2), [Q(1)], {}, Q(0), [Q(0)], Q(0))
    M = 2
    vals = {(i,): g([Q(2 * i + 1, 2 * M)]) for i in range(M)}
    net = rb.bump_sum_net(M, 1, Q(1, 8), vals, Q(1), Q(1, 4))
    assert net([Q(1, 2)]) == [0, 0]                    # boundary: F = D = 0, g = 5/2
    assert net([Q(1, 4)]) == [Q(9, 4), 1]              # centre of cell 0: F = g(1/4)
    assert net([Q(3, 4)]) == [Q(11, 4), 1]


def test_affine_enclosure_is_sound():
    """Whenever the box test accepts a (sharpened) bound, the bound holds at random points of the box."""
    rng = random.Random(3)
    inst = rb.bump_sum_instance(RandomSource("enclosure"), dims=(2,))
    net, g, d, M, h, e, lip = rb._setup_sum(inst)
    accepted = 0
    for _ in range(40):
        lo = [Q(rng.randint(0, 90), 100) for _ in range(d)]
        box = rb.Box(lo, [v + Q(rng.randint(1, 10), 100) for v in lo])
        for kind, scale in (("corrected", Q(1, 3)), ("naive", Q(1, 2))):
            if rb._box_ok(kind, net, g, box, lip * scale, h, d):
                accepted += 1
                for _ in range(15):
                    x = [a + (b - a) * Q(rng.randint(0, 64), 64) for a, b in zip(box.lo, box.hi)]
                    assert rb._point_ok(kind, net, g, x, lip * scale, h, d)[0], (box, x)
    assert accepted > 0


def test_rigorous_check_finds_violations_of_a_too_strong_bound():
    g = rb.Target("affine", Q(0), [Q(1), Q(1)], {}, Q(0), [Q(0), Q(0)], Q(0))
    vals = {(i, j): g([Q(2 * i + 1, 4), Q(2 * j + 1, 4)]) for i in range(2) for j in range(2)}
    net = rb.bump_sum_net(2, 2, Q(1, 8), vals, Q(1), Q(0))
    lip = rb.upper_sqrt(g.lip_squared())
    assert lip * lip >= 2
    st, _, _ = rb.verify_bound("corrected", net, g, 2, 2, Q(1, 2), Q(1, 8), lip)
    assert st == "held"
    st, _, x = rb.verify_bound("corrected", net, g, 2, 2, Q(1, 2), Q(1, 8), lip / 4)
    assert st == "violated" and x


def test_upper_sqrt():
    assert rb.upper_sqrt(Q(2)) == Q(23, 16)
    assert rb.upper_sqrt(Q(4)) == 2


# ---------------------------------------------------------------------------------------------
# permutation points by hand
# ---------------------------------------------------------------------------------------------

def _tiny(r: int) -> tuple:
    """sigma(z) = z + z^2/2; x in R, widths (2, 1): layer 1 two equal neurons (w, b) = (1, 0), layer 2
    weights (1/2, 1/2) and bias 0, output v = 1, c = 0 (a permutation point); one data point x = 0, y = -r."""
    net = rp.PolyNet([[[Q(1)], [Q(1)]], [[Q(1, 2), Q(1, 2)]]], [[Q(0), Q(0)], [Q(0)]], [[Q(1)]], [Q(0)], "quad")
    return net, [[Q(0)]], [[Q(-r)]]


def test_tiny_network_hessian_by_hand():
    """At x = 0 the weights w1, w2 do not enter; f = 0, J = (0, 0 | 1/2, 1/2 | 0, 0, 1 | 0, 1) in the order
    (w1, w2, b1, b2, u1, u2, beta, v, c).  With residual r = 1, H = J^T J + Hess f; by hand (b1, b2, u1, u2,
    beta, v, c):
        b1: 1, 1/2, 1, 0, 1, 1/2, 1/2      u1: 1, 0, 0, 0, 0, 0, 0      beta: 1, 1, 0, 0, 2, 1, 1
        b2: 1/2, 1, 0, 1, 1, 1/2, 1/2      u2: 0, 1, 0, 0, 0, 0, 0      v: 1/2, 1/2, 0, 0, 1, 0, 0
                                                                        c: 1/2, 1/2, 0, 0, 1, 0, 1
    The u-rows are unit vectors on b, so rank = 4 + rank [[2,1,1],[1,0,0],[1,0,1]] = 4 + 3 (det -1):
    the kernel is spanned by the two w directions (nullity 2)."""
    net, X, Y = _tiny(1)
    L, g, H = rp.derivatives(net, X, Y)
    assert L == Q(1, 2)
    assert [g[i, 0] for i in range(9)] == [0, 0, Q(1, 2), Q(1, 2), 0, 0, 1, 0, 1]
    hand = [[1, Q(1, 2), 1, 0, 1, Q(1, 2), Q(1, 2)], [Q(1, 2), 1, 0, 1, 1, Q(1, 2), Q(1, 2)],
            [1, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 2, 1, 1],
            [Q(1, 2), Q(1, 2), 0, 0, 1, 0, 0], [Q(1, 2), Q(1, 2), 0, 0, 1, 0, 1]]
    for i in range(9):
        for j in range(9):
            want = 0 if i < 2 or j < 2 else hand[i - 2][j - 2]
            assert H[i, j] == want, (i, j)
    assert 9 - H.rank() == 2


def test_tiny_network_zero_residual_kernel_by_hand():
    """y = f(0) = 0: a critical permutation point with H = J^T J (one data point), so rank 1 and
    nullity 8 >= n_2 = 1; the plateau direction (u1, u2) = (1, -1) is in the kernel."""
    net, X, Y = _tiny(0)
    L, g, H = rp.derivatives(net, X, Y)
    assert L == 0 and all(v == 0 for v in g.entries())
    assert H.rank() == 1
    inc, out = rp.directions(net, 1, 0)
    assert len(out) == 1 and all(v == 0 for v in (H * rp._vec(out[0])).entries())


def test_split_is_critical_and_loss_constant():
    inst = rp.permutation_point(RandomSource("split"), dims=(2,), acts=("exp3",), outs=(2,), shapes=(((3, 2), 1),))
    red, k, m, lam, X, Y = rp._setup(inst)
    L0, g0, _ = rp.derivatives(red, X, Y, order=1)
    assert all(v == 0 for v in g0.entries())
    for lm in (Q(1, 2), Q(1, 5)):
        L1, g1, _ = rp.derivatives(rp.split(red, k, m, lm), X, Y, order=1)
        assert L1 == L0 and all(v == 0 for v in g1.entries())


def test_exact_hessian_against_interpolation():
    """v^T H v and grad . v equal the exact Taylor coefficients of t -> L(theta + t v) (polynomial in t,
    degree <= 26 here), found by exact interpolation."""
    from flint import fmpq_mat
    inst = rp.permutation_point(RandomSource("interp"), dims=(1,), widths=(2, 2), acts=("exp3",), outs=(1,),
                                max_params=30)
    red, k, m, lam, X, Y = rp._setup(inst)
    net = rp.split(red, k, m, Q(1, 3))
    _, g, H = rp.derivatives(net, X, Y)
    th = net.flat()
    rng = random.Random(1)
    v = [Q(rng.randint(-2, 2), rng.randint(1, 3)) for _ in th]

    def loss(t):
        nn = rp._unflat(net, [a + t * b for a, b in zip(th, v)])
        return sum((sum(((p - y) ** 2 for p, y in zip(nn(x), yy)), Q(0)) for x, yy in zip(X, Y)), Q(0)) / 2

    ts = [Q(i) for i in range(-14, 15)]
    V = fmpq_mat([[t ** j for j in range(len(ts))] for t in ts])
    c = V.solve(fmpq_mat(len(ts), 1, [loss(t) for t in ts]))
    assert c[1, 0] == sum((g[i, 0] * v[i] for i in range(len(v))), Q(0))
    assert 2 * c[2, 0] == rp.quad(H, v)


def test_permutation_count_by_hand():
    """One hidden layer of width 3: the reduced network has neurons A, B; duplicating A gives the
    multiset {A, A, B} with 3!/2 = 3 orderings, likewise for B: 6 points = (3-1)/2 x 3! minima.
    Width 4, K = 2: both of the 2 reduced neurons duplicated, 4!/2^2 = 6 points."""
    rng = random.Random(0)
    assert len(rp.permutation_points([3], 1, 1, rng)) == 6
    assert len(rp.permutation_points([4], 1, 2, rng)) == 6
    assert len(rp.permutation_points([2, 3], 2, 1, rng)) == 2 * 6
    assert len(rp.permutation_points([2, 3], 1, 1, rng)) == 1 * 6


# ---------------------------------------------------------------------------------------------
# the claims at a small budget
# ---------------------------------------------------------------------------------------------

CASES = [("bumps-indicator", 6, "hold"), ("bumps-sum-naive-bound", 6, "counterexample"),
         ("bumps-sum-corrected-bound", 6, "hold"), ("brea-permutation-critical", 5, "hold"),
         ("brea-permutation-plateau", 5, "hold"), ("brea-hessian-zero-eigenvalues", 6, "counterexample"),
         ("brea-hessian-kernel-corrected", 5, "hold"), ("brea-permutation-count", 8, "hold")]


@pytest.mark.parametrize("name,n,expect", CASES)
def test_claim_small_budget(name, n, expect, tmp_path):
    (c,) = [c for c in select([name]) if c.name == name]
    assert c.expect == expect and c.statement and c.theory
    rep = run_claims([c], instances=n, seed=0, out_dir=str(tmp_path), do_shrink=False)[0]
    assert rep.errors == 0, rep.error_examples
    assert rep.instances == n
    if expect == "hold":
        assert rep.counterexamples == 0, rep.examples[:1]
        assert rep.held > 0
    else:
        assert rep.counterexamples > 0
        assert list((tmp_path / name).glob("seed0-*.json"))


def test_saved_counterexample_replays(tmp_path):
    from relucert.claims.runner import replay
    (c,) = [c for c in select(["bumps-sum-naive-bound"]) if c.name == "bumps-sum-naive-bound"]
    run_claims([c], instances=4, seed=0, out_dir=str(tmp_path), do_shrink=False)
    files = sorted((tmp_path / "bumps-sum-naive-bound").glob("seed0-*.json"))
    assert files
    _, _, out = replay(str(files[0]))
    assert out.status == "counterexample"
