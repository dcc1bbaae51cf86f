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
    optimizer: str | None = None   # the trajectory's optional ``optimizer`` string ("sgd", "adam", ...)

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
    """A trajectory .npz (W T x m x d, A T x m x k, optional step, loss, optimizer, with X, Y) or a
    directory of torch checkpoints (sorted by the last number in their file names) plus ``data``."""
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
    optimizer = _npz_scalar(z, "optimizer", None)
    if optimizer is not None and not isinstance(optimizer, str):
        raise InputError(f"{src}: optimizer must be a string such as 'sgd' or 'adam', got {optimizer!r}")
    return Trajectory(pb, W.astype(float), A.astype(float), np.asarray(step), loss, src, optimizer or None)


def _load_torch_dir(path: str, data: str | None, keys: str | None) -> Trajectory:
    """Every .pt/.pth/.safetensors checkpoint of a directory, read as ``relucert certify --torch`` reads
    one: all tensors used, an output bias refused, a hidden bias folded into a constant-1 column of X
    (then every checkpoint must have it, under the same keys)."""
    from relucert.io import load_problem, torch_weights, with_constant_column
    if data is None:
        raise InputError("a directory of torch checkpoints needs --data DATA.(json|npz)")
    files = sorted(glob.glob(os.path.join(path, "*.pt")) + glob.glob(os.path.join(path, "*.pth"))
                   + glob.glob(os.path.join(path, "*.safetensors")))
    if not files:
        raise InputError(f"{path}: no .pt/.pth/.safetensors checkpoints found")

    def num(f):
        found = re.findall(r"\d+", os.path.basename(f))
        return int(found[-1]) if found else -1

    files.sort(key=num)
    pb = load_problem(data)
    Ws, As, first = [], [], None
    for f in files:
        W, A, info = torch_weights(f, pb, keys)
        roles = (info.input_weight, info.hidden_bias, info.output_weight)
        if first is None:
            first = (f, roles, info)
        elif roles != first[1]:
            raise InputError(f"{path}: checkpoints map differently: {os.path.basename(first[0])} uses "
                             f"(input weight, hidden bias, output weight) = {first[1]}, {os.path.basename(f)} {roles}")
        Ws.append(W)
        As.append(A)
    shapes = {w.shape for w in Ws}
    if len(shapes) != 1:
        raise InputError(f"{path}: checkpoints have different widths {sorted(shapes)}")
    source = path
    info = first[2]
    if info.hidden_bias is not None:
        pb = with_constant_column(pb)
        source = (f"{path} [hidden bias {info.hidden_bias} folded: W[:, {info.d}] = {info.hidden_bias}, X gets a "
                  f"constant-1 column at index {info.d}]")
    return Trajectory(pb, np.stack(Ws), np.stack(As), np.array([num(f) for f in files]), None, source)


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
    exactly the plateaus the paper marks in its three runs (tests/test_paper.py).

    Short loss spikes (Adam's, say) interrupt a plateau without ending it: two flat stretches
    separated by a gap of at most ``spike_frac`` of the span (default 0.02, i.e. 2% of the run) are
    one plateau when the loss after the gap is back within ``spike_tol`` (relative, default 0.01,
    i.e. 1%) of the loss before it.  Genuinely different plateau levels differ by far more (6-60%
    in the paper's runs); ``spike_frac = 0`` switches the merging off.  Merging happens before the
    ``min_frac`` length test, so a plateau chopped into short pieces by frequent spikes is found too."""
    rel_change: float = 0.003
    window_frac: float = 0.005
    min_frac: float = 0.015
    spike_frac: float = 0.02
    spike_tol: float = 0.01

    def to_json(self) -> dict:
        return dict(self.__dict__)


class Plateau(tuple):
    """A plateau ``(start, end)`` (inclusive checkpoint indices; compares and unpacks as that tuple),
    with ``segments``: its flat stretches (more than one when short spikes were merged; the
    checkpoints between them are not flat), and ``spikes``: the number of interruptions merged."""

    def __new__(cls, start: int, end: int, segments=None, spikes: int | None = None):
        self = super().__new__(cls, (int(start), int(end)))
        self.segments = [(int(a), int(b)) for a, b in segments] if segments else [(int(start), int(end))]
        self.spikes = len(self.segments) - 1 if spikes is None else int(spikes)   # interruptions merged
        return self

    def __getnewargs__(self):
        return (self[0], self[1], self.segments, self.spikes)


def _segments(p) -> list[tuple[int, int]]:
    return list(getattr(p, "segments", None) or [(int(p[0]), int(p[1]))])


def detect_plateaus(step: np.ndarray, loss: np.ndarray, opts: PlateauOptions | None = None) -> list[Plateau]:
    """Index ranges [start, end] (inclusive) of the plateaus of a loss curve (see PlateauOptions)."""
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
    stretches = []   # (first flat index, last flat index, end extended by one window)
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
        stretches.append((s, e, e2))

    def long(a: int, b: int) -> bool:
        return step[b] - step[a] >= opts.min_frac * span

    if opts.spike_frac <= 0:
        # long stretches, overlapping ones merged
        merged: list[tuple[int, int]] = []
        for s, _, e2 in stretches:
            if not long(s, e2):
                continue
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(e2, merged[-1][1]))
            else:
                merged.append((s, e2))
        return [Plateau(s, e) for s, e in merged]
    # chains of flat stretches: overlapping ones (as above), and ones interrupted only by a short
    # spike after which the loss is back at the level it had before
    chains: list[list[tuple[int, int, int]]] = []
    for st in stretches:
        if chains:
            _, pe, pe2 = chains[-1][-1]
            back = abs(loss[st[0]] - loss[pe]) <= opts.spike_tol * max(abs(loss[pe]), 1e-300)
            if st[0] <= pe2 or (step[st[0]] - step[pe] <= opts.spike_frac * span and back):
                chains[-1].append(st)
                continue
        chains.append([st])
    res = []
    for ch in chains:
        # pieces at a chain's ends too short to be plateaus themselves are dropped (as without merging)
        keep = [k for k, (s, _, e2) in enumerate(ch) if long(s, e2)]
        if keep:
            ch = ch[keep[0]:keep[-1] + 1]
        start, end = ch[0][0], max(e2 for _, _, e2 in ch)
        if not long(start, end):
            continue
        segs = [[s, e] for s, e, _ in ch]
        segs[-1][1] = end
        # the interruptions: non-flat gaps between the flat runs; the flat test looks one window
        # ahead, so the checkpoints up to a window before a spike are flagged too -- gaps around a
        # flat run shorter than a window are one spike
        spikes = 0
        for k in range(1, len(segs)):
            if segs[k][0] <= segs[k - 1][1] + 1:
                continue
            a0, a1 = segs[k - 1]
            if k == 1 or segs[k - 2][1] + 1 >= a0 or step[a1] - step[a0] >= win:
                spikes += 1
        res.append(Plateau(start, end, [tuple(sg) for sg in segs], spikes))
    return res


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
    spikes: int = 0          # short loss spikes merged into this plateau (PlateauOptions.spike_frac)


def _representative(step: np.ndarray, s: int, e: int, segments: list[tuple[int, int]]) -> int:
    """The checkpoint of [s, e] nearest the middle step, among those in a flat stretch."""
    mid_step = (step[s] + step[e]) / 2
    idx = np.concatenate([np.arange(max(a, s), min(b, e) + 1) for a, b in segments] or [np.arange(s, e + 1)])
    if not len(idx):
        idx = np.arange(s, e + 1)
    return int(idx[np.argmin(np.abs(step[idx] - mid_step))])


def certify_plateaus(traj: Trajectory, plateaus: list, *, reading: str = "auto", workers: int = 1,
                     growth: float = 10.0, tol: dict | None = None) -> list[PlateauRow]:
    """Refine and certify the middle checkpoint of each plateau (process pool), and compare the
    neurons that grow after the plateau with the certified escape neurons.  A plateau with merged
    loss spikes (``Plateau.segments``) is represented by the checkpoint nearest its middle that lies
    in one of its flat stretches, never by one inside a spike."""
    pj = traj.problem.to_json()
    tol = tol or {}
    rows, jobs = [], []
    for p, pl in enumerate(plateaus):
        s, e = int(pl[0]), int(pl[1])
        rep = _representative(traj.step, s, e, _segments(pl))
        loss = float(traj.loss[rep]) if traj.loss is not None else float("nan")
        rows.append(PlateauRow(p + 1, s, e, (int(traj.step[s]), int(traj.step[e])), rep, loss,
                               spikes=int(getattr(pl, "spikes", 0))))
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


LIST_WIDTH = 28   # widest neuron list printed in a table cell; longer lists are summarised


def summarise_list(items, width: int = LIST_WIDTH) -> str:
    """``[3, 7, 12]``, or when that is wider than ``width``, as many leading whole numbers as fit
    followed by how many more there are: ``[3, 7, 12, … 9 more]``.  Never cuts a number; "-" if empty.
    (At least one number is shown, even if that exceeds ``width``.)"""
    items = [str(int(v)) for v in items]
    if not items:
        return "-"
    full = "[" + ", ".join(items) + "]"
    if len(full) <= width:
        return full
    for c in range(len(items) - 1, 0, -1):
        short = "[" + ", ".join(items[:c]) + f", … {len(items) - c} more]"
        if len(short) <= width:
            return short
    return f"[{items[0]}, … {len(items) - 1} more]"


def plateau_table(rows: list[PlateauRow], convention: str, width: int = LIST_WIDTH, full_lists: bool = True) -> str:
    """The saddle-to-saddle table, one row per plateau.  Neuron lists wider than ``width`` are
    summarised with whole numbers (``summarise_list``); with ``full_lists`` the complete lists
    of those rows follow the table, one line each (no line below the table starts with a number)."""
    head = ["plateau", "steps".center(19), f"loss ({convention})", "verdict", "reading", "escape neurons", "grew after",
            "grown ⊆ escape"]
    cells, notes = [], []
    for r in rows:
        esc, gr = summarise_list(r.escape_neurons, width), summarise_list(r.grown, width)
        ok = {True: "yes", False: "NO", None: "n/a"}[r.grown_are_escape]
        cells.append([str(r.index), f"{r.step_range[0]:>9}-{r.step_range[1]:<9}", f"{r.loss:.10g}", r.verdict,
                      r.reading, esc, gr, ok])
        if full_lists:
            for name, lst, shown in (("escape neurons", r.escape_neurons, esc), ("grew after", r.grown, gr)):
                if "more]" in shown:
                    notes.append(f"  plateau {r.index}: {name} ({len(lst)}): " + ", ".join(str(int(v)) for v in lst))
    wid = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(head)]
    right = {0, 2}   # numbers right-aligned

    def line(vals):
        return " ".join((v.rjust(w) if i in right else v.ljust(w)) if i < len(vals) - 1 else v
                        for i, (v, w) in enumerate(zip(vals, wid)))
    return "\n".join([line(head)] + [line(c) for c in cells] + notes)


GD_OPTIMIZERS = {"gd", "sgd", "gradientdescent", "stochasticgradientdescent", "fullbatchgd", "gradientflow", "gf"}


def is_gradient_descent(optimizer: str | None) -> bool | None:
    """True for plain (stochastic) gradient descent or gradient flow ("sgd", "gd", "gradient_flow",
    "torch.optim.SGD", ...; not with momentum), False for any other optimizer ("adam", ...), None
    when the trajectory does not say."""
    if optimizer is None or not str(optimizer).strip():
        return None
    o = str(optimizer).strip().lower()
    if "nesterov" in o:
        return False
    if "momentum" in o:
        mom = re.search(r"momentum\s*[=:]\s*([-+0-9.e]+)", o)
        try:
            if mom is None or float(mom.group(1)) != 0:
                return False
        except ValueError:
            return False
    name = re.sub(r"[\s_\-]", "", o.split("(")[0]).removeprefix("torch.optim.")
    return name in GD_OPTIMIZERS


def drift_line(sc: ScreenResult, optimizer: str | None) -> str | None:
    """The conservation-drift line: ||w_j||^2 - ||a_j||^2 is conserved by gradient flow (and drifts
    only by O(lr^2) per step under plain gradient descent), so its drift is reported for (S)GD, with
    a qualifier when the optimizer is unknown, and not at all for other optimizers (Adam, momentum)."""
    if sc.balance is None:
        return None
    gd = is_gradient_descent(optimizer)
    if gd is False:
        return None
    drift = float(np.abs(sc.balance - sc.balance[0]).max())
    line = f"balance |w_j|^2-|a_j|^2: max drift over the run {drift:.3e}"
    if gd is None:
        return line + " (meaningful for gradient descent only; the trajectory does not name its optimizer)"
    return line + f" (conserved by gradient flow; optimizer {optimizer})"
