"""Coverage campaign: how often does the certifier reach a definite verdict on ordinary training runs?
(issue 12, "Measure it").

    python benchmarks/bench_coverage.py [--runs N] [--jobs J] [--quick] [--json FILE] [--converge]
                                        [--timeout S] [--samples N]

Trains its own seeded runs (none of them the paper's data) and certifies two checkpoints of each
with ``relucert.certify_checkpoint(problem, point)`` (default options):

* networks: bias-free f(x) = sum_j a_j sigma(w_j . x), half-mean squared loss; in some runs a hidden
  bias is folded in as a constant-1 input column (a column of ones appended to X);
* targets: random (Gaussian), a random teacher network (same activation, 1..4 neurons, rescaled to
  unit RMS), and 1-D sine regression (x uniform in [-pi, pi], y_c = sin(f_c x + phase_c));
* n = 4..40, d = 1..6 (+1 with the bias column; sine: d = 1), m = 3..60 (log-uniform),
  k = 1 (half of the runs), 2 or 3;
* activations ReLU, leaky ReLU 0.1, leaky ReLU 0.01, abs;
* initialisation: vanishing (every weight N(0, 1) * 1e-3) or standard (PyTorch's nn.Linear default:
  uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both layers; the folded bias column uses the bound of
  the layer without it, as PyTorch's bias does);
* optimiser: full-batch gradient descent (lr 0.05 / 0.1 / 0.2, halved until the run stays finite)
  or full-batch Adam (betas 0.9 / 0.999, eps 1e-8, lr 1e-3 / 3e-3 / 1e-2), both written in numpy,
  in **float32** (data, weights, gradients and optimiser state; the checkpoints are float32 values
  and are certified as their exact binary values).

The (activation, target, init, optimiser) combinations (48) are dealt out by a fixed permutation, so
every 48 consecutive runs cover each combination once; the sizes, k, the bias column, the step size
and the number of steps are drawn from ``numpy.random.default_rng([SEED, run])``.

Checkpoints (recorded every steps/300 steps): the end point and one mid-plateau point, the recorded
checkpoint of smallest relative float gradient (max |gradient| / (max|y| max|x|), float32) in the
middle third of the run.  Each is certified in a fresh worker process (fork)
with a per-checkpoint time limit (``--timeout``, default 60 s; the worker is killed and the
checkpoint reported as "timeout").  Recorded per checkpoint: the slice keys (k, init, optimiser,
activation, target), ``report.float_gradient_relative``, the verdict, the certification time and,
when the verdict is not definite (definite = local_min, saddle, global_min), the reason, bucketed by
inspecting ``report.refined``.

Cross-check of every ``local_min``: ``--samples`` (5000) random perturbations of the certified exact
point (``cert['point']``), of relative size (to |theta|) log-uniform in 1e-7 .. 1e-3, float64 loss;
a perturbation counts when it lowers the loss by more than a float-rounding margin (with e_ic the
residuals and r_ic = (m + d + 4) eps64 (sum_j |a_jc sigma(w_j x_i)| + |y_ic|) a bound on their rounding
error: (2/n) sum_ic (|e_ic| + r_ic) r_ic + 8 eps64 L).  Counted perturbations are candidates for
"fragile minima" (a minimum that holds only within a tiny radius, e.g. because a tiny dead neuron
revives), not failures: the largest few are re-evaluated exactly (rational arithmetic, the
perturbation added to the exact point) and the largest confirmed one is shrunk by factors of 10 to
find how small a radius still lowers the loss (a lowering that persists to the smallest radius
would contradict the certificate and is flagged "SUSPECT").

``--converge``: every checkpoint is certified as ``relucert certify --converge`` does
(``certify_checkpoint(problem, point, converge="lbfgs")``): when the checkpoint (or its refinement)
gets no definite verdict, the float training dynamics are followed from it and their end point is
certified, inside the same time limit; the reason buckets are then the converged point's, the slices
stay those of the checkpoint as given.

``--quick``: 8 runs with capped sizes (n <= 12, d <= 3, m <= 8, a quarter of the steps).  Seeds are
fixed: the runs, verdicts and reasons are reproducible (BLAS threads are pinned to 1 when run as a
script), the times are not.
"""
from __future__ import annotations

import os

if __name__ == "__main__":      # reproducible float32 BLAS sums (tiny matrices; threads gain nothing)
    for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import faulthandler  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections import Counter, deque  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from multiprocessing.connection import wait as mp_wait  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from flint import fmpq  # noqa: E402

from relucert.core.formulas import loss_half_mean  # noqa: E402
from relucert.core.problem import Point, Problem, fmpq_to_float  # noqa: E402
from relucert.pipeline import certify_checkpoint  # noqa: E402
from relucert.refine import Tolerances, effective_kink_tol, float_gradient_norm  # noqa: E402

SEED = 20261212
DEFINITE = ("local_min", "saddle", "global_min")
NEAR_STATIONARY = 1e-3
TIMEOUT = 60.0
PERTURB_TIMEOUT = 180.0            # extra time for the perturbation cross-check of a local_min
SAMPLES = 5000
# name -> (alpha_plus, alpha_minus, relucert activation)
ACTS = {"relu": (1.0, 0.0, "relu"), "leaky0.1": (1.0, 0.1, "leaky_relu:0.1"),
        "leaky0.01": (1.0, 0.01, "leaky_relu:0.01"), "abs": (1.0, -1.0, "abs")}
TARGETS = ("random", "teacher", "sine")
INITS = ("vanishing", "standard")
OPTIMIZERS = ("gd", "adam")
COMBOS = list(itertools.product(ACTS, TARGETS, INITS, OPTIMIZERS))
_PERM = np.random.default_rng(SEED).permutation(len(COMBOS))


# ------------------------------------------------------------------------------------------------
# training (numpy, float32)
# ------------------------------------------------------------------------------------------------

def _sigma(Z, ap, am):
    return np.where(Z > 0, ap * Z, am * Z)


def loss_grad(X, Y, W, A, ap, am):
    """Half-mean loss (1/2n) sum_i |f(x_i) - y_i|^2 and its gradient (in the dtype of the inputs)."""
    n = X.shape[0]
    Z = X @ W.T
    H = _sigma(Z, ap, am)
    E = H @ A - Y
    L = 0.5 * (E * E).sum() / n
    gA = H.T @ E / n
    gW = ((np.where(Z > 0, ap, am) * (E @ A.T)).T @ X) / n
    return L, gW, gA


def _rel(gW, gA, scale):
    return float(max(np.abs(gW).max(), np.abs(gA).max())) / scale


def train_loop(X, Y, W, A, act, opt, lr, steps, every):
    """Full-batch GD or Adam in float32; returns [(step, loss, rel_grad, W, A)] every ``every``
    steps and at the end, or None when the run leaves the float range."""
    f32 = np.float32
    ap, am = f32(ACTS[act][0]), f32(ACTS[act][1])
    W, A, lr = W.astype(f32), A.astype(f32), f32(lr)
    scale = max(float(np.abs(Y).max()) * float(np.linalg.norm(X, axis=1).max()), 1e-30)
    b1, b2, eps = f32(0.9), f32(0.999), f32(1e-8)
    mW, vW, mA, vA = (np.zeros_like(W), np.zeros_like(W), np.zeros_like(A), np.zeros_like(A))
    hist = []
    L0 = None
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps + 1):
            L, gW, gA = loss_grad(X, Y, W, A, ap, am)
            if not (np.isfinite(L) and np.isfinite(gW).all() and np.isfinite(gA).all()):
                return None
            L0 = float(L) if L0 is None else L0
            if float(L) > 1e6 * max(L0, 1e-30):
                return None
            if t % every == 0 or t == steps:
                hist.append((t, float(L), _rel(gW, gA, scale), W.copy(), A.copy()))
            if t == steps:
                break
            if opt == "gd":
                W = W - lr * gW
                A = A - lr * gA
            else:
                c1, c2 = f32(1 - 0.9 ** (t + 1)), f32(1 - 0.999 ** (t + 1))
                mW = b1 * mW + (1 - b1) * gW
                vW = b2 * vW + (1 - b2) * gW * gW
                mA = b1 * mA + (1 - b1) * gA
                vA = b2 * vA + (1 - b2) * gA * gA
                W = W - lr * (mW / c1) / (np.sqrt(vW / c2) + eps)
                A = A - lr * (mA / c1) / (np.sqrt(vA / c2) + eps)
    return hist


def run_spec(r: int, quick: bool = False) -> dict:
    """The r-th run of the campaign (deterministic in r and quick)."""
    act, target, init, opt = COMBOS[int(_PERM[r % len(COMBOS)])]
    rng = np.random.default_rng([SEED, r])
    k = int(rng.choice([1, 2, 3], p=[0.5, 0.25, 0.25]))
    d0 = 1 if target == "sine" else int(rng.integers(1, 7))
    bias = bool(rng.random() < (0.75 if target == "sine" else 0.4))
    n = int(rng.integers(4, 41))
    m = int(round(math.exp(rng.uniform(math.log(3), math.log(60)))))
    if opt == "gd":
        lr, steps = float(rng.choice([0.05, 0.1, 0.2])), int(rng.choice([2000, 4000, 8000]))
    else:
        lr, steps = float(rng.choice([1e-3, 3e-3, 1e-2])), int(rng.choice([1000, 2000, 4000]))
    if quick:
        n, d0, m, steps = min(n, 12), min(d0, 3), min(m, 8), steps // 4
    return {"run": r, "seed": [SEED, r], "act": act, "target": target, "init": init, "optimizer": opt,
            "k": k, "n": n, "d": d0 + bias, "d_input": d0, "bias_column": bias, "m": m, "lr": lr,
            "steps": steps, "quick": quick}


def make_data(spec: dict, rng) -> tuple[np.ndarray, np.ndarray]:
    n, d0, k = spec["n"], spec["d_input"], spec["k"]
    if spec["target"] == "sine":
        x = rng.uniform(-math.pi, math.pi, size=(n, 1))
        freq = np.concatenate([[1.0], rng.uniform(0.5, 2.0, size=k - 1)])
        phase = np.concatenate([[0.0], rng.uniform(0, 2 * math.pi, size=k - 1)])
        X, Y = x, np.sin(x * freq + phase)
    else:
        X = rng.normal(size=(n, d0))
    if spec["bias_column"]:
        X = np.hstack([X, np.ones((n, 1))])
    if spec["target"] == "random":
        Y = rng.normal(size=(n, k))
    elif spec["target"] == "teacher":
        mt = int(rng.integers(1, 5))
        Wt, At = rng.normal(size=(mt, X.shape[1])), rng.normal(size=(mt, k))
        ap, am, _ = ACTS[spec["act"]]
        Y = _sigma(X @ Wt.T, ap, am) @ At
        rms = float(np.sqrt((Y * Y).mean()))
        Y = Y / rms if rms > 1e-12 else rng.normal(size=(n, k))
    return X.astype(np.float32), Y.astype(np.float32)


def init_weights(spec: dict, rng) -> tuple[np.ndarray, np.ndarray]:
    m, d, d0, k = spec["m"], spec["d"], spec["d_input"], spec["k"]
    if spec["init"] == "vanishing":
        return rng.normal(size=(m, d)) * 1e-3, rng.normal(size=(m, k)) * 1e-3
    W = rng.uniform(-1, 1, size=(m, d)) / math.sqrt(d0)     # PyTorch nn.Linear(d0, m) weight and bias
    A = rng.uniform(-1, 1, size=(m, k)) / math.sqrt(m)      # nn.Linear(m, k, bias=False)
    return W, A


def pick_mid(hist: list, steps: int) -> tuple:
    """The mid-plateau checkpoint: the recorded one of smallest relative float gradient in the middle
    third of the run (steps/3 .. 2 steps/3)."""
    third = [h for h in hist if steps / 3 <= h[0] <= 2 * steps / 3]
    return min(third, key=lambda h: h[2])


def train(spec: dict) -> dict:
    """Data, and the checkpoints [{name, step, W, A, train_loss, train_rel_grad}] of one run."""
    rng = np.random.default_rng([SEED, spec["run"], 1])
    X, Y = make_data(spec, rng)
    W0, A0 = init_weights(spec, rng)
    steps = spec["steps"]
    every = max(1, steps // 300)
    lr = spec["lr"]
    hist = None
    for _ in range(8):                  # halve the step until the run stays finite
        hist = train_loop(X, Y, W0, A0, spec["act"], spec["optimizer"], lr, steps, every)
        if hist is not None:
            break
        lr /= 2
    if hist is None:
        raise RuntimeError(f"run {spec['run']}: training diverges at every step size")
    spec = dict(spec, lr_used=lr, loss_start=hist[0][1], loss_end=hist[-1][1])
    end = hist[-1]
    mid = pick_mid(hist, steps)
    cps = [{"name": "end", "step": end[0], "W": end[3], "A": end[4], "train_loss": end[1], "train_rel_grad": end[2]},
           {"name": f"mid@{mid[0]}", "step": mid[0], "W": mid[3], "A": mid[4], "train_loss": mid[1],
            "train_rel_grad": mid[2]}]
    return {"spec": spec, "X": X, "Y": Y, "checkpoints": cps}


# ------------------------------------------------------------------------------------------------
# why a verdict is not definite
# ------------------------------------------------------------------------------------------------

# why a vector rounding got no ball certificate (the refusal text of relucert.decide.ball), most specific first
BALL_REFUSALS = (("singular Jacobian", "no ball, singular slice Jacobian (flat directions beyond the gauges)"),
                 ("not positive definite", "no ball, slice Hessian not positive definite"),
                 ("share one activation pattern", "no ball, neurons sharing a pattern without a gauge"),
                 ("dependent kink points", "no ball, dependent kink points"),
                 ("not proven strict", "no ball, (S2) at a kink not proven strict"),
                 ("time budget", "time budget"))
# why the float Newton of relucert.refine.vector found no stationary point (its stall diagnosis)
NEWTON_STALLS = (("run off to infinity", "neurons run off to infinity"),
                 ("flat valley", "a flat valley beyond Newton's reach"))


def reason_bucket(report) -> tuple[str | None, str]:
    """(bucket, detail) of a non-definite verdict, from ``report.refined`` (None when definite)."""
    if report.verdict in DEFINITE:
        return None, ""
    rf = report.refined
    if rf is None:
        g = report.float_gradient_relative
        if g is not None and g > Tolerances().stationary:
            return "not near-stationary (no refinement)", f"relative float gradient {g:.2e}; {report.given.reason}"
        return f"other: {report.given.reason[:60]}", report.given.reason
    method, reason = rf.get("method") or "", rf.get("reason") or ""
    detail = method if method == reason else f"{method} | {reason}"
    if rf.get("left_pattern"):
        return "refinement left the pattern", detail
    if "high-precision Newton skipped" in method:
        return "Newton skipped (too many unknowns)", detail
    if "not exactly stationary" in method:
        why = next((label for key, label in BALL_REFUSALS if key in method), "other")
        return f"rounding not exactly stationary (vector): {why}", detail
    if "too far" in method:
        return "refined point too far", detail
    if rf.get("certificate") is None:           # no refined point was certified
        for key, label in NEWTON_STALLS:
            if key in method:
                return f"no stationary point nearby: {label}", detail
        return f"no exact refinement: {method.split(';')[-1].strip()[:60]}", detail
    v = rf["verdict"]
    if v == "not_stationary":
        if "phi_j" in reason:
            return "refined point not stationary (S2: phi_j < 0 at a kink)", detail
        if "dL/da_j" in reason:
            return "refined point not stationary (S1: dL/da_j != 0)", detail
        return f"refined point not stationary: {reason[:60]}", detail
    if v == "inconclusive":
        return f"refined point inconclusive: {reason[:60]}", detail
    return f"other: {reason[:60]}", detail


# ------------------------------------------------------------------------------------------------
# perturbation cross-check of a certified local minimum
# ------------------------------------------------------------------------------------------------

def _batched_loss(X, Y, Wb, Ab, ap, am):
    Z = np.einsum("nd,bmd->bnm", X, Wb)
    H = np.where(Z > 0, ap * Z, am * Z)
    E = np.einsum("bnm,bmk->bnk", H, Ab) - Y
    return 0.5 * (E * E).sum(axis=(1, 2)) / X.shape[0]


def _exact_point(W, A, dW=None, dA=None) -> Point:
    """The exact point (W, A) (fmpq object arrays) plus the exact values of float perturbations."""
    W2, A2 = W.copy(), A.copy()
    if dW is not None:
        for idx in np.ndindex(W.shape):
            W2[idx] = W[idx] + fmpq(*float(dW[idx]).as_integer_ratio())
        for idx in np.ndindex(A.shape):
            A2[idx] = A[idx] + fmpq(*float(dA[idx]).as_integer_ratio())
    return Point(W2, A2)


def perturbation_check(pb: Problem, cert: dict, seed, samples: int = SAMPLES, lo: float = 1e-7,
                       hi: float = 1e-3, exact_confirm: int = 5) -> dict:
    """Random perturbations of the certified exact point; counts those lowering the float64 loss by
    more than a rounding margin, confirms the largest exactly and shrinks the largest confirmed."""
    t0 = time.perf_counter()
    pt = Point.make(cert["point"]["W"], cert["point"]["A"], pb)
    X, Y, Wf, Af = pb.Xf, pb.Yf, pt.Wf, pt.Af
    ap, am = fmpq_to_float(pb.activation.alpha_plus), fmpq_to_float(pb.activation.alpha_minus)
    m, d = Wf.shape
    k = Af.shape[1]
    norm = math.sqrt(float((Wf ** 2).sum() + (Af ** 2).sum()))
    Z = X @ Wf.T
    H = _sigma(Z, ap, am)
    L0 = float(_batched_loss(X, Y, Wf[None], Af[None], ap, am)[0])
    eps = float(np.finfo(np.float64).eps)
    E0 = np.abs(H @ Af - Y)
    err = (m + d + 4) * eps * (np.abs(H) @ np.abs(Af) + np.abs(Y))   # rounding bound of each residual
    margin = 2 * float(((E0 + err) * err).sum()) / X.shape[0] + 8 * eps * L0
    rng = np.random.default_rng(list(seed) + [2])
    P = m * d + m * k
    lowering = []                 # (decrease, radius, sample index, direction)
    batch = max(1, min(500, int(2e6 // max(1, X.shape[0] * m))))
    done = 0
    while done < samples:
        b = min(batch, samples - done)
        U = rng.normal(size=(b, P))
        U /= np.linalg.norm(U, axis=1, keepdims=True)
        rad = 10.0 ** rng.uniform(math.log10(lo), math.log10(hi), size=b)
        D = U * (rad * norm)[:, None]
        Ls = _batched_loss(X, Y, Wf[None] + D[:, :m * d].reshape(b, m, d), Af[None] + D[:, m * d:].reshape(b, m, k),
                           ap, am)
        for i in np.nonzero(Ls < L0 - margin)[0]:
            lowering.append((L0 - float(Ls[i]), float(rad[i]), done + int(i), D[i].copy()))
        done += b
    out = {"samples": samples, "lowering": len(lowering), "margin": margin, "loss": L0, "confirmed": 0,
           "min_radius_lowering": min((x[1] for x in lowering), default=None),
           "max_decrease": max((x[0] for x in lowering), default=None)}
    if lowering:
        Lx = loss_half_mean(pb, pt)
        best = None
        for dec, rad, idx, Dv in sorted(lowering, key=lambda x: -x[0])[:exact_confirm]:
            dW, dA = Dv[:m * d].reshape(m, d), Dv[m * d:].reshape(m, k)
            if loss_half_mean(pb, _exact_point(pt.W, pt.A, dW, dA)) < Lx:
                out["confirmed"] += 1
                best = best or (dec, rad, idx, dW, dA)
        if best is not None:
            dec, rad, idx, dW, dA = best
            smallest = rad
            for s in range(1, 9):          # shrink the direction by 10^-s: does it still lower the loss?
                f = 10.0 ** -s
                if loss_half_mean(pb, _exact_point(pt.W, pt.A, dW * f, dA * f)) < Lx:
                    smallest = rad * f
                else:
                    break
            Wp = Wf + dW
            flipped = sorted({int(j) for j in np.nonzero((np.sign(X @ Wp.T) != np.sign(Z)).any(axis=0))[0]})
            size = np.linalg.norm(Af, axis=1) * np.linalg.norm(Wf, axis=1)
            out["best"] = {"sample": idx, "radius": rad, "decrease_float": dec,
                           "smallest_radius_still_lowering": smallest,
                           "persists_to_smallest": smallest <= rad * 1e-8 * 1.0000001,
                           "neurons_flipping": flipped,
                           "their_|a||w|": [float(size[j]) for j in flipped],
                           "max_|a||w|": float(size.max(initial=0))}
    out["seconds"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------------------------------------
# one checkpoint, in a worker process
# ------------------------------------------------------------------------------------------------

_CONVERGE = None


def _load_converge():
    try:
        from relucert.refine.converge import converge  # noqa: F401
    except ImportError as e:
        return None, str(e)
    return converge, ""


def _worker(task: dict, conn) -> None:
    if task.get("dump") and hasattr(signal, "SIGUSR1"):     # where a timed-out worker was (see certify_all)
        dump = open(task["dump"], "w")
        faulthandler.register(signal.SIGUSR1, file=dump, all_threads=False)
    try:
        pb = Problem.make(task["X"].astype(np.float64), task["Y"].astype(np.float64), ACTS[task["act"]][2])
        pt = Point.make(task["W"].astype(np.float64), task["A"].astype(np.float64), pb)
        tol = Tolerances()
        g0 = float_gradient_norm(pb, pt, effective_kink_tol(pb, pt, tol))
        conn.send(("pre", {"float_gradient_given": g0}))
        info = {}
        t0 = time.perf_counter()
        # --converge: what `relucert certify --converge` does -- certify the checkpoint; when that is
        # not definite, follow the training dynamics (L-BFGS) and certify where they lead
        top = certify_checkpoint(pb, pt, converge="lbfgs" if task["converge"] else None)
        rep = top
        if top.at_converged is not None:
            c = top.converged
            rep = top.at_converged
            info["converged"] = {**{a: getattr(c, a, None) for a in ("method", "stopped", "steps", "distance")},
                                 "float_gradient": rep.float_gradient_relative}
        secs = time.perf_counter() - t0
        bucket, detail = reason_bucket(rep)
        rf = rep.refined or {}
        # the slices are by the checkpoint as given (near-stationary or not), also after converging
        rec = dict(info, verdict=top.verdict, seconds=secs, float_gradient=top.float_gradient_relative,
                   bucket=bucket, detail=detail[:400], refined=rep.refined is not None,
                   reading=rf.get("reading"), moved=(rf.get("distance") or {}).get("relative"),
                   escape_neurons=rf.get("escape_neurons") if rep.refined is not None else rep.given.escape_neurons)
        pm = getattr(rep, "pattern_margin", None)     # local_min: distance to a pattern change (newer pipeline)
        if callable(pm) and rep.verdict == "local_min":
            try:
                m_ = pm()
                rec["pattern_margin"] = None if m_ is None else {key: m_.get(key) for key in
                                                                 ("absolute", "relative", "neuron", "neuron_status")}
            except Exception as e:     # noqa: BLE001 -- a figure for the report, not a verdict
                rec["pattern_margin"] = {"error": f"{type(e).__name__}: {e}"[:200]}
        if task["keep_certificate"] and rep.verdict in DEFINITE:
            rec["certificate"] = rep.certificate
        conn.send(("cert", rec))
        if rep.verdict == "local_min":
            pc = perturbation_check(pb, rep.certificate, task["seed"] + [task["index"]], task["samples"])
            inside = (rec.get("pattern_margin") or {}).get("relative")
            if isinstance(inside, float) and inside > 0:
                # the cross-check proper: perturbations inside the reported margin (log-uniform over
                # four decades below it); a lowering one there would contradict the certificate
                pin = perturbation_check(pb, rep.certificate, task["seed"] + [task["index"], 1], task["samples"],
                                         lo=inside * 1e-4, hi=inside)
                pc["inside_margin"] = {key: pin.get(key) for key in ("samples", "lowering", "confirmed", "margin")}
                pc["inside_margin"]["radius"] = inside
            conn.send(("perturb", pc))
        conn.send(("done", None))
    except BaseException as e:   # noqa: BLE001 -- reported as the checkpoint's outcome
        try:
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"))
        except Exception:       # noqa: BLE001
            pass
    finally:
        conn.close()


def _context():
    try:
        return mp.get_context("fork")
    except ValueError:
        return mp.get_context("spawn")


_FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')


def _stuck_in(path: str) -> tuple[str, str]:
    """(innermost relucert function, the relucert call chain) from a faulthandler dump."""
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return "", ""
    frames = []          # innermost first
    for f, line, fn in _FRAME.findall(text):
        f = f.replace(os.sep, "/")
        if "/relucert/" in f:
            mod = f.rsplit("/relucert/", 1)[1][:-3].replace("/", ".")
            frames.append(f"{mod}.{fn}:{line}")
    if not frames:
        return "", ""
    return frames[0].rsplit(":", 1)[0], " <- ".join(frames[:6])


def certify_all(tasks: list, jobs: int, timeout: float, progress=None) -> list:
    """Certify every task in its own worker process, at most ``jobs`` at a time; a worker still
    certifying after ``timeout`` seconds is asked where it is (faulthandler, SIGUSR1) and killed
    (verdict "timeout")."""
    ctx = _context()
    tmp = tempfile.TemporaryDirectory(prefix="bench_coverage_")
    tasks = [dict(t, dump=os.path.join(tmp.name, f"{t['index']}.txt")) for t in tasks]
    queue = deque(tasks)
    active = {}
    results = [None] * len(tasks)

    def finish(conn, st, extra=None):
        rec = st["rec"]
        if extra:
            rec.update(extra)
        if st["proc"].is_alive():
            st["proc"].kill()
        st["proc"].join()
        conn.close()
        results[st["slot"]] = rec
        del active[conn]
        if progress:
            progress(rec)

    while queue or active:
        while queue and len(active) < max(1, jobs):
            task = queue.popleft()
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(task, child), daemon=True)
            proc.start()
            child.close()
            active[parent] = {"proc": proc, "slot": task["index"], "phase": "cert",
                              "deadline": time.monotonic() + timeout, "start": time.perf_counter(),
                              "rec": dict(task["meta"])}
        for conn in mp_wait(list(active), timeout=0.2):
            st = active[conn]
            try:
                kind, val = conn.recv()
            except (EOFError, OSError):
                if st["phase"] == "cert":
                    finish(conn, st, {"verdict": "error", "bucket": "error: worker died",
                                      "detail": f"exit code {st['proc'].exitcode}",
                                      "seconds": time.perf_counter() - st["start"]})
                else:
                    finish(conn, st, {"perturbation": {"error": "worker died"}})
                continue
            if kind == "pre":
                st["rec"].update(val)
            elif kind == "cert":
                st["rec"].update(val)
                st["phase"] = "perturb"
                st["deadline"] = time.monotonic() + PERTURB_TIMEOUT
            elif kind == "perturb":
                st["rec"]["perturbation"] = val
            elif kind == "done":
                finish(conn, st)
            elif kind == "error":
                if st["phase"] == "cert":
                    finish(conn, st, {"verdict": "error", "bucket": f"error: {val.splitlines()[0][:60]}",
                                      "detail": val, "seconds": time.perf_counter() - st["start"]})
                else:
                    finish(conn, st, {"perturbation": {"error": val}})
        now = time.monotonic()
        for conn, st in list(active.items()):
            if now > st["deadline"]:
                if st["phase"] == "cert":
                    where, chain = "", ""
                    if hasattr(signal, "SIGUSR1") and st["proc"].is_alive():
                        os.kill(st["proc"].pid, signal.SIGUSR1)
                        time.sleep(0.3)
                        where, chain = _stuck_in(os.path.join(tmp.name, f"{st['slot']}.txt"))
                    finish(conn, st, {"verdict": "timeout", "bucket": "timeout", "seconds": timeout,
                                      "stuck_in": where,
                                      "detail": f"certification did not finish within {timeout:g} s"
                                                + (f"; was in {chain}" if chain else "")})
                else:
                    finish(conn, st, {"perturbation": {"error": f"timeout ({PERTURB_TIMEOUT:g} s)"}})
    tmp.cleanup()
    return results


# ------------------------------------------------------------------------------------------------
# the campaign
# ------------------------------------------------------------------------------------------------

def _train_one(args):
    r, quick = args
    return train(run_spec(r, quick))


def campaign(runs: int, quick: bool = False, jobs: int = 1, timeout: float = TIMEOUT, converge: bool = False,
             samples: int = SAMPLES, keep_certificates: bool = False, keep_cases: bool = False,
             run_ids=None, progress=None) -> dict:
    """Train the runs, certify their checkpoints; returns {"records": [...], "seconds": {...}}."""
    ids = list(range(runs)) if run_ids is None else list(run_ids)
    code = code_version()          # before the run: the working tree may change while it runs
    t0 = time.perf_counter()
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=_context()) as ex:
            trained = list(ex.map(_train_one, [(r, quick) for r in ids]))
    else:
        trained = [_train_one((r, quick)) for r in ids]
    t_train = time.perf_counter() - t0
    tasks = []
    for tr in trained:
        sp = tr["spec"]
        for cp in tr["checkpoints"]:
            meta = {key: sp[key] for key in ("run", "seed", "act", "target", "init", "optimizer", "k", "n", "d",
                                               "bias_column", "m", "steps", "lr_used")}
            meta.update(checkpoint=cp["name"], step=cp["step"], train_loss=cp["train_loss"],
                        train_rel_grad=cp["train_rel_grad"], loss_end=sp["loss_end"])
            if keep_cases:
                meta["case"] = {"activation": ACTS[sp["act"]][2], "X": tr["X"].astype(np.float64).tolist(),
                                "Y": tr["Y"].astype(np.float64).tolist(), "W": cp["W"].astype(np.float64).tolist(),
                                "A": cp["A"].astype(np.float64).tolist()}
            tasks.append({"index": len(tasks), "meta": meta, "X": tr["X"], "Y": tr["Y"], "W": cp["W"], "A": cp["A"],
                          "act": sp["act"], "seed": list(sp["seed"]), "samples": samples,
                          "converge": converge, "keep_certificate": keep_certificates})
    t1 = time.perf_counter()
    records = certify_all(tasks, jobs, timeout, progress)
    return {"records": records, "runs": len(ids), "code": code, "seconds": {"train": t_train, "certify": time.perf_counter() - t1,
                                                               "wall": time.perf_counter() - t0}}


# ------------------------------------------------------------------------------------------------
# the tables
# ------------------------------------------------------------------------------------------------

def _fg(r: dict):
    """The relative float gradient of the certified point (of the given one on a timeout / error)."""
    g = r.get("float_gradient")
    return r.get("float_gradient_given") if g is None else g


def _before_basin(r: dict) -> bool:
    """A checkpoint whose training loss is still above twice the run's end loss."""
    return r["train_loss"] > 2 * r["loss_end"]


def _near(r: dict) -> bool:
    g = _fg(r)
    return g is not None and g <= NEAR_STATIONARY


SLICES = [("all", lambda r: True),
          ("near-stationary (rel. float grad <= 1e-3)", _near),
          ("not near-stationary", lambda r: not _near(r)),
          ("scalar (k = 1)", lambda r: r["k"] == 1),
          ("vector (k = 2, 3)", lambda r: r["k"] > 1),
          ("vector, standard init", lambda r: r["k"] > 1 and r["init"] == "standard"),
          ("vector, vanishing init", lambda r: r["k"] > 1 and r["init"] == "vanishing"),
          ("scalar, standard init", lambda r: r["k"] == 1 and r["init"] == "standard"),
          ("scalar, near-stationary", lambda r: r["k"] == 1 and _near(r)),
          ("vector, near-stationary", lambda r: r["k"] > 1 and _near(r)),
          ("optimizer gd", lambda r: r["optimizer"] == "gd"),
          ("optimizer adam", lambda r: r["optimizer"] == "adam"),
          ("gd, near-stationary", lambda r: r["optimizer"] == "gd" and _near(r)),
          ("adam, near-stationary", lambda r: r["optimizer"] == "adam" and _near(r)),
          ("init vanishing", lambda r: r["init"] == "vanishing"),
          ("init standard", lambda r: r["init"] == "standard")]
SLICES += [(f"activation {a}", (lambda a: lambda r: r["act"] == a)(a)) for a in ACTS]
SLICES += [(f"target {t}", (lambda t: lambda r: r["target"] == t)(t)) for t in TARGETS]
SLICES += [("end points", lambda r: r["checkpoint"] == "end"),
           ("mid-plateau points", lambda r: r["checkpoint"] != "end"),
           ("  mid, training loss > 2 x the end loss", lambda r: r["checkpoint"] != "end" and _before_basin(r)),
           ("  mid, training loss <= 2 x the end loss", lambda r: r["checkpoint"] != "end" and not _before_basin(r))]
COLUMNS = ("local_min", "saddle", "global_min", "not_stationary", "inconclusive", "timeout", "error")


def table(records: list) -> str:
    lines = ["| slice | checkpoints | definite | " + " | ".join(COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(COLUMNS)]
    for name, keep in SLICES:
        rs = [r for r in records if keep(r)]
        if not rs:
            continue
        c = Counter(r["verdict"] for r in rs)
        dfn = sum(c[v] for v in DEFINITE)
        lines.append(f"| {name} | {len(rs)} | {dfn} ({100 * dfn / len(rs):.0f} %) | "
                     + " | ".join(str(c[v]) for v in COLUMNS) + " |")
    return "\n".join(lines)


def _where(r: dict) -> str:
    return (f"run {r['run']} {r['checkpoint']} (seed {r['seed']}; k={r['k']} {r['act']} {r['target']} {r['init']} "
            f"{r['optimizer']} n={r['n']} d={r['d']} m={r['m']})")


def buckets(records: list) -> str:
    by = {}
    for r in records:
        if r["verdict"] not in DEFINITE:
            by.setdefault(r["bucket"], []).append(r)
    lines = ["| reason | count | near-stationary | example |", "|---|---|---|---|"]
    for b, rs in sorted(by.items(), key=lambda x: -len(x[1])):
        ns = sum(1 for r in rs if _near(r))
        ex = rs[0]
        lines.append(f"| {b} | {len(rs)} | {ns} | {_where(ex)}: {ex['verdict']}; {ex.get('detail', '')[:160]} |")
    tos = Counter(r.get("stuck_in") or "?" for r in by.get("timeout", []))
    if tos:
        lines.append("timeouts by the innermost relucert function running when the worker was stopped: "
                     + ", ".join(f"{f} {c}" for f, c in tos.most_common()))
    return "\n".join(lines)


def times(records: list, timeout: float) -> str:
    ts = [r["seconds"] for r in records if r.get("seconds") is not None]
    if not ts:
        return "time per checkpoint: -"
    slow = max(records, key=lambda r: r.get("seconds") or 0)
    n_to = sum(r["verdict"] == "timeout" for r in records)
    return (f"time per checkpoint (certify_checkpoint incl. the independent re-check; timeouts count "
            f"{timeout:g} s): median {statistics.median(ts):.2f} s, mean {statistics.mean(ts):.2f} s, "
            f"max {max(ts):.2f} s ({_where(slow)}), timeouts {n_to}")


def perturbations(records: list) -> str:
    lm = [r for r in records if r["verdict"] == "local_min"]
    ck = [r for r in lm if "perturbation" in r and "error" not in r["perturbation"]]
    err = [r for r in lm if "perturbation" in r and "error" in r["perturbation"]]
    flagged = [r for r in ck if r["perturbation"]["lowering"]]
    conf = [r for r in flagged if r["perturbation"]["confirmed"]]
    samples = ck[0]["perturbation"]["samples"] if ck else SAMPLES
    lines = [f"local_min verdicts: {len(lm)}; cross-checked with {samples} random perturbations each (relative "
             f"size 1e-7..1e-3, log-uniform, float64): {len(ck)}" + (f" ({len(err)} check errors/timeouts)" if err else ""),
             f"  local minima with a perturbation lowering the loss beyond the rounding margin: {len(flagged)} "
             f"(lowering perturbations in total: {sum(r['perturbation']['lowering'] for r in ck)}); "
             f"confirmed in exact arithmetic: {len(conf)}"]
    ins = [r for r in ck if "inside_margin" in r["perturbation"]]
    bad = [r for r in ins if r["perturbation"]["inside_margin"]["confirmed"]]
    lines.append(f"  inside the reported pattern margin ({samples} more perturbations each, relative size margin/1e4 .. "
                 f"margin): {len(ins)} local minima checked; lowering the loss: "
                 f"{sum(1 for r in ins if r['perturbation']['inside_margin']['lowering'])}, confirmed exactly "
                 f"(contradictions): {len(bad)}" + "".join(f"\n    CONTRADICTION {_where(r)}" for r in bad))
    for r in flagged:
        p = r["perturbation"]
        b = p.get("best") or {}
        lines.append(f"  {_where(r)}: {p['lowering']} of {p['samples']} lower the loss (float decrease up to "
                     f"{p['max_decrease']:.2e}, margin {p['margin']:.1e}, smallest radius {p['min_radius_lowering']:.1e}); "
                     f"exactly confirmed {p['confirmed']}"
                     + (f"; pattern margin {r['pattern_margin']['relative']:.1e}: "
                        + ("outside it (the minimum is only as wide as its margin)"
                           if p['min_radius_lowering'] > r['pattern_margin']['relative'] else "INSIDE it")
                        if (r.get('pattern_margin') or {}).get('relative') is not None else "")
                     + (f"; largest confirmed, shrunk: still lower down to relative radius "
                        f"{b['smallest_radius_still_lowering']:.1e}"
                        f"{'  <-- SUSPECT: persists to the smallest radius tried' if b['persists_to_smallest'] else ''}"
                        f"; neurons changing pattern {b['neurons_flipping'][:8]} with |a||w| "
                        f"{[f'{x:.1e}' for x in b['their_|a||w|'][:8]]} (max over neurons {b['max_|a||w|']:.1e})"
                        if b else ""))
    for r in err:
        lines.append(f"  {_where(r)}: check failed: {r['perturbation']['error'][:120]}")
    pms = [r["pattern_margin"]["relative"] for r in lm if (r.get("pattern_margin") or {}).get("relative") is not None]
    if pms:
        small = [r for r in lm if ((r.get("pattern_margin") or {}).get("relative") or math.inf) < 1e-3]
        lines.append(f"  pattern margin of the local minima (report.pattern_margin(), relative to |theta|): min "
                     f"{min(pms):.1e}, median {statistics.median(pms):.1e}; below 1e-3 (inside the perturbation "
                     f"range): {len(small)}"
                     + "".join(f"\n    {_where(r)}: margin {r['pattern_margin']['relative']:.1e} (neuron "
                               f"{r['pattern_margin']['neuron']}, {r['pattern_margin']['neuron_status']}); "
                               f"{(r.get('perturbation') or {}).get('lowering', '?')} lowering perturbations"
                               for r in small))
    return "\n".join(lines)


def code_version() -> str:
    """The commit the certifier was run from, and whether relucert/ had uncommitted changes (read-only git)."""
    import subprocess
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "relucert"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return head + (f" + uncommitted changes to {len(dirty.splitlines())} files under relucert/" if dirty else "")


def summary(result: dict, timeout: float, note: str = "") -> str:
    rs = result["records"]
    s = result["seconds"]
    out = [f"{result['runs']} runs, {len(rs)} checkpoints (seed {SEED}; training float32 numpy GD / Adam); "
           f"wall {s['wall']:.0f} s (training {s['train']:.0f} s, certification {s['certify']:.0f} s); "
           f"code {result.get('code', 'unknown')}"]
    conv = [r for r in rs if r.get("converged")]
    if conv:
        out.append(f"converged: {len(conv)} checkpoints (not definite as given or refined; their verdict is "
                   "the converged point's)")
    if note:
        out.append(note)
    out += ["", "definite verdicts (local_min, saddle, global_min) per slice:", table(rs), "",
            "why the others are not definite:", buckets(rs), "", times(rs, timeout), "",
            "perturbation cross-check of the local minima:", perturbations(rs)]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="8 runs, capped sizes")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--json", help="write every record (with its instance) to this file")
    ap.add_argument("--converge", action="store_true",
                    help="as `relucert certify --converge`: converge the checkpoints that are not definite and "
                         "certify where the dynamics lead")
    ap.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per checkpoint (default 60)")
    ap.add_argument("--samples", type=int, default=SAMPLES, help="perturbations per local_min (default 5000)")
    ap.add_argument("--progress", action="store_true", help="one line per finished checkpoint on stderr")
    args = ap.parse_args(argv)
    runs = 8 if args.quick and args.runs == 100 else args.runs
    note = ""
    converge = False
    if args.converge:
        fn, err = _load_converge()
        if fn is None:
            note = (f"--converge: relucert.refine.converge is not available ({err}); certifying the checkpoints "
                    "as they are")
            print(note, file=sys.stderr)
        else:
            converge = True
            note = ("--converge: as `relucert certify --converge`: checkpoints not definite as given (or refined) "
                    "were converged (L-BFGS) and the end point certified")

    def progress(rec):
        if args.progress:
            print(f"{rec['run']:>3} {rec['checkpoint']:<9} {rec['verdict']:<14} {rec.get('seconds', 0):6.2f} s "
                  f"{rec.get('bucket') or ''}", file=sys.stderr, flush=True)

    res = campaign(runs, quick=args.quick, jobs=args.jobs, timeout=args.timeout, converge=converge,
                   samples=args.samples, keep_cases=bool(args.json), progress=progress)
    print(summary(res, args.timeout, note))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"seed": SEED, "runs": res["runs"], "code": res["code"], "seconds": res["seconds"],
                       "converge": converge,
                       "records": res["records"]}, fh, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
