"""Trades between groups in local_min ball certificates (docs/theory.md §10.6 (g)).

- The campaign case tests/data/ball_trades_run25.json (two linear blocks whose sign vectors differ at
  one data point, a neuron whose pattern differs from one of them at another) is certified local_min
  with one output and one input trade; an mpmath oracle of this file (Newton at 80 digits on the
  certificate's reduced slice, from the centre, with its own closed-form gradient and Hessian of the
  loss) finds a point in the box whose FULL gradient in (W, A) vanishes, and 2000 random perturbations
  of all parameters (relative 1e-6 .. 1e-3, inside the pattern margin) never lower the mpmath loss.
- Two small instances built here (1-D input with a bias column): one needs only an output trade, the
  other only an input trade; a rank-1 neuron with k >= 2 outputs makes both stationary points
  irrational.  Both are certified local_min, both are refused without the trades, and the oracle
  confirms them.
- Forged or mutated ``trades`` evidence is rejected, each for its own reason.
"""
import copy
import random
from fractions import Fraction as Q
from pathlib import Path

import mpmath as mp
import pytest

from relucert import certify
from relucert.check import check_certificate
from relucert.check import ball_jacobian_at_center
from relucert.core.problem import Point, Problem
from relucert.decide import ball as ballmod
from relucert.decide.ball import ball_certificate
from relucert.io import load_json

DATA = Path(__file__).resolve().parent / "data" / "ball_trades_run25.json"


# --- the oracle: plain mpmath, reading only the certificate's JSON -------------------------------
def _mpq(v):
    v = Q(v)
    return mp.mpf(v.numerator) / v.denominator


def _data(cert):
    pb = cert["problem"]
    X = [[_mpq(v) for v in row] for row in pb["X"]]
    Y = [[_mpq(v) for v in row] for row in pb["Y"]]
    am = _mpq(pb["activation"]["alpha_minus"])
    assert Q(pb["activation"]["alpha_plus"]) == 1 and pb["loss"] == "half_mean"
    return X, Y, am


def _loss(X, Y, am, W, A):
    """(1/2n) sum_i |sum_j a_j sigma(w_j . x_i) - y_i|^2 with the real (piecewise) activation."""
    k = len(Y[0])
    cols = [[a[c] for a in A] for c in range(k)]
    tot = []
    for x, y in zip(X, Y):
        hs = []
        for w in W:
            z = mp.fdot(w, x)
            hs.append(z if z > 0 else am * z)
        for c in range(k):
            e = mp.fdot(cols[c], hs) - y[c]
            tot.append(e * e)
    return mp.fsum(tot) / (2 * len(X))


def _signs(X, W):
    return [[mp.sign(mp.fdot(w, x)) for w in W] for x in X]


def _grad_hess(X, Y, am, W, A, free):
    """Full gradient (W row-major, then A row-major) and the Hessian restricted to the index list
    ``free``, of the loss on the current strict pattern (closed forms, slope s_ij fixed)."""
    n, m, d, k = len(X), len(W), len(X[0]), len(Y[0])
    P = m * (d + k)
    widx = lambda j, q: j * d + q           # noqa: E731
    aidx = lambda j, c: m * d + j * k + c   # noqa: E731
    g = [mp.mpf(0)] * P
    H = [[mp.mpf(0)] * len(free) for _ in free]
    pos = {p: a for a, p in enumerate(free)}
    for x, y in zip(X, Y):
        z = [mp.fsum(wq * xq for wq, xq in zip(w, x)) for w in W]
        s = [mp.mpf(1) if zz > 0 else am for zz in z]
        assert all(zz != 0 for zz in z)
        f = [mp.fsum(A[j][c] * s[j] * z[j] for j in range(m)) for c in range(k)]
        E = [f[c] - y[c] for c in range(k)]
        # d f_c / d p for every parameter p (a sparse row per output c)
        rows = []
        for c in range(k):
            r = {}
            for j in range(m):
                for q in range(d):
                    r[widx(j, q)] = A[j][c] * s[j] * x[q]
                r[aidx(j, c)] = s[j] * z[j]
            rows.append(r)
        for c in range(k):
            for p, v in rows[c].items():
                g[p] += E[c] * v
            fr = [(pos[p], v) for p, v in rows[c].items() if p in pos]
            for a, va in fr:
                Ha = H[a]
                for b, vb in fr:
                    Ha[b] += va * vb
            # second derivatives of f_c: d^2 f_c / dw_jq da_jc = s_j x_q
            for j in range(m):
                b = pos.get(aidx(j, c))
                if b is None:
                    continue
                for q in range(d):
                    a = pos.get(widx(j, q))
                    if a is not None:
                        v = E[c] * s[j] * x[q]
                        H[a][b] += v
                        H[b][a] += v
    return [v / n for v in g], [[v / n for v in row] for row in H]


def _slice(cert):
    """The certificate's reduced slice as read by this oracle: (free parameter indices in the
    certificate's unknown order, W and A at the point).  Only the identity basis, gamma = beta = 1."""
    ev = cert["evidence"]
    W = [[_mpq(v) for v in row] for row in cert["point"]["W"]]
    A = [[_mpq(v) for v in row] for row in cert["point"]["A"]]
    m, d, k = len(W), len(W[0]), len(A[0])
    fixed_out = {g for gr in ev.get("gl_groups", []) for g in gr.get("fixed_outputs", [])}
    fixed_out |= set(ev.get("trades", {}).get("fixed", []))
    extra = {it["cluster"]: it["fixed"] for it in ev.get("trades", {}).get("inputs", [])}
    free = []
    for g, cl in enumerate(ev["clusters"]):
        assert cl["basis"] == [["1" if a == b else "0" for b in range(d)] for a in range(d)]
        assert cl["gamma"] == ["1"] and cl["beta"] == ["1"] and len(cl["neurons"]) == 1
        j = cl["neurons"][0]
        fx = set(cl["gauge"]) if isinstance(cl["gauge"], list) else {cl["gauge"]}
        if g in extra:
            fx.add(extra[g])
        free += [j * d + q for q in range(d) if q not in fx]
        if g not in fixed_out:
            free += [m * d + j * k + c for c in range(k)]
    return free, W, A


def _unflat(theta, m, d, k):
    return ([theta[j * d:(j + 1) * d] for j in range(m)],
            [theta[m * d + j * k:m * d + (j + 1) * k] for j in range(m)])


def _newton(X, Y, am, W, A, free, steps=12, tol=None):
    """Newton on the gradient restricted to ``free`` (the other parameters held)."""
    m, d, k = len(W), len(W[0]), len(A[0])
    theta = [v for w in W for v in w] + [v for a in A for v in a]
    tol = tol or mp.mpf(10) ** (-(mp.mp.dps - 8))
    for _ in range(steps):
        Wc, Ac = _unflat(theta, m, d, k)
        g, H = _grad_hess(X, Y, am, Wc, Ac, free)
        step = mp.lu_solve(mp.matrix(H), mp.matrix([g[p] for p in free]))
        for a, p in enumerate(free):
            theta[p] -= step[a]
        if max(abs(v) for v in step) < tol:
            break
    Wc, Ac = _unflat(theta, m, d, k)
    g, _ = _grad_hess(X, Y, am, Wc, Ac, [])
    return Wc, Ac, g


def _oracle_in_box(cert):
    """Newton at 80 digits from the centre: the zero lies in the box, its full gradient vanishes and
    the pattern is the centre's.  Returns (X, Y, am, W*, A*)."""
    ev = cert["evidence"]
    with mp.workdps(80):
        X, Y, am = _data(cert)            # the data exactly enough: converted at 80 digits
        free, W0, A0 = _slice(cert)
        assert len(free) == len(ev["center"])
        m, d = len(W0), len(W0[0])
        theta0 = [v for w in W0 for v in w] + [v for a in A0 for v in a]
        assert [theta0[p] for p in free] == [_mpq(c) for c in ev["center"]]   # the centre is the point
        W, A, g = _newton(X, Y, am, W0, A0, free)
        theta = [v for w in W for v in w] + [v for a in A for v in a]
        rho = _mpq(ev["radius"])
        assert max(abs(theta[p] - theta0[p]) for p in free) < rho
        assert all(theta[p] == theta0[p] for p in range(len(theta)) if p not in free)
        assert _signs(X, W) == _signs(X, W0)
        gmax = max(abs(v) for v in g)
        assert gmax < mp.mpf(10) ** -60, gmax            # stationary in ALL of (W, A), fixed ones included
        # the rounding itself is not stationary (the certificate is about the exact zero)
        g0, _ = _grad_hess(X, Y, am, W0, A0, [])
        assert max(abs(v) for v in g0) > mp.mpf(10) ** -70
    return X, Y, am, W, A


def _perturbations(X, Y, am, W0, A0, count, seed):
    """Random perturbations of every parameter, relative scale 10^U(-6, -3), shrunk until the
    activation pattern is unchanged; the mpmath loss never drops.  Returns the number that raised it."""
    rng = random.Random(seed)
    raised = 0
    Xf, Wf = [[float(v) for v in x] for x in X], [[float(v) for v in w] for w in W0]
    zf = [[sum(a * b for a, b in zip(w, x)) for w in Wf] for x in Xf]
    with mp.workdps(30):
        L0 = _loss(X, Y, am, W0, A0)
        for _ in range(count):
            s = 10 ** rng.uniform(-6, -3)
            for _shrink in range(6):
                gw = [[s * rng.gauss(0, 1) for _ in w] for w in W0]
                # the pattern (in floats: every |w . x| here is > 1e-3, far above float rounding)
                if all(abs(sum(wq * gq * xq for wq, gq, xq in zip(w, g, x))) < 0.5 * abs(z)
                       for x, zr in zip(Xf, zf) for w, g, z in zip(Wf, gw, zr)):
                    break
                s /= 4
            else:
                raise AssertionError("could not stay inside the pattern margin")
            W = [[v * (1 + gq) for v, gq in zip(w, g)] for w, g in zip(W0, gw)]
            A = [[v * (1 + s * rng.gauss(0, 1)) for v in a] for a in A0]
            if _ < 20:                  # the float test agrees with the exact signs
                assert _signs(X, W) == _signs(X, W0)
            dl = _loss(X, Y, am, W, A) - L0
            assert dl > -mp.mpf(10) ** -26, dl
            raised += dl > mp.mpf(10) ** -26
    return raised


# --- (a) the campaign case ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def run25():
    pb, pt = load_json(str(DATA))
    cert, note = ball_certificate(pb, pt)
    return pb, pt, cert, note


def test_run25_is_a_checked_local_min_with_both_trades(run25):
    pb, pt, cert, note = run25
    assert cert is not None and cert["verdict"] == "local_min", note
    res = check_certificate(cert)
    assert res.ok and res.verdict == "local_min", res.reasons
    tr = cert["evidence"]["trades"]
    assert len(tr["vectors"]) == len(tr["fixed"]) == 1 and len(tr["inputs"]) == 1
    assert "output trade" in note and "input trade" in note
    # the trade clusters fix every input coordinate; the input cluster is outside them
    ev = cert["evidence"]
    assert all(isinstance(ev["clusters"][g]["gauge"], list) and len(ev["clusters"][g]["gauge"]) == 2
               for g in tr["clusters"])
    g = tr["inputs"][0]["cluster"]
    assert g not in tr["clusters"] and isinstance(ev["clusters"][g]["gauge"], int)


def test_run25_oracle_stationary_in_the_box_and_perturbations(run25):
    _, _, cert, _ = run25
    X, Y, am, W, A = _oracle_in_box(cert)
    raised = _perturbations(X, Y, am, W, A, 2000, seed=25)
    assert raised > 1900, raised


# --- (b) instances built to need one kind of trade ---------------------------------------------
XS = [Q(v, 2) for v in range(-5, 6)]          # 11 points on a line, with a bias column
X2 = [[x, Q(1)] for x in XS]
G1 = [[Q(1), Q(-1, 5)], [Q(2), Q(-3, 5)]]       # kinks 0.2, 0.3: active from x = 1/2 on
G2 = [[Q(1), Q(-7, 10)], [Q(3, 2), Q(-6, 5)]]   # kinks 0.7, 0.8: active from x = 1 on (differs at 1/2)
P_ = [[Q(3, 2), Q(3, 8)]]                       # kink -1/4: active from x = 0 on (differs from G1 at 0)
QN = [[Q(-1), Q(-6, 5)]]                        # active for x <= -3/2: a rank-1 neuron


def _relu_like(z, am):
    return z if z > 0 else am * z


def _instance(kind):
    """(problem, point): the 40-digit rounding of the stationary point (mpmath Newton on a slice of
    this file's choosing, from the teacher) of teacher-plus-noise targets."""
    if kind == "output":
        am, k = Q(0), 2
        W = G1 + G2 + QN
        AT = [[1, 2], [-1, 1], [2, -1], [1, 1], [1, -2]]
        fixW = {(j, q) for j in range(4) for q in range(2)} | {(4, 1)}
        fixA = {3}
    else:
        am, k = Q(1, 10), 3
        W = G1 + P_ + QN
        AT = [[1, 2, -1], [-1, 1, 2], [2, -1, 1], [1, -2, 1]]
        fixW = {(j, q) for j in range(3) for q in range(2)} | {(3, 1)}
        fixA = set()
    m = len(W)
    Y = []
    for i, x in enumerate(X2):
        hs = [_relu_like(w[0] * x[0] + w[1] * x[1], am) for w in W]
        Y.append([sum(Q(a[c]) * h for a, h in zip(AT, hs)) + Q((3 * i + 5 * c) % 7 - 3, 20) for c in range(k)])
    with mp.workdps(80):
        Xm = [[_mpq(v) for v in x] for x in X2]
        Ym = [[_mpq(v) for v in y] for y in Y]
        free = [j * 2 + q for j in range(m) for q in range(2) if (j, q) not in fixW]
        free += [m * 2 + j * k + c for j in range(m) if j not in fixA for c in range(k)]
        Wm, Am, g = _newton(Xm, Ym, _mpq(am), [[_mpq(v) for v in w] for w in W], [[mp.mpf(v) for v in a] for a in AT],
                            free, steps=30)
        assert max(abs(v) for v in g) < mp.mpf(10) ** -60
        assert _signs(Xm, Wm) == _signs(Xm, [[_mpq(v) for v in w] for w in W])
        rnd = lambda v: str(Q(mp.nstr(v, 40)))   # noqa: E731
        pb = Problem.make([[str(v) for v in x] for x in X2], [[str(v) for v in y] for y in Y],
                          {"alpha_plus": "1", "alpha_minus": str(am)})
        # weights fixed on the slice are the teacher's rationals and stay exact
        Wr = [[str(W[j][q]) if (j, q) in fixW else rnd(Wm[j][q]) for q in range(2)] for j in range(m)]
        pt = Point.make(Wr, [[rnd(v) for v in a] for a in Am], pb)
    return pb, pt


@pytest.fixture(scope="module", params=["output", "input"])
def built(request):
    pb, pt = _instance(request.param)
    cert, note = ball_certificate(pb, pt)
    return request.param, pb, pt, cert, note


def test_built_instances_are_certified_with_the_one_trade_they_need(built):
    kind, pb, pt, cert, note = built
    assert cert is not None and cert["verdict"] == "local_min", note
    assert check_certificate(cert).ok
    # the exact route cannot decide the rounding (the stationary point is irrational): only the ball can
    assert certify(pb, pt).verdict == "not_stationary"
    tr = cert["evidence"]["trades"]
    if kind == "output":
        assert tr["clusters"] == [0, 1, 2, 3] and len(tr["vectors"]) == len(tr["fixed"]) == 1
        assert tr["inputs"] == []
    else:
        assert tr["clusters"] == [0, 1] and tr["vectors"] == [] and tr["fixed"] == []
        assert [it["cluster"] for it in tr["inputs"]] == [2]      # the neuron P, never the rank-1 one
    X, Y, am, W, A = _oracle_in_box(cert)
    assert _perturbations(X, Y, am, W, A, 300, seed=7) > 280
    # the full Hessian at the oracle's zero: positive semidefinite with a kernel of exactly the flat
    # directions the slice removed (GL orbits, rescalings and the trades), the rest clearly positive
    m, d, k = len(W), len(W[0]), len(A[0])
    P, N = m * (d + k), len(cert["evidence"]["center"])
    with mp.workdps(80):
        _, H = _grad_hess(X, Y, am, W, A, list(range(P)))
        ev_ = sorted(mp.eigsy(mp.matrix(H), eigvals_only=True))
    assert all(abs(v) < mp.mpf(10) ** -50 for v in ev_[:P - N]), ev_[:P - N]
    assert ev_[P - N] > mp.mpf(10) ** -6, ev_[P - N]


def test_built_instances_are_refused_without_trades(built, monkeypatch):
    kind, pb, pt, cert, _ = built
    monkeypatch.setattr(ballmod, "_trades", lambda *a, **kw: (None, ""))
    # the constant-rank route (docs/theory.md §10.8) needs no named trade and certifies these too (see
    # test_the_constant_rank_route_certifies_them_without_trades); here it is off, to see the §10.6 route alone
    monkeypatch.setattr(ballmod, "rank_structure", lambda *a, **kw: (None, "constant-rank route off"))
    ev, _ = ballmod.min_structure(pb, pt)
    assert "trades" not in ev
    J = ball_jacobian_at_center(dict(copy.deepcopy(cert), evidence=ev))
    if kind == "output":
        # the output trade is a flat line of the slice everywhere: J is exactly singular
        assert _rank(J) < len(J)
    out, why = ball_certificate(pb, pt)
    assert out is None or out["verdict"] != "local_min", why


# --- (c) forgeries -------------------------------------------------------------------------------
def _rank(M):
    """Exact rank of a rational matrix (Gaussian elimination on Fractions)."""
    R = [[Q(v) for v in row] for row in M]
    rank, cols = 0, len(R[0]) if R else 0
    for c in range(cols):
        piv = next((i for i in range(rank, len(R)) if R[i][c] != 0), None)
        if piv is None:
            continue
        R[rank], R[piv] = R[piv], R[rank]
        for i in range(len(R)):
            if i != rank and R[i][c] != 0:
                f = R[i][c] / R[rank][c]
                R[i] = [a - f * b for a, b in zip(R[i], R[rank])]
        rank += 1
    return rank


def _rejected(cert, *words):
    res = check_certificate(cert)
    assert not res.ok, "forgery accepted"
    text = "; ".join(res.reasons)
    assert any(w in text for w in words), text


def _mut(cert, f):
    c = copy.deepcopy(cert)
    f(c["evidence"]["trades"], c["evidence"])
    return c


def test_forged_trades_are_rejected(run25):
    _, _, cert, _ = run25
    tr = cert["evidence"]["trades"]
    T, F = tr["clusters"], tr["fixed"][0]
    g = tr["inputs"][0]["cluster"]
    other = [h for h in T if h != F][0]
    single = [h for h, cl in enumerate(cert["evidence"]["clusters"])
              if isinstance(cl["gauge"], int) and h != g][0]
    blockR = [h for gr in cert["evidence"]["gl_groups"] for h in gr.get("fixed_outputs", [])][0]

    def bump(s, by=Q(1, 10 ** 9)):
        return str(Q(s) + by)

    # a vector that changes an output
    _rejected(_mut(cert, lambda t, e: t["vectors"][0].__setitem__(0, bump(t["vectors"][0][0]))), "changes the outputs")
    # a singular fixed block: the same (valid) vector twice, two fixed clusters
    _rejected(_mut(cert, lambda t, e: t.update(vectors=[t["vectors"][0]] * 2, fixed=[F, other])), "singular")
    # fixed clusters outside the trade clusters, repeated, or a bool
    _rejected(_mut(cert, lambda t, e: t.update(fixed=[g])), "fixed must be distinct clusters")
    _rejected(_mut(cert, lambda t, e: t.update(fixed=[blockR])), "fixed must be distinct clusters")
    _rejected(_mut(cert, lambda t, e: t.update(fixed=[F, F], vectors=[t["vectors"][0]] * 2)),
              "fixed must be distinct clusters")
    _rejected(_mut(cert, lambda t, e: t.update(fixed=[True])), "fixed must be distinct clusters")
    # one vector per fixed cluster
    _rejected(_mut(cert, lambda t, e: t.update(vectors=[])), "one vector per fixed cluster")
    # an input trade whose combination is wrong, or whose direction is
    _rejected(_mut(cert, lambda t, e: t["inputs"][0]["combination"].__setitem__(
        1, bump(t["inputs"][0]["combination"][1]))), "not absorbed")
    _rejected(_mut(cert, lambda t, e: t["inputs"][0]["direction"].__setitem__(0, bump(t["inputs"][0]["direction"][0]))),
              "not absorbed")
    # delta = 0: the zero direction is absorbed trivially (zeta = 0) but moves nothing
    _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(direction=["0", "0"], combination=["0"] * len(T))),
              "dependent on the columns")
    # t1 == t0, out of range, or a bool
    t0 = cert["evidence"]["clusters"][g]["gauge"]
    _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(fixed=t0)), "free basis index")
    _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(fixed=2)), "free basis index")
    _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(fixed=bool(1 - t0))), "free basis index")

    # a trade cluster with a free input coordinate (a single-gauge neuron with a zero coefficient)
    def add_single(t, e):
        t["clusters"] = T + [single]
        t["vectors"] = [t["vectors"][0] + ["0"]]
        t["inputs"][0]["combination"] = t["inputs"][0]["combination"] + ["0"]
    _rejected(_mut(cert, add_single), "every input coordinate fixed")

    # a trade cluster whose outputs a linear block already fixes
    def add_block(t, e):
        t["clusters"] = T + [blockR]
        t["vectors"] = [t["vectors"][0] + ["0"]]
        t["inputs"][0]["combination"] = t["inputs"][0]["combination"] + ["0"]
    _rejected(_mut(cert, add_block), "free outputs")
    # an input cluster that is a group member of T (list gauge), twice, or out of range
    _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(cluster=T[0])), "a single gauge index")
    _rejected(_mut(cert, lambda t, e: t.update(inputs=t["inputs"] * 2)), "a cluster index, once")
    _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(cluster=blockR)), "single gauge index")
    _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(cluster=len(e["clusters"]))), "a cluster index, once")
    # duplicate or unknown trade clusters; no trade at all
    _rejected(_mut(cert, lambda t, e: t.update(clusters=T + [T[0]])), "distinct cluster indices")
    _rejected(_mut(cert, lambda t, e: t.update(clusters=[])), "distinct cluster indices")
    _rejected(_mut(cert, lambda t, e: t.update(fixed=[], vectors=[], inputs=[])), "no trade is named")
    # extra or missing keys
    _rejected(_mut(cert, lambda t, e: t.update(extra=1)), "exactly the keys")
    _rejected(_mut(cert, lambda t, e: t.pop("inputs")), "exactly the keys")
    _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(extra=1)), "exactly the keys")
    _rejected(_mut(cert, lambda t, e: e.update(trades=[t])), "exactly the keys")
    # relabelled a saddle: trades are allowed there, but a saddle needs a zero escape neuron
    c = copy.deepcopy(cert)
    c["verdict"] = "saddle"
    c["evidence"].pop("curvature")
    c["evidence"]["escape"] = [{"neuron": 0, "r": ["1", "0"]}]
    _rejected(c, "escape must name a zero neuron")
    # dropping the trades (centre left as is) or the input trade alone: the slice no longer matches
    _rejected(_mut(cert, lambda t, e: e.pop("trades")), "ball center")
    _rejected(_mut(cert, lambda t, e: t.update(inputs=[])), "ball center")


def test_forged_trades_on_the_built_instances_are_rejected(built):
    kind, _, _, cert, _ = built
    tr = cert["evidence"]["trades"]
    if kind == "output":
        _rejected(_mut(cert, lambda t, e: t["vectors"][0].__setitem__(0, str(Q(t["vectors"][0][0]) * 2))),
                  "changes the outputs")
        # the rank-1 neuron as an input trade with the zero direction: delta = 0
        _rejected(_mut(cert, lambda t, e: t["inputs"].append(
            {"cluster": 4, "direction": ["0", "0"], "fixed": 1 - e["clusters"][4]["gauge"],
             "combination": ["0"] * len(tr["clusters"])})), "dependent on the columns")
    else:
        it = tr["inputs"][0]
        # the rank-1 neuron cannot trade its input: P's direction and combination are not absorbed for it
        _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(cluster=3, fixed=1 - e["clusters"][3]["gauge"])),
                  "not absorbed", "dependent on the columns")
        swapped = [it["combination"][1], it["combination"][0]]
        _rejected(_mut(cert, lambda t, e: t["inputs"][0].update(combination=swapped)), "not absorbed")


def test_the_constant_rank_route_certifies_them_without_trades(built, monkeypatch):
    """Without the trade search, the rank count of §10.8 finds the flat directions by itself: a
    local_min certificate with evidence constant_rank that the checker accepts, at the same point."""
    kind, pb, pt, cert, _ = built
    monkeypatch.setattr(ballmod, "_trades", lambda *a, **kw: (None, ""))
    out, why = ball_certificate(pb, pt)
    assert out is not None and out["verdict"] == "local_min", why
    ev = out["evidence"]
    assert "constant_rank" in ev and "trades" not in ev and "gl_groups" not in ev
    res = check_certificate(out)
    assert res.ok and res.verdict == "local_min", res.reasons
    assert out["point"]["W"] == cert["point"]["W"]
