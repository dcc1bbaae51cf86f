"""Verdicts (docs/theory.md §5): stationarity per neuron, escape neurons, Theorems A/B, certificates.

A point with an output bias c (docs/biases.md) adds the condition (S0) sum_i e_i = 0, decided right
after the loss-0 test; Theorems A/B and the escape path then hold with c fixed, and the second-order
routes use the joint Hessian in (W, A, c) (decide/second_order.py)."""
from __future__ import annotations

import hashlib
import json
import marshal
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from flint import fmpq

from relucert.errors import require
from relucert.decide.escape import EscapeDecision, choose_step, escape_path_polynomial, escape_test
from relucert.core.formulas import ExactState, loss_half_mean, ray_coefficients
from relucert.core.linalg import dot
from relucert.core.problem import Point, Problem, fmpq_to_float, qstr
from relucert.decide.kinks import decide_kinks
from relucert.decide.second_order import morse_bott, second_order_ray
from relucert.decide.stationarity import PhiDecision, decide_phi

FORMAT = "verifier-certificate/1"
VERDICTS = ("not_stationary", "global_min", "local_min", "saddle", "inconclusive")


def fingerprint(problem_json: dict, point_json: dict) -> str:
    """SHA-256 of the canonical JSON of problem and point: binds a certificate to its instance."""
    blob = json.dumps({"problem": problem_json, "point": point_json}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class NeuronReport:
    j: int
    status: str            # one of core.formulas.NEURON_STATUSES
    kinks: list
    s1: bool
    s2: bool | None
    s2_method: str
    escape: bool | None
    why: str


@dataclass(frozen=True)
class EscapePath:
    """The escape path of a saddle (docs/theory.md §4): w_j + t r, a_j = -t^2 D, valid for 0 < t < t_max."""
    neuron: int
    r: list                                  # fmpq
    D: list                                  # fmpq
    t_max: fmpq | None
    t0: fmpq                                 # a step with exactly lower loss


@dataclass
class Result:
    verdict: str
    problem: Problem
    point: Point
    loss: fmpq                               # in the problem's convention
    escape_neurons: list
    neurons: list                            # NeuronReport
    certificate: dict
    reason: str = ""
    seconds: float = 0.0
    refined: Any = None                      # filled by refinement (later issue)
    escape_path: EscapePath | None = None    # typed copy of evidence.escape_path (saddles)
    descent_derivative: fmpq | None = None   # L'(theta; Delta) < 0 of evidence.not_stationary

    def loss_json(self) -> dict:
        return {"convention": self.problem.loss, "exact": str(self.loss),
                "float": fmpq_to_float(self.loss)}

    def to_json(self, with_certificate: bool = False) -> dict:
        out = {"verdict": self.verdict, "reason": self.reason,
               "escape_neurons": self.escape_neurons, "loss": self.loss_json(),
               "n": self.problem.n, "d": self.problem.d, "k": self.problem.k, "m": self.point.m,
               "activation": self.problem.activation.name,
               "neurons": [n.__dict__ for n in self.neurons], "seconds": round(self.seconds, 4)}
        if self.point.c is not None:
            out["output_bias"] = [str(v) for v in self.point.c.tolist()]
        if with_certificate:
            out["certificate"] = self.certificate
        return out

    def report(self) -> str:
        from relucert.decide.report import text_report
        return text_report(self)


def _direction_json(j, dw, da) -> dict:
    return {"neuron": j, "dw": [str(v) for v in dw], "da": [str(v) for v in da]}


def _not_stationary(state: ExactState, j: int, dw: list, da: list, reason: str) -> dict:
    """Evidence for a descent direction moving only neuron j: L'(theta;Delta) and a good step."""
    pb, pt = state.problem, state.point
    d, k = pb.d, pb.k
    dW = np.empty((1, d), dtype=object)
    dW[0, :] = [fmpq(v) for v in dw]
    dA = np.empty((1, k), dtype=object)
    dA[0, :] = [fmpq(v) for v in da]
    Zc = state.z_column(j)
    c1, c2, c3, c4, t_max = ray_coefficients(pb.X, state.E, Zc, None, pt.W[j:j + 1], pt.A[j:j + 1],
                                             dW, dA, state.ap, state.am)
    deriv = state.neuron(j).phi(dw) + dot(da, state.G[j].tolist())
    require(deriv == c1, "directional derivative and ray polynomial disagree")
    poly = [fmpq(0), c1, c2, c3, c4]
    t = choose_step(poly, t_max)
    require(t is not None, "no step below t_max lowers the loss along the descent direction")
    new_loss = state.loss_half_mean_moved(j, [a + t * b for a, b in zip(pt.W[j].tolist(), dW[0].tolist())],
                                          [a + t * b for a, b in zip(pt.A[j].tolist(), dA[0].tolist())])
    require(new_loss < state.loss_half_mean, "descent step did not lower the loss")
    return {"reason": reason, "direction": _direction_json(j, dw, da),
            "derivative": str(deriv), "ray_polynomial": [str(v) for v in poly],
            "t_max": None if t_max is None else str(t_max), "step": str(t),
            "loss_at_step": str(new_loss * pb.loss_factor())}, deriv


def _output_bias_descent(state: ExactState) -> tuple[dict, fmpq]:
    """Evidence for the (S0) descent direction of a point with an output bias whose residuals do not
    sum to 0: Delta = (0, 0, dc = -e_bar); no pre-activation moves, so exactly for every t >= 0
    L(theta + t Delta) - L(theta) = -t |e_bar|^2 + t^2 |e_bar|^2 / 2 (docs/biases.md §3.5)."""
    pb, pt = state.problem, state.point
    m, d, k = pt.m, pb.d, pb.k
    dc = [-v for v in state.mean_residual]
    dW = np.empty((m, d), dtype=object)
    dA = np.empty((m, k), dtype=object)
    dW[...] = fmpq(0)
    dA[...] = fmpq(0)
    # no neuron moves: the ray polynomial over neuron 0 alone is the same (ray_coefficients works on
    # any subset of neurons), and needs one column of Z instead of all of them
    c1, c2, c3, c4, t_max = ray_coefficients(pb.X, state.E, state.z_column(0), None, pt.W[:1], pt.A[:1],
                                             dW[:1], dA[:1], state.ap, state.am, dc=dc)
    deriv = state.directional_derivative(dW, dA, dc)
    require(deriv == c1 and deriv == -dot(dc, dc) and t_max is None, "(S0) descent polynomial")
    poly = [fmpq(0), c1, c2, c3, c4]
    t = choose_step(poly, t_max)
    require(t is not None, "no step lowers the loss along dc = -e_bar")
    new_loss = state.loss_half_mean_moved(0, pt.W[0].tolist(), pt.A[0].tolist(), [t * b for b in dc])
    require(new_loss < state.loss_half_mean, "(S0) descent step did not lower the loss")
    return {"reason": "S0", "direction": {"neuron": None, "dc": [str(v) for v in dc]},
            "derivative": str(deriv), "ray_polynomial": [str(v) for v in poly],
            "t_max": None, "step": str(t), "loss_at_step": str(new_loss * pb.loss_factor())}, deriv


@dataclass(frozen=True)
class _Remembered:
    ph: PhiDecision | None
    esc: EscapeDecision | None
    item: bytes               # the neuron's evidence item, serialised (marshal: a fresh copy per use)
    report: tuple             # its NeuronReport fields after j and s1 (kinks as a tuple)


class NeuronMemo:
    """The per-neuron analyses of the certifications of nearby points (the readings of one
    refinement differ in a few neurons: the output weight or the whole of a tiny neuron, dead
    neurons set to zero), shared between them.

    A neuron's analysis (its status, kinks, G_j, the (S2) decision with its witness, the escape
    decision, its evidence item and report line) is a function of the data X, the activation, the
    residuals E, the neuron's exact (w_j, a_j) and the method alone (its index only labels it); it
    is kept under exactly those, as text (one table per data/residuals/method, keyed by the
    neuron's weights), never under object identity.  A certification with a memo returns the same
    certificate, byte for byte, as one without (tests/test_refine_speed_equivalence.py)."""

    def __init__(self, keep: int = 100000):
        self._tables: dict = {}
        self.recent: dict = {}    # what the latest certification leaves for the next one (Point.to_json, ExactState)
        self._count = 0
        self.keep = keep
        self.hits = 0

    def keys(self, pj: dict, ptj: dict, state: ExactState, method: str) -> list[tuple]:
        """The key of each neuron of the point: (the data, the activation, the exact residuals and
        the method as text; its exact (w_j, a_j) as their strings).  The index j enters only the item and the
        report line, which are filled in on the way out."""
        base = "\n".join([method, json.dumps([pj["X"], pj["activation"]], separators=(",", ":")),
                           json.dumps([[qstr(v) for v in row] for row in state.E.tolist()], separators=(",", ":"))])
        return [(base, (tuple(w), tuple(a))) for w, a in zip(ptj["W"], ptj["A"])]

    def get(self, key: tuple):
        got = self._tables.get(key[0], {}).get(key[1])
        if got is not None:
            self.hits += 1
        return got

    def put(self, key: tuple, value: _Remembered) -> None:
        if self._count < self.keep:
            self._tables.setdefault(key[0], {})[key[1]] = value
            self._count += 1


def certify(problem: Problem, point: Point, *, method: str = "auto", progress=None,
            memo: NeuronMemo | None = None) -> Result:
    """Exact verdict of the point as given, with a certificate (no refinement).

    ``progress(done, total, None)``, if given, is called as the per-neuron analysis advances (two
    passes over the m neurons: stationarity, then the escape test; total = 2 m).  ``memo``: a
    ``NeuronMemo`` shared by the certifications of nearby points (same certificate, less work)."""
    t0 = time.perf_counter()
    state = ExactState(problem, point, None if memo is None else memo.recent)    # validates the shapes
    pj, ptj = problem.to_json(), point.to_json(None if memo is None else memo.recent)
    cert: dict = {"format": FORMAT, "problem": pj, "point": ptj,
                  "fingerprint": fingerprint(pj, ptj), "verdict": None, "evidence": {}}
    ev = cert["evidence"]
    ev["loss"] = {"convention": problem.loss, "value": str(state.loss)}
    ev["derivative_convention"] = "half_mean"
    m = point.m
    reports: list[NeuronReport] = []

    typed: dict = {}

    def finish(verdict, reason, escape_neurons):
        cert["verdict"] = verdict
        return Result(verdict, problem, point, state.loss, escape_neurons, reports, cert, reason,
                      time.perf_counter() - t0, **typed)

    if state.loss_half_mean == 0:
        for j in range(m):
            nr = state.neuron(j)
            reports.append(NeuronReport(j, state.status(j), nr.kinks, True, True, "zero loss", False,
                                        "residuals are all zero"))
        return finish("global_min", "the loss is exactly 0", [])

    # (S0), with an output bias only: the residuals sum to 0 over all data points (zero inputs too)
    if point.c is not None and any(v != 0 for v in state.mean_residual):
        ev["not_stationary"], typed["descent_derivative"] = _output_bias_descent(state)
        return finish("not_stationary", "the residuals do not sum to 0, (S0) fails: dL/dc = mean residual "
                                        "!= 0 (descent along dc = -mean residual)", [])

    # (S1) for all neurons first: the cheapest descent direction
    for j in range(m):
        G = state.G[j].tolist()
        if any(G):                              # some G_jc != 0
            ev["not_stationary"], typed["descent_derivative"] = _not_stationary(
                state, j, [0] * problem.d, [-v for v in G], "S1")
            nr = state.neuron(j)
            reports.append(NeuronReport(j, state.status(j), nr.kinks, False, None, "", None,
                                        "G_j = dL/da_j != 0"))
            return finish("not_stationary", f"neuron {j}: dL/da_j != 0 (descent along -G_j)", [])

    neurons_ev = []
    decisions: dict[int, tuple[PhiDecision | None, EscapeDecision | None]] = {}
    keys = memo.keys(pj, ptj, state, method) if memo is not None else None
    remembered = {}
    for j in range(m):
        if progress is not None:
            progress(j, 2 * m, None)
        if keys is not None:
            got = memo.get(keys[j])
            if got is not None:
                remembered[j] = got
                decisions[j] = (got.ph, None)
                continue
        nr = state.neuron(j)
        if nr.a_zero or not nr.gamma and all(v == 0 for v in nr.b):
            ph = None if nr.a_zero else PhiDecision(True, "cones", witness={
                "b": [qstr(v) for v in nr.b], "hinges": [], "patterns": [{"signs": [], "s": [], "mu": []}]})
        else:
            ph = decide_phi(nr.b, nr.gamma, method)
        if ph is not None and ph.ok is False:
            reports.append(NeuronReport(j, state.status(j), nr.kinks, True, False, ph.method, None,
                                        f"phi_j(r) < 0: {ph.note}"))
            ev["not_stationary"], typed["descent_derivative"] = _not_stationary(
                state, j, ph.descent, [0] * problem.k, "S2")
            return finish("not_stationary", f"neuron {j}: phi_j(r) = a_j.D_j(r) < 0 for some r ({ph.note})", [])
        decisions[j] = (ph, None)

    undecided = [j for j, (ph, _) in decisions.items() if ph is not None and ph.ok is None]
    escape_neurons, unknown_escape = [], []
    for j in range(m):
        if progress is not None:
            progress(m + j, 2 * m, None)
        if j in remembered:
            got = remembered[j]
            decisions[j] = (got.ph, got.esc)
            if got.esc is not None and got.esc.escape:
                escape_neurons.append(j)
            elif got.esc is not None and got.esc.escape is None:
                unknown_escape.append(j)
            item = marshal.loads(got.item)
            item["neuron"] = j
            neurons_ev.append(item)
            status, kinks, s2, s2_method, escape, why = got.report
            reports.append(NeuronReport(j, status, list(kinks), True, s2, s2_method, escape, why))
            continue
        nr = state.neuron(j)
        ph = decisions[j][0]
        esc = escape_test(nr) if j not in undecided else None
        decisions[j] = (ph, esc)
        item = {"neuron": j, "G": [qstr(v) for v in nr.G],
                "stationarity": {"method": "zero_output"} if ph is None else
                ({"method": ph.method, **ph.witness} if ph.ok else {"method": "undecided"})}
        if esc is not None:
            item["escape"] = ({"escape": None, "method": "undecided"} if esc.escape is None
                              else {"escape": esc.escape, **esc.witness})
            if esc.escape:
                escape_neurons.append(j)
            elif esc.escape is None:
                unknown_escape.append(j)
        neurons_ev.append(item)
        why = []
        if ph is None:
            why.append("a_j = 0")
        elif ph.ok:
            why.append(f"phi_j >= 0 ({ph.note or ph.method})")
        else:
            why.append(f"(S2) undecided: {ph.note}")
        if esc is not None:
            why.append(esc.note)
        reports.append(NeuronReport(j, state.status(j), nr.kinks, True,
                                    True if ph is None else ph.ok, "trivial" if ph is None else ph.method,
                                    None if esc is None else esc.escape, "; ".join(why)))
        if keys is not None:
            nrep = reports[-1]
            memo.put(keys[j], _Remembered(ph, esc, marshal.dumps(item), (nrep.status, tuple(nrep.kinks), nrep.s2,
                                                                       nrep.s2_method, nrep.escape, nrep.why)))
    ev["neurons"] = neurons_ev
    if progress is not None:
        progress(2 * m, 2 * m, None)

    if undecided:
        return finish("inconclusive", f"stationarity of neurons {undecided} could not be decided exactly",
                      escape_neurons)

    def kink_decided(kd: dict, why_min: str, why_saddle: str):
        # the kink second-order route (decide/kinks.py) as a verdict, or None when it decides nothing
        if kd["verdict"] == "local_min":
            ev["kink_second_order"] = kd["evidence"]
            return finish("local_min", why_min, escape_neurons)
        if kd["verdict"] == "saddle":
            ev["second_order"] = kd["evidence"]
            return finish("saddle", why_saddle, escape_neurons)
        return None

    zero_a_escape = [j for j in escape_neurons if all(v == 0 for v in point.A[j])]   # Neuron.a_zero
    if zero_a_escape:
        j = zero_a_escape[0]
        esc = decisions[j][1]
        ev["escape_path"], typed["escape_path"] = _escape_path(state, j, esc.r, esc.D)
        return finish("saddle", f"neuron {j} is an escape neuron with a_j = 0: the loss decreases along "
                                f"w_j + t r, a_j = -t^2 D_j(r) (leading term -t^3 ||D||^2)", escape_neurons)
    if escape_neurons:
        so = second_order_ray(state, decisions, escape_neurons)
        if so is not None:
            ev["second_order"] = so
            return finish("saddle", f"vector output, escape neurons {escape_neurons} with a_j != 0: a second-order "
                                    f"descent ray ({so['how']}): L(theta + t Delta) - L(theta) = c2 t^2 + c3 t^3 + "
                                    f"c4 t^4 with L'(theta;Delta) = 0 and c2 = {so['polynomial'][2]} < 0",
                          escape_neurons)
        mb = morse_bott(state)
        if mb is not None:
            ev["morse_bott"] = mb
            return finish("local_min", f"vector output, escape neurons {escape_neurons} with a_j != 0, but the point "
                                       f"is smooth and the exact Hessian is positive semi-definite with kernel = the "
                                       f"tangent space of the critical manifold (rescaling orbits, dead neurons; "
                                       f"dimension {mb['tangent_dimension']}): a Morse-Bott local minimum",
                          escape_neurons)
        kd = decide_kinks(state)
        done = kink_decided(kd, f"vector output, escape neurons {escape_neurons} with a_j != 0: second-order "
                                f"sufficiency on every kink piece ({kd['reason']})",
                            f"vector output, escape neurons {escape_neurons} with a_j != 0: {kd['reason']}")
        if done is not None:
            return done
        return finish("inconclusive", f"vector output: escape neurons {escape_neurons} have a_j != 0; "
                                      "Theorems A/B decide nothing here, no second-order descent ray was "
                                      "found (along the escape neurons' flat directions, or the Hessian at a "
                                      "smooth point), no Morse-Bott proof applies, and the kink second-order "
                                      f"test stops: {kd['reason']}", escape_neurons)
    if unknown_escape:
        kd = decide_kinks(state)       # needs no escape status: only stationarity (checked above)
        done = kink_decided(kd, f"escape status of neurons {unknown_escape} undecided, but second-order "
                                f"sufficiency holds on every kink piece ({kd['reason']})",
                            f"escape status of neurons {unknown_escape} undecided; {kd['reason']}")
        if done is not None:
            return done
        return finish("inconclusive", f"escape status of neurons {unknown_escape} undecided", escape_neurons)
    return finish("local_min", "stationary and no escape neuron (Theorem A)", [])


def _escape_path(state: ExactState, j: int, r: list, D: list) -> dict:
    pb, pt = state.problem, state.point
    c, t_max = escape_path_polynomial(pb.X, state.E, state.z_column(j)[:, 0].tolist(), r, D, state.ap, state.am)
    require(c[0] == 0 and c[1] == 0 and c[2] == 0 and c[3] == -dot(D, D), "escape path polynomial")
    t = choose_step(c, t_max)
    require(t is not None, "no step below t_max lowers the loss along the escape path")
    new_loss = state.loss_half_mean_moved(j, [a + t * b for a, b in zip(pt.W[j].tolist(), r)],
                                          [-t * t * v for v in D])
    require(new_loss < state.loss_half_mean, "escape step did not lower the loss")
    return ({"neuron": j, "r": [str(v) for v in r], "D": [str(v) for v in D],
             "polynomial": [str(v) for v in c], "t_max": None if t_max is None else str(t_max),
             "t0": str(t), "loss_at_t0": str(new_loss * pb.loss_factor())},
            EscapePath(j, list(r), list(D), t_max, t))


def escape_path_losses(result: Result, steps=(fmpq(1, 10), fmpq(1, 100), fmpq(1, 1000))) -> list:
    """Exact loss decrease along a saddle's escape path at a few step sizes (within t_max)."""
    ep = result.escape_path
    if ep is None:
        return []
    pb, pt = result.problem, result.point
    j = ep.neuron
    out = []
    for t in steps:
        if ep.t_max is not None and t >= ep.t_max:
            continue
        new = pt.copy()
        new.W[j] = [a + t * b for a, b in zip(pt.W[j].tolist(), ep.r)]
        new.A[j] = [-t * t * v for v in ep.D]
        nl = loss_half_mean(pb, new) * pb.loss_factor()
        out.append({"t": str(t), "loss": str(nl), "decrease": str(result.loss - nl)})
    return out
