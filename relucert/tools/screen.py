"""Bulk screening of many checkpoints (vectorised float64) and plateau certification.

The per-checkpoint quantities come from the same generic formulas as the exact engine
(``firstorder.forward``, ``output_grad``, ``linear_part``, ``weight_grad``), evaluated on batched
float arrays, in chunks so that memory stays bounded however many checkpoints there are.
"""
from __future__ import annotations

import glob
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
import numpy as np

from relucert.errors import InputError
from relucert.core.formulas import forward, half_mean_loss, linear_part, output_grad, weight_grad
from relucert.core.problem import Problem, fmpq_to_float

PER_NEURON_LIMIT = 5 * 10 ** 7   # keep per-neuron series only while T*m stays below this


@dataclass
class Trajectory:
    problem: Problem
    W: np.ndarray            # T x m x d (float)
    A: np.ndarray            # T x m x k
    step: np.ndarray         # T
    loss: np.ndarray | None  # T recorded losses (any convention) or None
    source: str = ""

    @property
    def T(self) -> int:
        return self.W.shape[0]


def _finite(name: str, a: np.ndarray, source: str) -> None:
    if a.dtype.kind not in "fiu":
        raise InputError(f"{source}: {name} has non-numeric dtype {a.dtype}")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            idx = [int(i) for i in np.argwhere(bad)[0]]
            raise InputError(f"{source}: {name} contains {'NaN' if np.isnan(a[tuple(idx)]) else 'inf'} at index {idx}")


def load_trajectory(path: str, data: str | None = None, keys: str | None = None) -> Trajectory:
    """A trajectory .npz (W T x m x d, A T x m x k, optional step, loss, with X, Y) or a directory of
    torch checkpoints (sorted by the last number in their file names) plus ``data``."""
    from relucert.io import _npz_scalar, _open_npz, activation_from_npz, _loss_key, load_problem
    if os.path.isdir(path):
        return _load_torch_dir(path, data, keys)
    if not os.path.exists(path):
        raise InputError(f"no such file: {path}")
    if not path.lower().endswith(".npz"):
        raise InputError(f"{path}: a trajectory is a .npz file or a directory of torch checkpoints")
    z = _open_npz(path)
    src = os.path.basename(path)
    missing = [k for k in ("W", "A") if k not in z.files]
    if data is None:
        missing += [k for k in ("X", "Y") if k not in z.files]
    if missing:
        raise InputError(f"{src}: missing array(s) {', '.join(missing)} (has {', '.join(z.files)})")
    W, A = z["W"], z["A"]
    if data is not None:
        pb = load_problem(data)
    else:
        loss_conv = str(_npz_scalar(z, "loss_convention", None) or _loss_key(z))
        pb = Problem.make(z["X"], z["Y"], activation_from_npz(z), loss_conv)
    _finite("W", W, src)
    _finite("A", A, src)
    if W.ndim != 3:
        raise InputError(f"{src}: trajectory W must be T x m x d, got shape {W.shape}")
    T, m, d = W.shape
    if T == 0:
        raise InputError(f"{src}: the trajectory holds no checkpoints (W has shape {W.shape})")
    if m == 0:
        raise InputError(f"{src}: the network has no neurons (W has shape {W.shape})")
    if A.ndim == 2 and A.shape == (T, m):
        A = A[:, :, None]
    if A.ndim != 3 or A.shape[:2] != (T, m):
        raise InputError(f"{src}: A has shape {A.shape} but W is {W.shape} (expected {T} x {m} x k)")
    if d != pb.d:
        raise InputError(f"{src}: W has {d} input columns but X has {pb.d}")
    if A.shape[2] != pb.k:
        raise InputError(f"{src}: A has {A.shape[2]} outputs but Y has {pb.k}")
    step = z["step"] if "step" in z.files else np.arange(T)
    if step.shape != (T,):
        raise InputError(f"{src}: step has shape {step.shape}, expected ({T},)")
    loss = None
    if "loss" in z.files and z["loss"].dtype.kind == "f":
        loss = z["loss"]
        if loss.shape != (T,):
            raise InputError(f"{src}: loss has shape {loss.shape}, expected ({T},)")
    return Trajectory(pb, W.astype(float), A.astype(float), np.asarray(step), loss, src)


def _load_torch_dir(path: str, data: str | None, keys: str | None) -> Trajectory:
    from relucert.io import load_problem, torch_state_dict, weights_from_state_dict
    if data is None:
        raise InputError("a directory of torch checkpoints needs --data DATA.(json|npz)")
    files = sorted(glob.glob(os.path.join(path, "*.pt")) + glob.glob(os.path.join(path, "*.pth")))
    if not files:
        raise InputError(f"{path}: no .pt/.pth checkpoints found")

    def num(f):
        found = re.findall(r"\d+", os.path.basename(f))
        return int(found[-1]) if found else -1

    files.sort(key=num)
    pb = load_problem(data)
    Ws, As = [], []
    for f in files:
        W, A = weights_from_state_dict(torch_state_dict(f), pb.d, keys, os.path.basename(f))
        Ws.append(W)
        As.append(A)
    shapes = {w.shape for w in Ws}
    if len(shapes) != 1:
        raise InputError(f"{path}: checkpoints have different widths {sorted(shapes)}")
    return Trajectory(pb, np.stack(Ws), np.stack(As), np.array([num(f) for f in files]), None, path)


# ---------------------------------------------------------------------------------------------
# the vectorised pass
# ---------------------------------------------------------------------------------------------

@dataclass
class ScreenResult:
    loss: np.ndarray            # T, problem's convention
    grad_A: np.ndarray          # T, ||dL/dA|| (half_mean)
    grad_W: np.ndarray          # T, ||dL/dW|| off the near-kink pairs (half_mean)
    near_kink: np.ndarray       # T, number of (i, j) pairs with relative |z| < tol
    tiny: np.ndarray            # T, number of tiny neurons
    dead: np.ndarray            # T, number of dead neurons (alpha_minus = 0)
    min_rel_z: np.ndarray | None   # T x m, smallest |w_j.x_i| / (|w_j||x_i|)
    balance: np.ndarray | None     # T x m, ||w_j||^2 - ||a_j||^2
    norms: np.ndarray | None       # T x m, sqrt(||w_j||^2 + ||a_j||^2)
    seconds: float = 0.0

    def row(self, t: int) -> dict:
        return {"loss": float(self.loss[t]), "grad_A": float(self.grad_A[t]), "grad_W": float(self.grad_W[t]),
                "near_kink": int(self.near_kink[t]), "tiny": int(self.tiny[t]), "dead": int(self.dead[t])}


def _prime_allocator(nbytes: int) -> None:
    """Let the C allocator serve the pass's temporaries from the heap.

    glibc serves blocks above its mmap threshold (128 KiB at start) with fresh mmap()s, so every
    chunk's n x m temporaries would page-fault again (3-4x slower passes, measured on 1-core VMs);
    freeing one such block raises the threshold to its size (up to 32 MiB) and the heap-trim
    threshold to twice that.  Allocating and
    releasing one untouched block the size of a chunk's temporaries does that once; elsewhere it is a no-op."""
    size = min(max(nbytes, 1 << 18) + 4096, 1 << 25)
    block = np.empty(size // 8)
    del block


def screen_arrays(problem: Problem, W: np.ndarray, A: np.ndarray, *, tol_kink: float = 1e-4,
                  tol_tiny: float = 1e-6, chunk: int | None = None, per_neuron: bool | None = None,
                  progress: bool = False, workers: int = 1) -> ScreenResult:
    """One vectorised pass over T checkpoints W (T x m x d), A (T x m x k)."""
    X, Y = problem.Xf, problem.Yf
    ap, am = (fmpq_to_float(v) for v in (problem.activation.alpha_plus, problem.activation.alpha_minus))
    T, m, d = W.shape
    k = A.shape[2]
    if per_neuron is None:
        per_neuron = T * m <= PER_NEURON_LIMIT
    if chunk is None:   # ~ 4.5*10^4 entries per n x m array: the working set stays in cache
        chunk = max(1, min(1024, 45000 // max(1, problem.n * m)))
    _prime_allocator(20 * 8 * chunk * problem.n * m)   # ~ all temporaries of one chunk
    lf = problem.loss_factor()
    factor = fmpq_to_float(lf)                           # half_mean -> the problem's convention
    xn = np.linalg.norm(X, axis=1)                       # n
    xscale = float(xn.max())
    zero_rows = xn == 0
    inv_xn = 1.0 / np.where(zero_rows, 1.0, xn)
    yscale = max(float(np.abs(Y).max()), 1e-300)
    out = {name: np.empty(T) for name in ("loss", "grad_A", "grad_W")}
    for name in ("near_kink", "tiny", "dead"):
        out[name] = np.empty(T, dtype=np.int64)
    pn = {name: np.empty((T, m), dtype=np.float32) for name in ("min_rel_z", "balance", "norms")} if per_neuron else {}
    t0 = time.perf_counter()
    done = [0]

    def one(s: int) -> None:
        Wc, Ac = np.asarray(W[s:s + chunk], dtype=float), np.asarray(A[s:s + chunk], dtype=float)
        fw = forward(X, Y, Wc, Ac, ap, am)
        G = output_grad(fw.H, fw.E)                       # B x m x k
        wn2 = np.einsum("bmd,bmd->bm", Wc, Wc)            # B x m (faster than linalg.norm here)
        an2 = np.einsum("bmk,bmk->bm", Ac, Ac)
        wn, an = np.sqrt(wn2), np.sqrt(an2)
        rel = np.abs(fw.Z)                                 # B x n x m, then |w_j.x_i| / |x_i| in place
        rel *= inv_xn[None, :, None]
        if zero_rows.any():
            rel[:, zero_rows, :] = np.inf                  # x_i = 0 is on no neuron's kink
        near = rel < tol_kink * wn[:, None, :]
        Lin = linear_part(np.where(near, 0.0, fw.S), fw.E, X)
        GW = weight_grad(Lin, Ac)
        sl = slice(s, s + chunk)
        out["loss"][sl] = half_mean_loss(fw.E) * factor
        out["grad_A"][sl] = np.sqrt((G ** 2).sum(axis=(1, 2)))
        out["grad_W"][sl] = np.sqrt((GW ** 2).sum(axis=(1, 2)))
        out["near_kink"][sl] = near.sum(axis=(1, 2))
        out["tiny"][sl] = (an * wn * xscale / yscale < tol_tiny).sum(axis=1)
        # dead as in core.formulas.neuron_status: w.x_i < 0 on every data point x_i != 0
        out["dead"][sl] = (fw.Z[:, ~zero_rows, :] < 0).all(axis=1).sum(axis=1) if am == 0 else 0
        if per_neuron:
            pn["min_rel_z"][sl] = rel.min(axis=1) / np.maximum(wn, 1e-300)
            pn["balance"][sl] = wn2 - an2
            pn["norms"][sl] = np.sqrt(wn2 + an2)
        done[0] += len(Wc)

    starts = range(0, T, chunk)
    if workers > 1 and T > 4 * chunk:
        from concurrent.futures import ThreadPoolExecutor   # numpy releases the GIL in these kernels
        with ThreadPoolExecutor(max_workers=workers) as ex:
            futs = [ex.submit(one, s) for s in starts]
            for i, f in enumerate(futs):
                f.result()
                if progress and i % 200 == 0:
                    _progress(done[0], T, t0)
    else:
        for i, s in enumerate(starts):
            one(s)
            if progress and i % 200 == 0:
                _progress(done[0], T, t0)
    if progress and T > chunk:
        print(file=sys.stderr)
    return ScreenResult(out["loss"], out["grad_A"], out["grad_W"], out["near_kink"], out["tiny"], out["dead"],
                        pn.get("min_rel_z"), pn.get("balance"), pn.get("norms"), time.perf_counter() - t0)


def _progress(done: int, T: int, t0: float) -> None:
    el = max(time.perf_counter() - t0, 1e-9)
    print(f"\rscreening {done:,}/{T:,} checkpoints ({done / el:,.0f}/s)", end="", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# plateaus
# ---------------------------------------------------------------------------------------------

@dataclass
class PlateauOptions:
    """A plateau is a maximal stretch of checkpoints where the loss changes by less than
    ``rel_change`` (relative) over every window of ``window_frac`` of the run's step span, lasting at
    least ``min_frac`` of the span.  The defaults (0.3% per 0.5% of the run, at least 1.5% long) find
    exactly the plateaus the paper marks in its three runs (tests/test_paper.py)."""
    rel_change: float = 0.003
    window_frac: float = 0.005
    min_frac: float = 0.015

    def to_json(self) -> dict:
        return dict(self.__dict__)


def detect_plateaus(step: np.ndarray, loss: np.ndarray, opts: PlateauOptions | None = None) -> list[tuple[int, int]]:
    """Index ranges [start, end] (inclusive) of the plateaus of a loss curve."""
    opts = opts or PlateauOptions()
    step = np.asarray(step, dtype=float)
    loss = np.asarray(loss, dtype=float)
    T = len(step)
    if T < 3:
        return []
    span = step[-1] - step[0]
    if span <= 0:
        return []
    win = opts.window_frac * span
    flat = np.zeros(T, dtype=bool)
    j = 0
    for i in range(T):
        # compare with the checkpoint one window later
        while j < T - 1 and step[j] < step[i] + win:
            j += 1
        if step[j] - step[i] < win * 0.5:
            flat[i] = flat[i - 1] if i else False
            continue
        lo, hi = loss[i], loss[j]
        flat[i] = abs(hi - lo) <= opts.rel_change * max(abs(lo), 1e-300)
    out = []
    i = 0
    while i < T:
        if not flat[i]:
            i += 1
            continue
        s = i
        while i < T and flat[i]:
            i += 1
        e = i - 1
        # extend to the checkpoint one window later: the flat stretch includes its window
        e2 = e
        while e2 < T - 1 and step[e2 + 1] <= step[e] + win:
            e2 += 1
        if step[e2] - step[s] >= opts.min_frac * span:
            out.append((s, e2))
    # merge overlaps
    merged = []
    for s, e in out:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def _certify_checkpoint(args) -> dict:
    """Worker: refine and certify one checkpoint under the requested tiny-neuron reading."""
    problem_json, W, A, reading, tol = args
    from relucert.decide.certify import certify
    from relucert.core.problem import Problem as P, Point as Pt
    from relucert.refine import READINGS, Tolerances, refine, refined_report
    pb = P.make(problem_json["X"], problem_json["Y"], problem_json["activation"], problem_json["loss"])
    pt = Pt.make(W, A, pb)
    t0 = time.perf_counter()
    given = certify(pb, pt)
    readings = READINGS if reading == "auto" else (reading,)
    info = refine(pb, pt, Tolerances(**tol), readings=readings)
    rf = refined_report(pb, pt, info)
    if rf["verdict"] not in ("local_min", "saddle", "global_min") and given.verdict in ("local_min", "saddle", "global_min"):
        rf = {"reading": "exact point", "verdict": given.verdict, "escape_neurons": given.escape_neurons,
              "reason": given.reason, "readings": [], "distance": {"max_abs": 0.0, "relative": 0.0}}
    rf.pop("certificate", None)
    rf["given_verdict"] = given.verdict
    rf["seconds"] = time.perf_counter() - t0
    return rf


@dataclass
class PlateauRow:
    index: int
    start: int
    end: int
    step_range: tuple
    representative: int
    loss: float
    verdict: str = ""
    reading: str = ""
    escape_neurons: list = field(default_factory=list)
    grown: list = field(default_factory=list)
    grown_are_escape: bool | None = None
    distance: float | None = None
    readings: dict = field(default_factory=dict)
    reason: str = ""
    hint: str = ""


def certify_plateaus(traj: Trajectory, plateaus: list, *, reading: str = "auto", workers: int = 1,
                     growth: float = 10.0, tol: dict | None = None) -> list[PlateauRow]:
    """Refine and certify the middle checkpoint of each plateau (process pool), and compare the
    neurons that grow after the plateau with the certified escape neurons."""
    pj = traj.problem.to_json()
    tol = tol or {}
    rows, jobs = [], []
    for p, (s, e) in enumerate(plateaus):
        mid_step = (traj.step[s] + traj.step[e]) / 2
        rep = int(s + np.argmin(np.abs(traj.step[s:e + 1] - mid_step)))
        loss = float(traj.loss[rep]) if traj.loss is not None else float("nan")
        rows.append(PlateauRow(p + 1, s, e, (int(traj.step[s]), int(traj.step[e])), rep, loss))
        jobs.append((pj, traj.W[rep], traj.A[rep], reading, tol))
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            results = list(ex.map(_certify_checkpoint, jobs))
    else:
        results = [_certify_checkpoint(j) for j in jobs]
    norms = np.sqrt((traj.W ** 2).sum(axis=2) + (traj.A ** 2).sum(axis=2))   # T x m
    for p, (row, rf) in enumerate(zip(rows, results)):
        row.verdict = rf["verdict"]
        row.reading = rf["reading"]
        row.escape_neurons = rf["escape_neurons"]
        row.reason = rf["reason"]
        row.distance = (rf.get("distance") or {}).get("max_abs")
        row.readings = {r["reading"]: r["verdict"] for r in rf.get("readings", [])}
        if row.verdict == "inconclusive":
            # an unproven numerical indication from any reading (e.g. tiny neurons read as zero)
            order = {"tiny_zero": 0, "tiny_output_zero": 1}
            for r in sorted(rf.get("readings", []), key=lambda r: order.get(r["reading"], 2)):
                reason = r.get("reason") or ""
                if "numerically (not proven)" in reason:
                    row.hint = f"{r['reading']}: " + reason[reason.index("numerically (not proven)"):]
                    break
        after = plateaus[p + 1][0] if p + 1 < len(plateaus) else traj.T - 1
        before = norms[row.representative]
        later = norms[after]
        if after > row.end:
            grown = np.nonzero(later > growth * np.maximum(before, 1e-300))[0].tolist()
            row.grown = grown
            row.grown_are_escape = set(grown) <= set(row.escape_neurons) if row.verdict == "saddle" else None
    return rows


def plateau_table(rows: list[PlateauRow], convention: str) -> str:
    lines = [f"{'plateau':>7} {'steps':>19} {'loss (' + convention + ')':>20} {'verdict':<14} {'reading':<17} "
             f"{'escape neurons':<24} {'grew after':<24} grown ⊆ escape"]
    for r in rows:
        esc = ",".join(map(str, r.escape_neurons)) if r.escape_neurons else "-"
        gr = ",".join(map(str, r.grown)) if r.grown else "-"
        ok = {True: "yes", False: "NO", None: "n/a"}[r.grown_are_escape]
        lines.append(f"{r.index:>7} {r.step_range[0]:>9}-{r.step_range[1]:<9} {r.loss:>20.10g} {r.verdict:<14} "
                     f"{r.reading:<17} {esc[:24]:<24} {gr[:24]:<24} {ok}")
    return "\n".join(lines)
