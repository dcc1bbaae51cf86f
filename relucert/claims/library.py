"""The claim library (issue 7): each claim of docs/theory.md checked on generated exact instances.

Names (``relucert claims list``):

1. ``theorem-a``, ``theorem-b`` — Theorems A and B against brute force.
2. ``narrow-escape-vector`` (a conjecture expected to FAIL) and ``broad-escape-vector`` — the
   definition question of docs/theory.md §4 in vector output.
3. ``embed-*`` — the embedding rules of docs/theory.md §7.
4. ``permutation-flat``, ``symmetric-criticality`` — permutation points.
5. ``conservation-exact``, ``conservation-drift`` — ||w_j||^2 - ||a_j||^2 under GD (docs/theory.md §9).
6. ``knots-*`` — deep R -> R^p ReLU networks: exact knot counter and the bound prod(n_i+1) - 1.
"""
from __future__ import annotations

import numpy as np
from flint import fmpq

from relucert.decide.certify import certify
from relucert.check import Rejected, require_valid
from relucert.core.formulas import ExactState
from relucert.core.problem import Point
from relucert.claims import brute
from relucert.claims import exact as ex
from relucert.claims import generators as gen
from relucert.claims import knots as kn
from relucert.claims.api import claim, counterexample, held, skipped
from relucert.claims.embed import add_neuron, dead_direction, replicate
from relucert.claims.exact import obj_array, rows, to_float
from relucert.claims.gd import grads_exact, grads_float, imbalance_float
from relucert.claims.instance import Instance, q, qmat

STATIONARY = ("local_min", "global_min", "saddle")


def _checked(inst: Instance, res) -> str | None:
    """Run the independent checker on the certificate; a message if it rejects."""
    try:
        require_valid(res.certificate)
    except Rejected as e:
        return f"the independent checker rejects the certificate ({res.verdict}): {e}"
    return None


def _undecided_stationarity(res) -> bool:
    return res.verdict == "inconclusive" and "could not be decided" in res.reason


# ---------------------------------------------------------------------------------------------
# generators used by several claims
# ---------------------------------------------------------------------------------------------

def stationary_mix(src, ks=(1, 2), gd: bool = True, **kw) -> Instance:
    """Stationary-by-construction points (mostly), exact least-squares fits, and (scalar) points
    refined next to where float GD from small initialisation stops."""
    kind = src.choice(("stationary", "stationary", "stationary", "fitted", "gd") if gd else
                      ("stationary", "stationary", "fitted"))
    if kind == "gd" and 1 in ks:
        return gen.gd_refined_point(src)
    if kind == "fitted":
        return gen.fitted_point(src, ks=ks)
    return gen.stationary_point(src, ks=ks, min_n=2, **kw)


# ---------------------------------------------------------------------------------------------
# 1. Theorems A and B against brute force
# ---------------------------------------------------------------------------------------------

N_DIRECTIONS = 30


@claim("no escape neuron => local minimum (Theorem A): at every certified local_min, no ray "
       "decreases the loss (exact ray polynomials), no kink-preserving second-order descent "
       "exists, no zero-output neuron has D_j != 0, and float local search finds nothing lower",
       stationary_mix, name="theorem-a", budget=40, theory="docs/theory.md §4 Theorem A [paper]",
       tags=("theorem", "brute-force"))
def theorem_a(inst: Instance):
    pb, pt = inst.problem, inst.point
    res = certify(pb, pt)
    if res.verdict != "local_min":
        return skipped(f"verdict {res.verdict}" + (f": {res.reason}" if res.verdict == "inconclusive" else ""))
    bad = _checked(inst, res)
    if bad:
        return counterexample(bad)
    st = ExactState(pb, pt)
    base = st.loss_half_mean
    seed = brute.fingerprint(pb, pt)
    for dW, dA, label in brute.random_directions(pb, pt, st, N_DIRECTIONS, seed):
        r = brute.ray(pb, pt, st, dW, dA, label)
        mm = brute.ray_mismatch(pb, pt, base, r)
        if mm:
            return counterexample(f"core: {mm}", ray=r.to_json())
        lead = r.leading()
        if lead is not None and lead[1] < 0:
            step = brute.descent_step(pb, pt, base, r.coeffs, r.t_max, dW, dA)
            return counterexample(f"certified local_min but the ray '{label}' has leading coefficient "
                                  f"{lead[1]} (order {lead[0]})" +
                                  (f"; exact loss lower at t = {step[0]}" if step else ""), ray=r.to_json())
    d2 = brute.second_order_descent(pb, pt, st)
    if d2 is not None:
        return counterexample(f"certified local_min but a kink-preserving second-order direction lowers the "
                              f"loss exactly ({d2.how})", descent=d2.to_json())
    for j in range(pt.m):
        if all(v == 0 for v in pt.A[j]):
            esc = brute.plain_escape_direction(pb, pt, j, seed)
            if esc is not None:
                r_, D = esc
                t = fmpq(1, 2 ** 20)
                lower = brute.escape_path_loss(pb, pt, j, r_, D, t) < base
                return counterexample(f"certified local_min but zero-output neuron {j} has D_j(r) = {D} != 0 "
                                      f"(escape path lowers the loss at t = 2^-20: {lower})")
    diff, _ = brute.local_search(pb, pt, 1e-3, starts=2, seed=0)
    if diff < 0:
        diff2, cand = brute.local_search(pb, pt, 1e-6, starts=3, seed=1)
        if diff2 < 0:
            return counterexample("evidence (not proof): float local search finds exactly lower loss within "
                                  f"relative radius 1e-3 ({to_float(diff):.3e}) and 1e-6 ({to_float(diff2):.3e})",
                                  point=cand.to_json())
    return held(f"{N_DIRECTIONS} rays, second order, local search")


def theorem_b_instances(src) -> Instance:
    kind = src.choice(("stationary", "stationary", "stationary", "gd"))
    if kind == "gd":
        return gen.gd_refined_point(src)
    return gen.stationary_point(src, ks=(1,), min_n=3, max_n=7, modes=("random", "kink", "zero", "dead", "dup"), zero_prob=3,
                                zero_output=src.boolean())


@claim("scalar output: a stationary point with an escape neuron is not a local minimum (Theorem B): "
       "the certified escape path lowers the loss exactly (at t0, t0/2^10, t0/2^20), and every "
       "zero-output neuron found by plain loops to have D_j != 0 makes the verdict saddle",
       theorem_b_instances, name="theorem-b", budget=40, theory="docs/theory.md §4 Theorem B [paper], escape path [derived]",
       tags=("theorem", "brute-force"))
def theorem_b(inst: Instance):
    pb, pt = inst.problem, inst.point
    res = certify(pb, pt)
    if res.verdict == "not_stationary":
        return skipped("verdict not_stationary")
    if res.verdict == "inconclusive":
        return skipped(f"verdict inconclusive: {res.reason}")
    bad = _checked(inst, res)
    if bad:
        return counterexample(bad)
    base = ex.point_loss(pb, pt)
    seed = brute.fingerprint(pb, pt)
    plain = {}
    for j in range(pt.m):
        if all(v == 0 for v in pt.A[j]):
            e = brute.plain_escape_direction(pb, pt, j, seed)
            if e is not None:
                plain[j] = e
    if res.verdict in ("local_min", "global_min"):
        if plain:
            j, (r, D) = next(iter(plain.items()))
            t = fmpq(1, 2 ** 20)
            lower = brute.escape_path_loss(pb, pt, j, r, D, t) < base
            return counterexample(f"verdict {res.verdict} but neuron {j} has a_j = 0 and D_j(r) = {D} != 0 for "
                                  f"r = {r}; escape path lowers the loss at t = 2^-20: {lower}")
        return skipped("no escape neuron")
    # saddle
    ep = res.certificate["evidence"].get("escape_path")
    if not ep:
        return skipped("saddle without a zero-output escape path")
    j = ep["neuron"]
    if any(v != 0 for v in pt.A[j]):
        return counterexample(f"escape path on neuron {j} with a_j != 0")
    r = [q(v) for v in ep["r"]]
    D = [q(v) for v in ep["D"]]
    if brute.D_plain(pb, pt, j, r) != D:
        return counterexample(f"certificate's D_j(r) = {D} differs from the plain computation "
                              f"{brute.D_plain(pb, pt, j, r)}")
    t0 = q(ep["t0"])
    for t in (t0, t0 / 2 ** 10, t0 / 2 ** 20):
        new = brute.escape_path_loss(pb, pt, j, r, D, t)
        if not new < base:
            return counterexample(f"escape path does not lower the loss at t = {t}: {new} >= {base}")
    if j not in plain:
        return counterexample(f"certify's escape neuron {j} not confirmed by plain loops (D = {D})")
    return held(f"escape path on neuron {j} lowers the loss exactly")


# ---------------------------------------------------------------------------------------------
# 2. The definition question (vector output)
# ---------------------------------------------------------------------------------------------

def vector_stationary(src) -> Instance:
    return gen.stationary_point(src, ks=(2, 3), min_n=2, modes=("random", "kink", "dup", "zero"), zero_prob=0)


def _narrow_escape(pb, pt, seed) -> list:
    return [j for j in range(pt.m) if all(v == 0 for v in pt.A[j])
            and brute.plain_escape_direction(pb, pt, j, seed) is not None]


def _vector_descent(pb, pt, st, seed):
    d2 = brute.second_order_descent(pb, pt, st)
    if d2 is not None and d2.how != "inconsistent":
        return d2
    if d2 is not None:
        return d2
    for j in range(pt.m):
        if all(v == 0 for v in pt.A[j]):
            continue
        for r in brute.flat_directions(pb, pt, st, j, seed)[:6]:
            dd = brute.flat_family_descent(pb, pt, j, r, st)
            if dd is not None:
                return dd
    return None


@claim("vector output, NARROW reading of escape neurons (a_j = 0 and D_j != 0): a stationary point "
       "without such a neuron is a local minimum",
       vector_stationary, name="narrow-escape-vector", budget=30, expect="counterexample",
       theory="docs/theory.md §4 definition [derived]: the broad definition is claimed necessary",
       tags=("definition", "vector"))
def narrow_escape_vector(inst: Instance):
    pb, pt = inst.problem, inst.point
    res = certify(pb, pt)
    if res.verdict not in ("local_min", "saddle", "inconclusive"):
        return skipped(f"verdict {res.verdict}")
    if _undecided_stationarity(res):
        return skipped(f"verdict inconclusive: {res.reason}")
    seed = brute.fingerprint(pb, pt)
    if _narrow_escape(pb, pt, seed):
        return skipped("has a narrow escape neuron (a_j = 0, D_j != 0)")
    st = ExactState(pb, pt)
    d = _vector_descent(pb, pt, st, seed)
    if d is None:
        return held(f"no second-order descent found (verdict {res.verdict})")
    if d.how == "inconsistent":
        return counterexample("core: ray polynomial inconsistent with the exact quadratic form", descent=d.to_json())
    return counterexample(
        f"stationary, no narrow escape neuron, yet the loss decreases exactly along a {d.how} path: "
        f"L = {d.base} -> {d.loss} at t = {d.t} (half_mean); certify: {res.verdict}, broad escape "
        f"neurons {res.escape_neurons}", descent=d.to_json(), verdict=res.verdict, escape_neurons=res.escape_neurons)


@claim("vector output, BROAD reading (docs/theory.md §4): whenever a stationary point admits an exact "
       "second-order descent, certify reports a (broad) escape neuron and never local_min",
       vector_stationary, name="broad-escape-vector", budget=30, theory="docs/theory.md §4 definition [derived]",
       tags=("definition", "vector"))
def broad_escape_vector(inst: Instance):
    pb, pt = inst.problem, inst.point
    res = certify(pb, pt)
    if res.verdict not in ("local_min", "saddle", "inconclusive") or _undecided_stationarity(res):
        return skipped(f"verdict {res.verdict}")
    st = ExactState(pb, pt)
    d = _vector_descent(pb, pt, st, brute.fingerprint(pb, pt))
    if d is None:
        return skipped("no descent found")
    if d.how == "inconsistent":
        return counterexample("core: ray polynomial inconsistent with the exact quadratic form", descent=d.to_json())
    if res.verdict == "local_min" or not res.escape_neurons:
        return counterexample(f"exact descent ({d.how}) but certify says {res.verdict} with escape neurons "
                              f"{res.escape_neurons}", descent=d.to_json())
    return held(f"descent ({d.how}); escape neurons {res.escape_neurons}, verdict {res.verdict}")


def flat_escape(src) -> Instance:
    return gen.flat_escape_point(src)


@claim("vector output, escape neurons with a_j != 0: a saddle proved by a second-order ray lowers the "
       "loss along that ray, and a Morse-Bott local minimum admits no exact descent (brute force)",
       flat_escape, name="vector-second-order", budget=30, theory="docs/theory.md §5/§8 (second-order verdicts)",
       tags=("vector", "second-order"))
def vector_second_order(inst: Instance):
    pb, pt = inst.problem, inst.point
    res = certify(pb, pt)
    bad = _checked(inst, res)
    if bad:
        return counterexample(bad)
    ev = res.certificate["evidence"]
    st = ExactState(pb, pt)
    if "second_order" in ev:
        so = ev["second_order"]
        dW, dA = qmat(so["dW"]), qmat(so["dA"])
        base = st.loss_half_mean
        for t in (q(so["t0"]), q(so["t0"]) / 10, q(so["t0"]) / 1000):
            new = ExactState(pb, Point(pt.W + t * dW, pt.A + t * dA)).loss_half_mean
            if not new < base:
                return counterexample(f"second-order saddle, but the loss does not decrease at t = {t}")
        return held(f"second-order saddle ({so['how']}), loss lower at t0, t0/10, t0/1000")
    if "morse_bott" in ev:
        d = _vector_descent(pb, pt, st, brute.fingerprint(pb, pt))
        if d is not None and d.how != "inconsistent":
            return counterexample(f"Morse-Bott local_min, but brute force finds an exact descent ({d.how})",
                                  descent=d.to_json())
        return held(f"Morse-Bott local minimum (Hessian rank {ev['morse_bott']['hessian_rank']}); no brute descent")
    return skipped(f"verdict {res.verdict} without a second-order proof")


@claim("docs/theory.md §7 in vector output: replicating (beta = 1/2, 1/2) a neuron of a local minimum keeps "
       "it a local minimum, also when the minimum is not from Theorem A (an escape neuron with a != 0)",
       flat_escape, name="replicate-vector-min", budget=30, expect="counterexample",
       theory="docs/theory.md §7 [derived]: expected to fail (Morse-Bott minima can split into saddles)",
       tags=("embedding", "vector", "second-order"))
def replicate_vector_min(inst: Instance):
    pb, pt = inst.problem, inst.point
    base = certify(pb, pt)
    if base.verdict != "local_min" or "morse_bott" not in base.certificate["evidence"]:
        return skipped(f"base is not a Morse-Bott local minimum ({base.verdict})")
    wide = replicate(pb, pt, 0, (fmpq(1, 2), fmpq(1, 2)))
    res = certify(pb, wide)
    bad = _checked(inst, res)
    if bad:
        return counterexample(bad)
    if res.verdict == "saddle":
        so = res.certificate["evidence"].get("second_order", {})
        return counterexample(f"the local minimum (Morse-Bott, escape neurons {base.escape_neurons}) splits into "
                              f"a saddle: ray polynomial {so.get('polynomial')}", verdict=res.verdict)
    return held(f"split point {res.verdict}")


# ---------------------------------------------------------------------------------------------
# 3. Embedding (docs/theory.md §7)
# ---------------------------------------------------------------------------------------------

BETAS_POS = ((fmpq(1, 2), fmpq(1, 2)), (fmpq(1, 3), fmpq(2, 3)), (fmpq(1, 4), fmpq(1, 4), fmpq(1, 2)))
BETAS_ZERO = ((fmpq(1), fmpq(0)), (fmpq(1, 2), fmpq(1, 2), fmpq(0)))
BETAS_NEG = ((fmpq(3, 2), fmpq(-1, 2)), (fmpq(2), fmpq(-1)), (fmpq(-1, 3), fmpq(4, 3)))
GAMMAS = (fmpq(1), fmpq(2), fmpq(1, 2), fmpq(3))


def embedding(src, op: str = "zero", ks=(1, 2)) -> Instance:
    """A stationary-by-construction base point and one embedding of it; meta keeps the base."""
    acts = ("relu", "dead_ok") if op == "dead" else gen.ACTIVATION_KINDS
    base = gen.stationary_point(src, ks=ks, min_n=2, activations=acts)
    pb, pt = base.problem, base.point
    d = pb.d
    meta = {"op": op, "base_W": pt.W, "base_A": pt.A}
    if op == "zero":
        new = add_neuron(pb, pt, [fmpq(0)] * d)
    elif op == "dead":
        w = dead_direction(pb.X)
        if w is None:
            src.reject("the data has no dead direction")
        new = add_neuron(pb, pt, w)
    elif op == "neuron":
        kind = src.choice(("kink", "random", "zero"))
        X = rows(pb.X)
        w = gen.kink_weight(src, X) if kind == "kink" else (src.vector(d) if kind == "random" else [fmpq(0)] * d)
        new = add_neuron(pb, pt, w)
    else:
        j = src.integer(0, pt.m - 1)
        betas = src.choice({"replicate+": BETAS_POS, "replicate0": BETAS_ZERO, "replicate-": BETAS_NEG}[op])
        gammas = [src.choice(GAMMAS) for _ in betas]
        new = replicate(pb, pt, j, betas, gammas)
        meta.update(neuron=j, betas=list(betas), gammas=gammas)
    return Instance(pb, new, f"embedding:{op}", meta)


def _base(inst: Instance) -> Point:
    return Point(qmat(inst.meta["base_W"]), qmat(inst.meta["base_A"]))


def _stationary(res) -> bool | None:
    if res.verdict in STATIONARY:
        return True
    if res.verdict == "not_stationary":
        return False
    return None if _undecided_stationarity(res) else True


def _e1(inst: Instance, dead: bool = False):
    pb, pt = inst.problem, inst.point
    base = _base(inst)
    rb = certify(pb, base)
    sb = _stationary(rb)
    if sb is not True:
        return skipped(f"base verdict {rb.verdict}")
    re_ = certify(pb, pt)
    j = pt.m - 1
    # sum_i e_i sigma(w.x_i) = n G_j of the new neuron (a_j = 0: the residuals are the base point's)
    Gnew = [pb.n * g for g in ex.output_grad(pb, pt.W, pt.A)[j]]
    if any(v != 0 for v in Gnew):
        if re_.verdict != "not_stationary":
            return counterexample(f"sum_i e_i sigma(w.x_i) = {Gnew} != 0 but the embedded point is {re_.verdict}")
        return held("not stationary, as sum_i e_i sigma(w.x_i) != 0")
    if re_.verdict == "not_stationary":
        return counterexample(f"sum_i e_i sigma(w.x_i) = 0 but the embedded point is not_stationary ({re_.reason})")
    esc = brute.plain_escape_direction(pb, pt, j, 0) is not None
    if dead and esc:
        return counterexample("a dead neuron with a = 0 has D != 0")
    if (j in re_.escape_neurons) != esc:
        return counterexample(f"new neuron escape per certify {j in re_.escape_neurons}, per plain D {esc}")
    expected = {"global_min": "global_min", "local_min": "saddle" if esc else "local_min",
                "saddle": "saddle", "inconclusive": "saddle" if esc else "inconclusive"}[rb.verdict]
    if re_.verdict != expected:
        if rb.verdict == "inconclusive" and re_.verdict == "inconclusive":
            return skipped("inconclusive")
        return counterexample(f"base {rb.verdict}, new neuron escape {esc}: expected {expected}, got {re_.verdict}")
    return held(f"{rb.verdict} -> {re_.verdict} (new neuron escape: {esc})")


@claim("E1 zero neuron (w = 0, a = 0): stationarity is kept; a local minimum stays one iff the new "
       "neuron is not an escape neuron (D(r) = (1/n) sum e_i sigma(x_i.r) == 0), else it becomes a saddle",
       (embedding, {"op": "zero"}), name="embed-zero-neuron", budget=25, theory="docs/theory.md §7 E1", tags=("embedding",))
def embed_zero(inst):
    return _e1(inst)


@claim("E1 dead neuron (ReLU-like with alpha_minus = 0, w.x_i < 0 for all i, a = 0): the verdict is unchanged",
       (embedding, {"op": "dead"}), name="embed-dead-neuron", budget=25, theory="docs/theory.md §7 E1, §4", tags=("embedding",))
def embed_dead(inst):
    return _e1(inst, dead=True)


@claim("E1 any neuron (w, a = 0): the embedded point is stationary iff sum_i e_i sigma(w.x_i) = 0, "
       "and then the verdict follows the escape status of the new neuron",
       (embedding, {"op": "neuron"}), name="embed-neuron", budget=25, theory="docs/theory.md §7 E1", tags=("embedding",))
def embed_neuron(inst):
    return _e1(inst)


def _e2_setup(inst):
    pb, pt = inst.problem, inst.point
    base = _base(inst)
    rb = certify(pb, base)
    return pb, pt, base, rb, certify(pb, pt), int(inst.meta["neuron"]), [q(b) for b in inst.meta["betas"]]


def _copies(base: Point, j: int, betas: list) -> list:
    return [j] + [base.m + i for i in range(len(betas) - 1)]


@claim("E2 replication with all beta_l > 0: stationarity and local minimality are kept "
       "(local_min -> local_min, saddle -> saddle, global_min -> global_min)",
       (embedding, {"op": "replicate+"}), name="embed-replicate-positive", budget=25, theory="docs/theory.md §7 E2",
       tags=("embedding",))
def embed_replicate_pos(inst):
    pb, pt, base, rb, re_, j, betas = _e2_setup(inst)
    if _stationary(rb) is not True:
        return skipped(f"base verdict {rb.verdict}")
    if rb.verdict in ("local_min", "saddle", "global_min"):
        if re_.verdict != rb.verdict:
            return counterexample(f"replicating neuron {j} with betas {betas}: {rb.verdict} -> {re_.verdict} "
                                  f"({re_.reason})")
        return held(f"{rb.verdict} kept")
    if re_.verdict == "not_stationary":
        return counterexample("stationarity lost by a positive replication")
    return skipped("base inconclusive")


@claim("E2 replication with a copy of beta = 0: the copy is an escape neuron iff D_j != 0 for the "
       "original neuron; in scalar output that needs a kink of neuron j (or a_j = 0)",
       (embedding, {"op": "replicate0"}), name="embed-replicate-zero", budget=25, theory="docs/theory.md §7 E2",
       tags=("embedding",))
def embed_replicate_zero(inst):
    pb, pt, base, rb, re_, j, betas = _e2_setup(inst)
    if _stationary(rb) is not True:
        return skipped(f"base verdict {rb.verdict}")
    if re_.verdict == "not_stationary":
        return counterexample(f"a beta = 0 copy broke stationarity ({re_.reason})")
    zero_copy = _copies(base, j, betas)[betas.index(fmpq(0))]
    Dnz = brute.plain_escape_direction(pb, base, j, 0) is not None
    st = ExactState(pb, base)
    if pb.k == 1 and Dnz and not st.kinks(j) and any(v != 0 for v in base.A[j]):
        return counterexample(f"scalar output, neuron {j} has no kink and a_j != 0, yet D_j != 0")
    if _undecided_stationarity(re_):
        return skipped("embedded stationarity undecided")
    if re_.verdict == "global_min":
        return held("global minimum (residuals zero, D = 0)") if not Dnz else counterexample("global min with D != 0")
    in_esc = zero_copy in re_.escape_neurons
    if in_esc != Dnz:
        return counterexample(f"copy {zero_copy} escape per certify {in_esc}, D_j != 0 per plain loops {Dnz}")
    if rb.verdict == "local_min" and re_.verdict != ("saddle" if Dnz else "local_min"):
        return counterexample(f"local_min base, D_j != 0: {Dnz}, embedded verdict {re_.verdict}")
    return held(f"{rb.verdict} -> {re_.verdict}; D_j != 0: {Dnz}")


@claim("E2 replication with a copy of beta < 0: stationarity is kept iff phi_j == 0 "
       "(b_j = 0 and no non-zero hinge coefficient)",
       (embedding, {"op": "replicate-"}), name="embed-replicate-negative", budget=25, theory="docs/theory.md §7 E2",
       tags=("embedding",))
def embed_replicate_neg(inst):
    pb, pt, base, rb, re_, j, betas = _e2_setup(inst)
    if _stationary(rb) is not True:
        return skipped(f"base verdict {rb.verdict}")
    if _undecided_stationarity(re_):
        return skipped("embedded stationarity undecided")
    nr = ExactState(pb, base).neuron(j)
    phi0 = all(v == 0 for v in nr.b) and not nr.gamma
    stat = re_.verdict != "not_stationary"
    if stat != phi0:
        return counterexample(f"phi_j == 0: {phi0}, but the embedded point is {re_.verdict}")
    return held(f"phi_j == 0: {phi0}; embedded {re_.verdict}")


# ---------------------------------------------------------------------------------------------
# 4. Permutation points
# ---------------------------------------------------------------------------------------------

def permutation_point(src, ks=(1, 2, 3)) -> Instance:
    """Any structured point with one neuron split into two equal halves (w, a/2), (w, a/2)."""
    base = gen.structured_point(src, ks=ks)
    j = src.integer(0, base.point.m - 1)
    new = replicate(base.problem, base.point, j, (fmpq(1, 2), fmpq(1, 2)))
    return Instance(base.problem, new, "permutation", {"base_W": base.point.W, "base_A": base.point.A,
                                                       "neuron": j, "pair": [j, base.point.m]})


@claim("permutation point (two equal neurons i, j): the loss is exactly constant along "
       "(a_i + delta e_c, a_j - delta e_c) for every output c: at least k exactly flat directions",
       permutation_point, name="permutation-flat", budget=30, theory="docs/theory.md §7 permutation points",
       tags=("permutation",))
def permutation_flat(inst):
    pb, pt = inst.problem, inst.point
    i, j = inst.meta["pair"]
    st = ExactState(pb, pt)
    base = st.loss_half_mean
    for c in range(pb.k):
        dW = obj_array([[0] * pb.d for _ in range(pt.m)])
        dA = obj_array([[0] * pb.k for _ in range(pt.m)])
        dA[i, c], dA[j, c] = fmpq(1), fmpq(-1)
        r = brute.ray(pb, pt, st, dW, dA, f"flat {c}")
        if any(v != 0 for v in r.coeffs):
            return counterexample(f"direction {c}: ray polynomial {r.coeffs} is not zero")
        for delta in (fmpq(1), fmpq(-2), fmpq(7, 3)):
            if ex.point_loss(pb, brute.moved(pt, dW, dA, delta)) != base:
                return counterexample(f"direction {c}: loss changes at delta = {delta}")
    return held(f"{pb.k} exactly flat directions")


@claim("symmetric criticality: equal neurons have equal G, D and phi and the same per-neuron "
       "verdicts; the split point is stationary iff the merged (narrower) point is, with the same verdict "
       "(except the refuted case of replicate-vector-min: a vector-output minimum not from Theorem A)",
       permutation_point, name="symmetric-criticality", budget=30, theory="docs/theory.md §7, §9",
       tags=("permutation",))
def symmetric_criticality(inst):
    pb, pt = inst.problem, inst.point
    i, j = inst.meta["pair"]
    st = ExactState(pb, pt)
    ni, nj = st.neuron(i), st.neuron(j)
    if ni.G != nj.G:
        return counterexample(f"G_i = {ni.G} != G_j = {nj.G}")
    rp = ex.Reference(pb, pt.W, pt.A)
    for r in brute.candidate_rs(pb, pt, i, 0, count=10):
        if ni.D(r) != nj.D(r) or ni.phi(r) != nj.phi(r):
            return counterexample(f"D or phi differ at r = {r}")
        if brute.D_plain(pb, pt, i, r, rp) != ni.D(r):
            return counterexample(f"core: Neuron.D({r}) = {ni.D(r)} != plain D = {brute.D_plain(pb, pt, i, r, rp)}")
    res = certify(pb, pt)
    rb = certify(pb, _base(inst))
    if (res.verdict == "not_stationary") != (rb.verdict == "not_stationary"):
        return counterexample(f"merged point {rb.verdict} but split point {res.verdict}")
    if rb.verdict in STATIONARY and res.verdict != rb.verdict:
        if (rb.verdict, res.verdict) == ("local_min", "saddle") and rb.escape_neurons and pb.k > 1:
            return held(f"merged local_min not from Theorem A (escape neurons {rb.escape_neurons}, a != 0), "
                        "split saddle: the refuted docs/theory.md §7 case (claim replicate-vector-min)")
        return counterexample(f"merged point {rb.verdict} but split point {res.verdict}")
    if res.verdict != "not_stationary" and len(res.neurons) == pt.m:
        a, b = res.neurons[i], res.neurons[j]
        if (a.s1, a.s2, a.escape) != (b.s1, b.s2, b.escape):
            return counterexample(f"per-neuron reports differ: {a} vs {b}")
    return held(f"merged {rb.verdict}, split {res.verdict}")


# ---------------------------------------------------------------------------------------------
# 5. Conservation of ||w_j||^2 - ||a_j||^2
# ---------------------------------------------------------------------------------------------

def gd_start_any(src) -> Instance:
    return gen.gd_start(src, ks=(1, 2), max_m=3, activations=gen.ACTIVATION_KINDS)


@claim("one exact GD step changes ||w_j||^2 - ||a_j||^2 by exactly lr^2 (||dL/dw_j||^2 - ||dL/da_j||^2) "
       "(so gradient flow conserves it; 3 exact rational steps from a balanced small initialisation)",
       gd_start_any, name="conservation-exact", budget=20, theory="docs/theory.md §9", tags=("conservation",))
def conservation_exact(inst):
    pb = inst.problem
    lr = q(inst.meta["lr"])
    W, A = rows(inst.point.W), rows(inst.point.A)
    for step in range(3):
        gW, gA = grads_exact(pb, W, A)
        W1 = [[w - lr * g for w, g in zip(wr, gr)] for wr, gr in zip(W, gW)]
        A1 = [[a - lr * g for a, g in zip(ar, gr)] for ar, gr in zip(A, gA)]
        for j in range(len(W)):
            qd = (ex.dot(W1[j], W1[j]) - ex.dot(A1[j], A1[j])) - (ex.dot(W[j], W[j]) - ex.dot(A[j], A[j]))
            pred = lr * lr * (ex.dot(gW[j], gW[j]) - ex.dot(gA[j], gA[j]))
            if qd != pred:
                return counterexample(f"step {step}, neuron {j}: change {qd} != lr^2 (...) = {pred}")
        W, A = W1, A1
    return held("exact identity on 3 steps")


@claim("float GD: the drift of ||w_j||^2 - ||a_j||^2 over T steps is O(lr^2): it equals "
       "lr^2 * sum_t (||g_w||^2 - ||g_a||^2) up to round-off, and halving lr divides it by about 4 "
       "(ratio in [3, 5] whenever the two short paths see the same gradients)",
       gd_start_any, name="conservation-drift", budget=20, theory="docs/theory.md §9", tags=("conservation",))
def conservation_drift(inst):
    pb = inst.problem
    X, Y = pb.Xf, pb.Yf
    ap, am = float(pb.activation.alpha_plus), float(pb.activation.alpha_minus)
    lr0 = to_float(q(inst.meta["lr"])) / 100
    T = 20
    out = {}
    for lr in (lr0, lr0 / 2):
        W, A = inst.point.Wf.copy(), inst.point.Af.copy()
        q0 = imbalance_float(W, A)
        S = np.zeros(W.shape[0])
        mag = np.zeros(W.shape[0])
        for _ in range(T):
            _, gW, gA = grads_float(X, Y, W, A, ap, am)
            dlt = (gW * gW).sum(1) - (gA * gA).sum(1)
            S += dlt
            mag += np.abs(dlt)
            W, A = W - lr * gW, A - lr * gA
        drift = imbalance_float(W, A) - q0
        scale = max(1.0, float(np.abs(W).max()), float(np.abs(A).max())) ** 2
        tol = 64 * T * np.finfo(float).eps * scale
        if np.any(np.abs(drift - lr * lr * S) > tol + 1e-9 * lr * lr * mag):
            return counterexample(f"lr = {lr}: drift {drift} != lr^2 sum_t(...) = {lr * lr * S}")
        out[lr] = (drift, S, mag, tol)
    (d1, S1, _, tol), (d2, S2, _, _) = out[lr0], out[lr0 / 2]
    ok = [j for j in range(len(d1)) if abs(d1[j]) > 1e4 * tol and abs(S1[j] - S2[j]) <= 0.1 * abs(S1[j])]
    if not ok:
        return skipped("drift below round-off or gradients differ along the two paths")
    ratios = [d1[j] / d2[j] for j in ok]
    if any(not 3 <= r <= 5 for r in ratios):
        return counterexample(f"drift ratio for lr vs lr/2: {ratios} (expected about 4)")
    return held(f"ratios {[round(float(r), 3) for r in ratios]}")


# ---------------------------------------------------------------------------------------------
# 6. Deep R -> R^p ReLU networks: knots
# ---------------------------------------------------------------------------------------------

def _net(inst) -> kn.DeepNet:
    return kn.DeepNet.from_json(inst.meta["network"])


def deep_mix(src) -> Instance:
    if src.integer(0, 2) == 0:
        return kn.two_layer_structured(src, widths=(src.integer(1, 3), src.integer(1, 2)))
    return kn.deep_network(src)


@claim("the exact knot counter is right: f is affine between consecutive reported knots and beyond "
       "the extreme ones (exact evaluation at random rational points), and the slope changes at every reported knot",
       deep_mix, name="knots-counter", budget=40, theory="seed paper: R -> R^p ReLU networks", tags=("knots",))
def knots_counter(inst):
    net = _net(inst)
    ks = kn.knots(net)
    msg = kn.check_knots(net, ks, seed=len(ks))
    return counterexample(msg, knots=[str(x) for x in ks]) if msg else held(f"{len(ks)} knots")


@claim("a deep R -> R^p ReLU network with hidden widths n_1..n_l has at most prod(n_i + 1) - 1 knots",
       deep_mix, name="knots-bound", budget=40, theory="seed paper: R -> R^p ReLU networks", tags=("knots",))
def knots_bound(inst):
    net = _net(inst)
    n, b = len(kn.knots(net)), kn.bound(net.widths)
    if n > b:
        return counterexample(f"widths {net.widths}: {n} knots > bound {b}")
    return held(f"{n} <= {b}")


def small_two_layer(src) -> Instance:
    return kn.two_layer_structured(src, widths=(src.integer(1, 2), src.integer(1, 3)))


@claim("two hidden layers with n_1 <= 2: at most n_1 (n_2 + 1) knots, below the bound (n_1+1)(n_2+1) - 1 "
       "(widths (1,1): 2 < 3, (2,1): 4 < 5, (1,2): 3 < 5, (2,2): 6 < 8)",
       small_two_layer, name="knots-small-widths", budget=30, theory="seed paper; exhaustive sign-vector argument",
       tags=("knots",))
def knots_small(inst):
    net = _net(inst)
    n1, n2 = net.widths
    n = len(kn.knots(net))
    if n > n1 * (n2 + 1):
        return counterexample(f"widths {net.widths}: {n} knots > n1 (n2 + 1) = {n1 * (n2 + 1)}")
    return held(f"{n} <= {n1 * (n2 + 1)}")


@claim("widths (3,2) never reach the bound (3+1)(2+1) - 1 = 11 knots (a conjecture expected to FAIL: "
       "the bound is attained)",
       (kn.two_layer_structured, {"widths": (3, 2)}), name="knots-3-2-below-bound", budget=30,
       expect="counterexample", theory="seed paper: attainment of the knot bound", tags=("knots",))
def knots_32(inst):
    net = _net(inst)
    ks = kn.knots(net)
    if len(ks) >= 11:
        bad = kn.check_knots(net, ks)
        if bad:
            return skipped(f"counter disagrees with evaluation: {bad}")
        return counterexample(f"widths (3, 2) with {len(ks)} knots: {[str(x) for x in ks]}")
    return held(f"{len(ks)} knots")
