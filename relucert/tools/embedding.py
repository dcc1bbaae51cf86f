"""Network embedding (docs/theory.md §7): widen a point without changing the network function, and
predict what the theory says happens to its verdict.

Operations (each returns an :class:`Embedded` record holding the new point, and each verifies
*exactly* that the network function is unchanged, see :func:`check_function_preserved`):

- :func:`add_neuron`  E1: a neuron ``(w, a = 0)`` with ``w`` zero, dead (ReLU) or given;
- :func:`split`       E2: replicate neuron j into copies ``(gamma_l w, beta_l a / gamma_l)``,
  ``gamma_l > 0``, ``sum beta_l = 1`` (``beta_l = 0`` and ``beta_l < 0`` allowed);
- :func:`merge`       the inverse of E2: positively parallel neurons ``w_l = c_l w_i`` become one
  neuron ``(w_i, sum_l c_l a_l)`` (this *narrows* the network);
- :func:`permute`     relabel the neurons.

:func:`predict` implements the rules of docs/theory.md §7 (plus the general fact that an embedding map
``iota`` with ``L_wide(iota(theta)) = L_narrow(theta)`` for every theta lifts descent directions and
escape paths) given the certified verdict of the point before the operation.

An output bias c (``Point.c``) is carried unchanged by every operation: each one leaves the function
``sum_j a_j sigma(w_j . x)`` unchanged, so ``f = that + c`` and the residuals ``e_i`` are unchanged, and
so is the (S0) condition ``sum_i e_i = 0`` of docs/biases.md §3.3.  Every per-neuron quantity (G_j,
D_j, phi_j, escape status) is a function of the residuals, i.e. of the slice at c (docs/biases.md
§3.4), so the rules of §7 apply with the residuals that include c; a point whose (S0) fails stays
not stationary after any operation (the descent direction dc = -e_bar is unchanged).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flint import fmpq

from relucert.errors import InputError, RelucertError
from relucert.core.formulas import (derivative_form, forward_point, mean_residual, merge_hinges, network_outputs,
                                    output_gradient, residuals)
from relucert.core.linalg import dot, is_zero, parallel_factor, rows
from relucert.core.problem import Point, Problem, to_fmpq

OPS = ("add_neuron", "split", "merge", "permute")


class FunctionChanged(RelucertError):
    """An embedding operation changed the network function (a bug: the identities are exact)."""


@dataclass
class Embedded:
    op: str                    # one of OPS
    params: dict               # JSON-able description of the operation (exact strings)
    before: Point
    after: Point
    origin: list               # per neuron of ``after``: description of where it comes from
    check: dict = field(default_factory=dict)   # evidence that the function is unchanged

    def to_json(self) -> dict:
        out = {"op": self.op, "params": self.params, "origin": self.origin,
               "m_before": self.before.m, "m_after": self.after.m, "function_check": self.check}
        if self.after.c is not None:
            out["output_bias"] = {"c": [str(v) for v in self.after.c.tolist()], "carried": "unchanged"}
        return out


# ---------------------------------------------------------------------------------------------
# exact helpers
# ---------------------------------------------------------------------------------------------

def _q(v: Any, what: str = "value") -> fmpq:
    return to_fmpq(v, what)


def function_form(problem: Problem, point: Point) -> tuple[list, dict]:
    """Canonical form of the network function (exact, input-independent).

    With ``sigma(t) = alpha_minus t + (alpha_plus - alpha_minus) max(0, t)``:
    ``f(x) = Lin x + sum_p H_p max(0, nu_p . x)`` over pairwise non-parallel canonical normals nu_p
    (first non-zero entry 1; negatively parallel hinges are folded into Lin), zero H_p dropped.
    Distinct hinges and a linear map are linearly independent functions, so two points compute the
    same function *everywhere* iff their canonical forms are equal."""
    act = problem.activation
    d, k = problem.d, problem.k
    W, A = rows(point.W), rows(point.A)
    Lin = [[sum((act.alpha_minus * a[c] * w[q] for w, a in zip(W, A)), fmpq(0)) for q in range(d)]
           for c in range(k)]
    coefs = [[(act.alpha_plus - act.alpha_minus) * v for v in a] for a in A]
    Lin, hinges = merge_hinges(Lin, W, coefs)
    return Lin, hinges


def extra_inputs(problem: Problem, count: int = 8, seed: int = 0) -> list[list[fmpq]]:
    """A few rational inputs off the data: +-unit vectors, all ones, shifted data, random."""
    d = problem.d
    rng = random.Random(seed)
    xs: list[list[fmpq]] = []
    for q in range(min(d, 3)):
        e = [fmpq(0)] * d
        e[q] = fmpq(1)
        xs += [e, [-v for v in e]]
    xs.append([fmpq(1)] * d)
    for i in range(min(problem.n, 3)):
        xs.append([v + fmpq(rng.randint(-5, 5), rng.randint(2, 9)) for v in problem.X[i].tolist()])
    while len(xs) < count + 2 * min(d, 3) + 1:
        xs.append([fmpq(rng.randint(-9, 9), rng.randint(1, 7)) for _ in range(d)])
    return xs


def _bias(point: Point) -> list | None:
    """The output bias as a list of exact numbers, or None (no output bias)."""
    return None if point.c is None else list(point.c.tolist())


def check_function_preserved(problem: Problem, old: Point, new: Point) -> dict:
    """Exact checks that ``new`` computes the same function as ``old`` (output bias included: it must
    be carried unchanged, present or absent alike); raises FunctionChanged."""
    if _bias(old) != _bias(new):
        raise FunctionChanged(f"the output bias changed: c = {_bias(old)} before, {_bias(new)} after")
    fo = forward_point(problem, old).F
    fn = forward_point(problem, new).F
    if any(u != v for u, v in zip(fo.ravel().tolist(), fn.ravel().tolist())):
        raise FunctionChanged("the network outputs on the data changed")
    xs = extra_inputs(problem)
    if network_outputs(problem, old, xs) != network_outputs(problem, new, xs):
        raise FunctionChanged("the network outputs at extra rational inputs changed")
    Lo, Ho = function_form(problem, old)
    Ln, Hn = function_form(problem, new)
    if Lo != Ln or Ho != Hn:
        raise FunctionChanged("the canonical (hinge) form of the network function changed")
    out = {"data_points_equal": problem.n, "extra_inputs_equal": len(xs),
           "canonical_form_equal": True, "hinges": len(Ho),
           "meaning": "outputs equal exactly on the data and at extra rational inputs; the canonical "
                      "form Lin x + sum_p H_p max(0, nu_p.x) is equal, so the functions agree everywhere"}
    if old.c is not None:
        out["output_bias_equal"] = True
        out["meaning"] += "; the output bias c is carried unchanged (f = that form + c)"
    return out


def form_isis_zero(form: tuple[list, dict]) -> bool:
    Lin, hinges = form
    return all(v == 0 for row in Lin for v in row) and not hinges


# ---------------------------------------------------------------------------------------------
# E1: add a neuron with a = 0
# ---------------------------------------------------------------------------------------------

def dead_direction(problem: Problem) -> list[fmpq]:
    """A rational w with w.x_i < 0 for every data point (ReLU: the new neuron is dead).

    Tries -(sum of normalised x_i) (rational normalisations), then decides exactly with z3
    (linear real arithmetic): InputError if no such w exists (0 is in the convex hull of the x_i)."""
    if problem.activation.alpha_minus != 0:
        raise InputError("a dead neuron needs alpha_minus = 0 (ReLU): with this activation every w "
                         "outputs alpha_minus w.x on the negative side; give W explicitly instead")
    return dead_direction_of(problem.X)


def dead_direction_of(Xa: np.ndarray) -> list[fmpq]:
    """A rational w with w.x_i < 0 for every row x_i of the exact data matrix, else InputError."""
    X = rows(Xa)
    d = len(X[0])
    for i, x in enumerate(X):
        if is_zero(x):
            raise InputError(f"no dead direction exists: data point {i} is 0, so w.x_{i} = 0 for every w")

    def ok(w):
        return not is_zero(w) and all(dot(w, x) < 0 for x in X)

    norms = [lambda x: sum((abs(v) for v in x), fmpq(0)),           # l1
             lambda x: max(abs(v) for v in x),                       # l_inf
             lambda x: fmpq(1),                                      # plain sum
             lambda x: sum((v * v for v in x), fmpq(0))]             # ||x||_2^2
    for nf in norms:
        w = [-sum((x[q] / nf(x) for x in X), fmpq(0)) for q in range(d)]
        if ok(w):
            return _tidy(w)
    import z3
    ws = [z3.Real(f"w{q}") for q in range(d)]
    s = z3.Solver()
    for x in X:
        s.add(z3.Sum([z3.RealVal(f"{v.p}/{v.q}") * wq for v, wq in zip(x, ws)]) <= -1)
    res = s.check()
    if res == z3.sat:
        m = s.model()
        w = []
        for v in ws:
            fr = m.eval(v, model_completion=True).as_fraction()
            w.append(fmpq(int(fr.numerator), int(fr.denominator)))
        if ok(w):
            return _tidy(w)
    if res == z3.unsat:
        raise InputError("no dead direction exists: no w has w.x_i < 0 for every data point "
                         "(0 is in the convex hull of the inputs; e.g. a bias column of 1s and a "
                         "point on each side)")
    raise InputError("could not find a dead direction (z3 gave no answer)")


def _tidy(w: list[fmpq]) -> list[fmpq]:
    """Scale a direction by a positive rational so its entries are small coprime integers."""
    from math import gcd
    den = 1
    for v in w:
        den = den * int(v.q) // gcd(den, int(v.q))
    ints = [int(v.p) * (den // int(v.q)) for v in w]
    g = 0
    for v in ints:
        g = gcd(g, abs(v))
    g = g or 1
    return [fmpq(v // g) for v in ints]


def parse_vector(spec: Any, length: int, what: str) -> list[fmpq]:
    if isinstance(spec, str):
        parts = [p for p in spec.replace(" ", "").split(",")]
        if any(p == "" for p in parts):
            raise InputError(f"{what}: empty entry in {spec!r} (use comma-separated numbers, e.g. 1,-1/2,0.3)")
        vals = [_q(p, what) for p in parts]
    else:
        vals = [_q(v, what) for v in spec]
    if len(vals) != length:
        raise InputError(f"{what} has {len(vals)} entries but must have {length}")
    return vals


def add_neuron(problem: Problem, point: Point, w: Any = "zero") -> Embedded:
    """E1: append neuron (w, a = 0); ``w`` is "zero", "dead" or a vector (list or "1,-2,1/3")."""
    point.validate(problem)
    d, k = problem.d, problem.k
    if isinstance(w, str) and w.strip().lower() == "zero":
        wv, kind = [fmpq(0)] * d, "zero"
    elif isinstance(w, str) and w.strip().lower() == "dead":
        wv, kind = dead_direction(problem), "dead"
    else:
        wv, kind = parse_vector(w, d, "new neuron input weight"), "given"
    W = rows(point.W) + [wv]
    A = rows(point.A) + [[fmpq(0)] * k]
    new = Point.from_rows(W, A, d, k, c=_bias(point))
    origin = [{"from": j} for j in range(point.m)] + [{"new": kind}]
    emb = Embedded("add_neuron", {"kind": kind, "w": [str(v) for v in wv], "index": point.m},
                   point, new, origin)
    emb.check = check_function_preserved(problem, point, new)
    return emb


# ---------------------------------------------------------------------------------------------
# E2: replicate (split) a neuron, and its inverse (merge)
# ---------------------------------------------------------------------------------------------

def _index(j: Any, m: int, what: str = "neuron index") -> int:
    try:
        jj = int(j)
    except (TypeError, ValueError):
        raise InputError(f"{what} {j!r} is not an integer") from None
    if isinstance(j, float) and j != jj:
        raise InputError(f"{what} {j!r} is not an integer")
    if not 0 <= jj < m:
        raise InputError(f"{what} {jj} is out of range: the point has {m} neuron(s), indices 0..{m - 1}")
    return jj


def split(problem: Problem, point: Point, j: Any, betas: Any, gammas: Any = None) -> Embedded:
    """E2: replace neuron j by copies (gamma_l w_j, beta_l a_j / gamma_l), l = 0..L-1.

    Copy 0 takes index j; copies 1..L-1 are appended at the end (other indices are unchanged)."""
    point.validate(problem)
    m, d, k = point.m, problem.d, problem.k
    j = _index(j, m)
    if isinstance(betas, str):
        betas = [p for p in betas.replace(" ", "").split(",")]
    b = [_q(v, "beta") for v in betas]
    if len(b) < 1:
        raise InputError("--beta needs at least one value")
    if sum(b, fmpq(0)) != 1:
        raise InputError(f"the betas must sum to exactly 1, they sum to {sum(b, fmpq(0))}")
    if gammas is None:
        g = [fmpq(1)] * len(b)
    else:
        if isinstance(gammas, str):
            gammas = [p for p in gammas.replace(" ", "").split(",")]
        g = [_q(v, "gamma") for v in gammas]
        if len(g) != len(b):
            raise InputError(f"got {len(b)} beta(s) but {len(g)} gamma(s); give one gamma per copy")
    for l, gl in enumerate(g):
        if gl <= 0:
            raise InputError(f"gamma {l} is {gl}; every gamma must be > 0 (a negative scale flips the "
                             "kink side and changes the function)")
    W, A = rows(point.W), rows(point.A)
    w, a = W[j], A[j]
    copies = [([gl * v for v in w], [bl * v / gl for v in a]) for bl, gl in zip(b, g)]
    W[j], A[j] = copies[0]
    for cw, ca in copies[1:]:
        W.append(cw)
        A.append(ca)
    new = Point.from_rows(W, A, d, k, c=_bias(point))
    origin = [{"from": i} for i in range(m)]
    origin[j] = {"copy_of": j, "copy": 0, "beta": str(b[0]), "gamma": str(g[0])}
    for l in range(1, len(b)):
        origin.append({"copy_of": j, "copy": l, "beta": str(b[l]), "gamma": str(g[l])})
    emb = Embedded("split", {"neuron": j, "beta": [str(v) for v in b], "gamma": [str(v) for v in g],
                             "copy_indices": [j] + list(range(m, m + len(b) - 1))}, point, new, origin)
    emb.check = check_function_preserved(problem, point, new)
    return emb


def merge(problem: Problem, point: Point, indices: Any) -> Embedded:
    """Inverse of E2: neurons with w_l = c_l w_i (c_l > 0) become (w_i, sum_l c_l a_l) at index i
    (the first index given); the others are removed. All-zero input weights merge to (0, sum a_l)."""
    point.validate(problem)
    m, d, k = point.m, problem.d, problem.k
    if isinstance(indices, str):
        indices = [p for p in indices.replace(" ", "").split(",")]
    idx = [_index(v, m, "merge index") for v in indices]
    if len(idx) < 2:
        raise InputError("merge needs at least two neuron indices, e.g. --merge 0,2")
    if len(set(idx)) != len(idx):
        raise InputError(f"merge indices must be distinct, got {idx}")
    W, A = rows(point.W), rows(point.A)
    base = idx[0]
    factors = []
    for l in idx:
        c = parallel_factor(W[base], W[l])
        if c is None:
            raise InputError(f"neurons {base} and {l} cannot be merged: their input weights are not "
                             f"positively parallel (w_{l} != c w_{base} for any c > 0)")
        factors.append(c)
    a = [sum((c * A[l][q] for c, l in zip(factors, idx)), fmpq(0)) for q in range(k)]
    keep = [l for l in range(m) if l not in idx[1:]]
    Wn = [W[l] for l in keep]
    An = [a if l == base else A[l] for l in keep]
    new = Point.from_rows(Wn, An, d, k, c=_bias(point))
    origin = [{"merged": idx, "factors": [str(c) for c in factors]} if l == base else {"from": l} for l in keep]
    emb = Embedded("merge", {"neurons": idx, "factors": [str(c) for c in factors], "index": keep.index(base)},
                   point, new, origin)
    emb.check = check_function_preserved(problem, point, new)
    return emb


def permute(problem: Problem, point: Point, perm: Any) -> Embedded:
    """New neuron l is old neuron perm[l]."""
    point.validate(problem)
    m = point.m
    if isinstance(perm, str):
        perm = [p for p in perm.replace(" ", "").split(",")]
    p = [_index(v, m, "permutation entry") for v in perm]
    if sorted(p) != list(range(m)):
        raise InputError(f"--permute must list each of 0..{m - 1} exactly once, got {p}")
    new = Point(point.W[p].copy(), point.A[p].copy(), None if point.c is None else point.c.copy())
    emb = Embedded("permute", {"perm": p}, point, new, [{"from": v} for v in p])
    emb.check = check_function_preserved(problem, point, new)
    return emb


def apply(problem: Problem, point: Point, op: str, **kw) -> Embedded:
    if op == "add_neuron":
        return add_neuron(problem, point, kw.get("w", "zero"))
    if op == "split":
        return split(problem, point, kw["neuron"], kw["beta"], kw.get("gamma"))
    if op == "merge":
        return merge(problem, point, kw["neurons"])
    if op == "permute":
        return permute(problem, point, kw["perm"])
    raise InputError(f"unknown embedding operation {op!r} (use one of {', '.join(OPS)})")


# ---------------------------------------------------------------------------------------------
# prediction (docs/theory.md §7)
# ---------------------------------------------------------------------------------------------

STATIONARY_VERDICTS = ("global_min", "local_min", "saddle")


def _stationarity_known(before) -> bool:
    """True if the before-certificate proves stationarity (inconclusive may or may not)."""
    if before.verdict in STATIONARY_VERDICTS:
        return True
    if before.verdict == "inconclusive":
        return all(n.s1 and n.s2 is True for n in before.neurons) and len(before.neurons) == before.point.m
    return False


def _failing_neuron(before) -> int | None:
    ns = before.certificate.get("evidence", {}).get("not_stationary")
    return None if not ns else ns["direction"].get("neuron")


def predict(problem: Problem, point: Point, op: Embedded, before=None) -> tuple[str, str]:
    """Verdict the theory predicts for ``op.after`` from the certified verdict of ``point``.

    Returns (verdict, rule); verdict is one of the certifier's verdicts or "unknown" when the
    theory does not determine it. ``before`` is the certify() Result of ``point`` (computed if None)."""
    if before is None:
        from relucert.decide.certify import certify
        before = certify(problem, point)
    V = before.verdict
    if op.op == "permute":
        return V, "permutation: relabelling neurons changes neither the loss nor any per-neuron condition"
    if V == "global_min":
        return "global_min", "the function is unchanged, so the loss stays exactly 0"
    if point.c is not None:
        ebar = mean_residual(forward_point(problem, point).E).tolist()
        if any(v != 0 for v in ebar):
            return "not_stationary", ("(S0) fails: the mean residual e_bar = dL/dc is not 0; the embedding leaves "
                                      "the function, the residuals and c unchanged, so it stays non-zero and "
                                      "dc = -e_bar descends on the new point too (docs/biases.md §3.3, §3.5)")
    E = residuals(problem, point)
    if op.op == "add_neuron":
        verdict, rule = _predict_add(problem, op, before, E)
    elif op.op == "split":
        verdict, rule = _predict_split(problem, point, op, before, E)
    elif op.op == "merge":
        verdict, rule = _predict_merge(problem, point, op, before, E)
    else:
        raise InputError(f"unknown operation {op.op!r}")
    if point.c is not None:
        rule += (" [output bias c carried unchanged: the residuals include c and (S0) sum_i e_i = 0 holds before and "
                 "after; every per-neuron rule is the slice's (docs/biases.md §3.4, §4)]")
    return verdict, rule


LIFT = ("embedding lifts: L_wide(iota(theta)) = L_narrow(theta) for the linear embedding map iota, "
        "so a descent direction / lower points near the narrower point map to the wider one")


def _predict_add(problem, op, before, E) -> tuple[str, str]:
    V = before.verdict
    w = [fmpq(v) for v in op.after.W[-1].tolist()]
    if V == "not_stationary":
        return "not_stationary", "not stationary before; " + LIFT
    G = output_gradient(problem, E, w)
    if not is_zero(G):
        return "not_stationary", ("E1: the new neuron's dL/da = (1/n) sum_i e_i sigma(w.x_i) != 0 "
                                  "(stationarity is kept iff it vanishes)")
    if V == "saddle":
        return "saddle", "E1: sum_i e_i sigma(w.x_i) = 0 keeps stationarity; saddle before, " + LIFT
    if not _stationarity_known(before):
        return "unknown", "stationarity of the narrower point is undecided"
    escape = not form_isis_zero(derivative_form(problem, E, w))
    kind = op.params.get("kind")
    if escape:
        return "saddle", (f"E1: the new ({kind}) neuron has a = 0 and D ≢ 0, so it is an escape neuron; "
                          "escape path w + t r, a = -t^2 D (Theorem B for scalar output)")
    if V == "local_min":
        return "local_min", (f"E1: the new ({kind}) neuron has a = 0 and D ≡ 0: not an escape neuron; "
                             "the old neurons are unchanged (Theorem A)")
    return V, "E1: the new neuron adds no escape neuron; the narrower point was " + V


def _predict_split(problem, point, op, before, E) -> tuple[str, str]:
    V = before.verdict
    j = op.params["neuron"]
    b = [_q(v, "beta") for v in op.params["beta"]]
    if V == "not_stationary":
        return "not_stationary", ("E2: G_copy = gamma_l G_j and phi_copy = (beta_l/gamma_l) phi_j with some "
                                  "beta_l > 0, so the failure persists; " + LIFT)
    if not _stationarity_known(before):
        return "unknown", "stationarity of the narrower point is undecided"
    w = [fmpq(v) for v in point.W[j].tolist()]
    a = [fmpq(v) for v in point.A[j].tolist()]
    Lin, hinges = derivative_form(problem, E, w)
    D_zero = form_isis_zero((Lin, hinges))
    bvec = [sum((a[c] * Lin[c][q] for c in range(problem.k)), fmpq(0)) for q in range(problem.d)]
    gam = [dot(a, H) for H in hinges.values()]
    phi_zero = is_zero(bvec) and all(g == 0 for g in gam)
    neg = [l for l, v in enumerate(b) if v < 0]
    zero = [l for l, v in enumerate(b) if v == 0]
    if neg and not phi_zero:
        return "not_stationary", (f"E2: copy {neg[0]} has beta < 0, so phi_copy = (beta/gamma) phi_j is "
                                  "negative where phi_j > 0 (phi_j >= 0 and phi_j ≢ 0)")
    if V == "saddle":
        return "saddle", "E2: stationarity kept; saddle before, " + LIFT
    if zero and not is_zero(a) and not D_zero:
        return "saddle", (f"E2: copy {zero[0]} has beta = 0, i.e. a = 0, and D = D_j ≢ 0 (D depends on w "
                          "only through the kink pattern): a new escape neuron" +
                          ("; for scalar output this needs a kink of neuron j" if problem.k == 1 else ""))
    if V == "local_min":
        if neg:
            return "local_min", ("E2: phi_j ≡ 0, so the beta < 0 copies stay stationary; every copy has "
                                 "neuron j's escape status (none)")
        if zero:
            return "local_min", "E2: the beta = 0 copy has a = 0 and D_j ≡ 0: not an escape neuron (Theorem A)"
        rule = ("E2 with all beta > 0: each copy has phi = (beta/gamma) phi_j and neuron j's escape status; "
                "stationarity and local minimality are kept")
        if problem.k > 1 and j in (before.escape_neurons or []):
            rule += (" [docs/theory.md §7 as stated; WARNING: refuted in vector output when neuron j is an escape "
                     "neuron with a_j != 0 (the minimum is then not from Theorem A): the split can be a "
                     "second-order saddle, e.g. examples/embedding/vec_morse_bott_min.json]")
        return "local_min", rule
    if V == "inconclusive":
        return "unknown", ("E2: the narrower point is inconclusive (vector output, an escape neuron with a != 0); "
                           "the §7 rules predict nothing, and a copy can even turn a local minimum into a saddle "
                           "(second order)")
    return V, "E2: no new escape neuron; the narrower point was " + V


def _predict_merge(problem, point, op, before, E) -> tuple[str, str]:
    V = before.verdict
    idx = op.params["neurons"]
    k = problem.k
    if V == "not_stationary":
        jf = _failing_neuron(before)
        if jf is not None and jf not in idx:
            return "not_stationary", f"merge: neuron {jf} (not merged, unchanged) still has a descent direction"
        w = [fmpq(v) for v in point.W[idx[0]].tolist()]
        if not is_zero(output_gradient(problem, E, w)):
            return "not_stationary", "merge: G_merged = G_i != 0 (G_l = c_l G_i for the merged neurons)"
        return "unknown", ("merge: phi_merged = sum_l c_l phi_l can be >= 0 although some phi_l is not; "
                           "the theory does not predict")
    if not _stationarity_known(before):
        return "unknown", "stationarity of the wider point is undecided"
    w = [fmpq(v) for v in point.W[idx[0]].tolist()]
    a_new = [fmpq(v) for v in op.after.A[op.params["index"]].tolist()]
    D_zero = form_isis_zero(derivative_form(problem, E, w))
    others_escape = [j for j in before.escape_neurons if j not in idx]
    others_zero_a = [j for j in others_escape if is_zero(point.A[j].tolist())]
    merged_escape: bool | None
    if is_zero(a_new):
        merged_escape = not D_zero
    elif k == 1:
        merged_escape = False
    elif not any(j in idx for j in before.escape_neurons):
        merged_escape = False           # the merged flat set lies inside every merged neuron's flat set
    else:
        merged_escape = None
    stat = "merge: phi_merged = sum_l c_l phi_l >= 0 (D is invariant under positive scaling of w), G_merged = 0"
    if others_zero_a:
        return "saddle", stat + f"; neuron {others_zero_a[0]} (unmerged) is still an escape neuron with a = 0"
    if merged_escape and is_zero(a_new):
        return "saddle", stat + "; the merged neuron has a = 0 and D ≢ 0: escape neuron"
    if merged_escape is None:
        return "unknown", stat + "; vector output: the merged neuron's escape status is not determined"
    if others_escape:
        return "inconclusive", stat + f"; escape neurons {others_escape} with a != 0 remain (vector output)"
    if V == "inconclusive" and not before.escape_neurons:
        return "inconclusive", stat + "; the wider point was inconclusive"
    return "local_min", stat + "; no escape neuron remains (Theorem A)"


# ---------------------------------------------------------------------------------------------
# embed, predict and certify in one go
# ---------------------------------------------------------------------------------------------

def embed_and_certify(problem: Problem, point: Point, emb: Embedded, *, check: bool = True) -> dict:
    """Verdict before, predicted verdict after (with the rule) and certified verdict after."""
    from relucert.decide.certify import certify
    before = certify(problem, point)
    pred, rule = predict(problem, point, emb, before)
    after = certify(problem, emb.after)
    out = {"before": before.verdict, "before_reason": before.reason,
           "before_escape_neurons": before.escape_neurons,
           "predicted": pred, "rule": rule,
           "certified": after.verdict, "certified_reason": after.reason,
           "certified_escape_neurons": after.escape_neurons,
           "agree": None if pred == "unknown" else pred == after.verdict,
           "loss_before": str(before.loss), "loss_after": str(after.loss), "loss_convention": problem.loss}
    if check:
        from relucert.check import Rejected, require_valid
        try:
            out["checked"] = require_valid(after.certificate) == after.verdict
        except Rejected as e:
            out["checked"] = False
            out["check_error"] = str(e)
    out["_after_result"] = after
    return out
