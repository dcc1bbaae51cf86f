"""Bulk screening of many checkpoints (vectorised float64) and plateau certification.

The per-checkpoint quantities are the exact engine's (``core.formulas``: ``forward``, then the sums
of ``output_grad`` and of ``weight_grad`` off the near-kink pairs), evaluated in float64 on batched
arrays, in chunks of checkpoints and of data rows so that memory stays bounded however many
checkpoints there are; with the optional numba extra, by a fused kernel that needs no n x m
temporary at all (``screen_arrays``).  A trajectory may carry an output bias c per checkpoint
(docs/biases.md): the outputs include it and the stationarity measure gains ||dL/dc|| = ||mean
residual|| (``ScreenResult.grad_c``); without c every number is exactly what it was before.
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
from relucert.core.formulas import forward
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
    c: np.ndarray | None = None    # T x k output biases (float), or None: the network has no output bias

    def __post_init__(self):
        if self.c is not None:
            _register_bias(self.W, self.c)

    def point(self, t: int):
        """The exact point of checkpoint t (the binary values of its floats), its output bias included."""
        from relucert.core.problem import Point
        return Point.make(self.W[t], self.A[t], self.problem, c=None if self.c is None else self.c[t])

    @property
    def T(self) -> int:
        return self.W.shape[0]


_BIASED: dict = {}   # id(W) -> (weak reference to W, c): the weight arrays of loaded trajectories with an output bias


def _register_bias(W: np.ndarray, c: np.ndarray) -> None:
    """Remember that ``W`` is the weight array of a trajectory with output biases ``c``: a screen of it
    that is not given ``c`` screens it with them (and one of a slice of it is refused), never the
    network without c."""
    import weakref
    for key in [k for k, (ref, _) in _BIASED.items() if ref() is None]:
        del _BIASED[key]
    try:
        _BIASED[id(W)] = (weakref.ref(W), c)
    except TypeError:       # not weakly referenceable (not an ndarray): nothing to guard
        pass


def _bias_of(W) -> np.ndarray | None:
    """The output biases registered for ``W`` (a loaded trajectory's W), or None; InputError for a
    slice or view of such an array (its checkpoints' c cannot be matched up: pass c explicitly)."""
    entry = _BIASED.get(id(W))
    if entry is not None and entry[0]() is W:
        return entry[1]
    if isinstance(W, np.ndarray):
        for ref, _ in list(_BIASED.values()):
            base = ref()
            if base is not None and np.may_share_memory(W, base):
                raise InputError("these weights are part of a trajectory with an output bias c: pass its "
                                 "output biases (c=...) to screen_arrays, else another network would be screened")
    return None


def _finite(name: str, a: np.ndarray, source: str) -> None:
    if a.dtype.kind not in "fiu":
        raise InputError(f"{source}: {name} has non-numeric dtype {a.dtype}")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            idx = [int(i) for i in np.argwhere(bad)[0]]
            raise InputError(f"{source}: {name} contains {'NaN' if np.isnan(a[tuple(idx)]) else 'inf'} at index {idx}")


def load_trajectory(path: str, data: str | None = None, keys: str | None = None,
                    activation: str | None = None) -> Trajectory:
    """A trajectory .npz (W T x m x d, A T x m x k, optional c T x k output biases, step, loss,
    optimizer, with X, Y) or a directory of torch checkpoints (sorted by the last number in their
    file names) plus ``data``."""
    from relucert.io import _npz_scalar, _open_npz, activation_from_npz, _loss_key, load_problem
    if os.path.isdir(path):
        return _load_torch_dir(path, data, keys, activation)
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
        pb = load_problem(data, activation)
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
    C = None
    if "c" in z.files:                    # the output bias of every checkpoint (never dropped)
        C = z["c"]
        _finite("c", C, src)
        if C.ndim == 1 and pb.k == 1 and C.shape == (T,):
            C = C[:, None]
        if C.shape != (T, pb.k):
            raise InputError(f"{src}: field 'c' (the output bias of each checkpoint) has shape {C.shape}, "
                             f"expected ({T}, {pb.k}) (T checkpoints x k outputs)")
        C = C.astype(float)
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
    return Trajectory(pb, W.astype(float), A.astype(float), np.asarray(step), loss, src, optimizer or None, C)


def _load_torch_dir(path: str, data: str | None, keys: str | None, activation: str | None = None) -> Trajectory:
    """Every .pt/.pth/.safetensors checkpoint of a directory, read as ``relucert certify --torch`` reads
    one: all tensors used, an output bias read as the checkpoint's c (its exact float value), a hidden
    bias folded into a constant-1 column of X (every checkpoint must map the same way, under the same
    keys)."""
    from relucert.io import load_problem, torch_weights, with_constant_column
    if data is None:
        raise InputError("a directory of torch checkpoints needs --data DATA.(json|npz|pt|csv)")
    files = sorted(glob.glob(os.path.join(path, "*.pt")) + glob.glob(os.path.join(path, "*.pth"))
                   + glob.glob(os.path.join(path, "*.safetensors")))
    if not files:
        raise InputError(f"{path}: no .pt/.pth/.safetensors checkpoints found")

    def num(f):
        found = re.findall(r"\d+", os.path.basename(f))
        return int(found[-1]) if found else -1

    files.sort(key=num)
    pb = load_problem(data, activation)
    Ws, As, Cs, first = [], [], [], None
    for f in files:
        W, A, info = torch_weights(f, pb, keys, output_bias=True)
        roles = (info.input_weight, info.hidden_bias, info.output_weight, info.output_bias)
        if first is None:
            first = (f, roles, info)
        elif roles != first[1]:
            raise InputError(f"{path}: checkpoints map differently: {os.path.basename(first[0])} uses "
                             f"(input weight, hidden bias, output weight, output bias) = {first[1]}, "
                             f"{os.path.basename(f)} {roles}")
        Ws.append(W)
        As.append(A)
        if info.c is not None:   # exact strings of the float values: float() gives them back bit for bit
            from fractions import Fraction
            Cs.append([float(Fraction(v)) for v in info.c])
    shapes = {w.shape for w in Ws}
    if len(shapes) != 1:
        raise InputError(f"{path}: checkpoints have different widths {sorted(shapes)}")
    source = path
    info = first[2]
    if info.hidden_bias is not None:
        pb = with_constant_column(pb)
        source = (f"{path} [hidden bias {info.hidden_bias} folded: W[:, {info.d}] = {info.hidden_bias}, X gets a "
                  f"constant-1 column at index {info.d}]")
    C = None
    if info.output_bias is not None:
        C = np.array(Cs, dtype=float).reshape(len(files), pb.k)
        source += f" [output bias {info.output_bias} -> c]"
    return Trajectory(pb, np.stack(Ws), np.stack(As), np.array([num(f) for f in files]), None, source, c=C)


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
    grad_c: np.ndarray | None = None   # T, ||dL/dc|| = ||mean residual|| (half_mean); None without output bias

    def row(self, t: int) -> dict:
        out = {"loss": float(self.loss[t]), "grad_A": float(self.grad_A[t]), "grad_W": float(self.grad_W[t]),
               "near_kink": int(self.near_kink[t]), "tiny": int(self.tiny[t]), "dead": int(self.dead[t])}
        if self.grad_c is not None:
            out["grad_c"] = float(self.grad_c[t])
        return out


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


CACHE_ENTRIES = 45000          # entries of one n x m temporary of the numpy pass (its working set stays in cache)
_NUMBA_MIN_WORK = 2 * 10 ** 7  # T*n*m from which loading the optional numba kernel pays for itself
_KERNEL = None                 # the fused kernel: None = not looked for yet, False = numba unavailable


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def screen_arrays(problem: Problem, W: np.ndarray, A: np.ndarray, *, c: np.ndarray | None = None,
                  tol_kink: float = 1e-4, tol_tiny: float = 1e-6, chunk: int | None = None,
                  per_neuron: bool | None = None, progress=False, workers: int = 1,
                  backend: str = "numpy") -> ScreenResult:
    """One pass over T checkpoints W (T x m x d), A (T x m x k) and, for a network with an output
    bias, c (T x k; default: the output biases of the trajectory ``W`` was loaded with, if any).
    With c the outputs include it and ``grad_c`` = ||dL/dc|| = ||mean residual|| (the (S0) part of
    stationarity, docs/biases.md §3.3) is computed as well; without it every number is as before.

    With the optional numba extra (``pip install relucert[fast]``) a fused kernel does each
    checkpoint in one sweep over the data rows without any n x m temporary (used when the work is
    large enough to pay for loading it, or once it is loaded); otherwise numpy does it in chunks of
    checkpoints and of data rows whose temporaries stay in cache.  Both give the same counts
    (``near_kink``, ``tiny``, ``dead``: the kernel sums each pre-activation w_j.x_i in the order of
    the coordinates with fused multiply-adds, as OpenBLAS does for numpy's X @ W.T, and takes the
    norms numpy takes) and the same floats up to rounding.  ``workers`` threads share the chunks;
    never more threads than usable CPUs, one when there are too few chunks to share or too little
    work (``THREAD_MIN_WORK``), and one whenever threads turn out slower (``_run_threaded``).

    ``backend="torch"`` (optional torch, imported only then) evaluates the same quantities with
    float64 torch tensors on ``cuda`` when a GPU is present, else on the CPU (``_torch_chunk``; same
    numbers up to rounding, ``workers`` unused).  ``progress``: False, True (a line on stderr), or a
    callable ``progress(done, total)`` called after each chunk (``commands.progress``'s bar)."""
    if backend not in BACKENDS:
        raise InputError(f"unknown screening backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    X, Y = problem.Xf, problem.Yf
    ap, am = (fmpq_to_float(v) for v in (problem.activation.alpha_plus, problem.activation.alpha_minus))
    T, m, d = W.shape
    n, k = X.shape[0], Y.shape[1]
    if c is None:
        c = _bias_of(W)
    has_c = c is not None
    if has_c:
        c = np.asarray(c)
        if c.ndim == 1 and k == 1 and c.shape == (T,):
            c = c[:, None]
        if c.shape != (T, k):
            raise InputError(f"the output biases c have shape {c.shape}, expected ({T}, {k}) "
                             "(T checkpoints x k outputs)")
    if per_neuron is None:
        per_neuron = T * m <= PER_NEURON_LIMIT
    per_neuron = bool(per_neuron)
    torch_dev = _torch_device() if backend == "torch" else None
    kernel = None if torch_dev else _fused_kernel(load=T * n * m >= _NUMBA_MIN_WORK)
    workers = 1 if torch_dev else max(1, min(int(workers), _usable_cpus()))
    if workers > 1:            # the thread rule (THREAD_MIN_WORK): enough work, and free CPUs
        workers = min(workers, _idle_cpus()) if T * n * m >= THREAD_MIN_WORK else 1
    if chunk is None:
        if torch_dev:            # whole chunks on the device: ~ 2*10^6 entries per n x m temporary
            chunk = max(1, min(4096, TORCH_ENTRIES // max(1, n * m)))
        elif kernel is not None:   # a few milliseconds of work per call
            chunk = max(1, min(4096, 2 * 10 ** 6 // max(1, n * m * (d + k))))
            if workers > 1:      # enough chunks to keep every thread busy to the end
                chunk = max(1, min(chunk, -(-T // (8 * workers))))
        else:                    # ~ 4.5*10^4 entries per n x m array: the working set stays in cache
            chunk = max(1, min(1024, CACHE_ENTRIES // max(1, n * m)))
    chunk = max(1, int(chunk))
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
    if has_c:
        out["grad_c"] = np.empty(T)
    pn = {name: np.empty((T, m), dtype=np.float32) for name in ("min_rel_z", "balance", "norms")} if per_neuron else {}
    rows = max(1, min(n, CACHE_ENTRIES // max(1, chunk * m)))   # data rows per numpy step
    if torch_dev:
        torch, dev = torch_dev
        tX, tY = torch.tensor(X, dtype=torch.float64, device=dev), torch.tensor(Y, dtype=torch.float64, device=dev)
        tzero = torch.tensor(zero_rows, device=dev)
        tinv = torch.tensor(inv_xn, dtype=torch.float64, device=dev)
    elif kernel is None:
        _prime_allocator(20 * 8 * chunk * rows * m)   # ~ all temporaries of one step
    else:
        npad = -(-n // 4) * 4                         # the kernel takes the rows four at a time
        Xp = np.zeros((npad, d))
        Xp[:n] = X
        Yp = np.zeros((npad, k))
        Yp[:n] = Y
        zero_p = np.ones(npad, dtype=bool)            # padding rows are zero rows with y = 0: they add nothing
        zero_p[:n] = zero_rows
        inv_p = np.ones(npad)
        inv_p[:n] = inv_xn
        s_pos = float(ap) if am == 0 else float(am + (ap - am))   # the slopes exactly as core.formulas.slopes
        dummy = np.empty((1, 1), dtype=np.float32)
        pnk = [pn.get(name, dummy) for name in ("min_rel_z", "balance", "norms")]
        gc_out = out["grad_c"] if has_c else np.empty(1)
        c_none = np.zeros((1, k))
    t0 = time.perf_counter()
    done = [0]

    def one(s: int) -> None:
        Wc, Ac = np.asarray(W[s:s + chunk], dtype=float), np.asarray(A[s:s + chunk], dtype=float)
        Cc = np.asarray(c[s:s + chunk], dtype=float) if has_c else None
        if torch_dev or kernel is None:     # (the kernel sums them itself, in the same order)
            wn2, an2 = _sq_norms(Wc), _sq_norms(Ac)
        if torch_dev:
            _torch_chunk(torch, dev, tX, tY, tzero, tinv, Wc, Ac, wn2, an2, ap, am, tol_kink, tol_tiny, xscale,
                         yscale, factor, out, pn, s, Cc)
        elif kernel is not None:   # (C-ordered and writable: the one signature compiled)
            Wk, Ak = np.require(Wc, requirements="CW"), np.require(Ac, requirements="CW")
            kernel(Xp, Yp, inv_p, zero_p, n, Wk, Ak,
                   s_pos, float(am), am == 0, float(tol_kink), float(tol_tiny), xscale, yscale, factor, per_neuron,
                   out["loss"], out["grad_A"], out["grad_W"], out["near_kink"], out["tiny"], out["dead"],
                   *pnk, s, has_c, np.require(Cc, requirements="CW") if has_c else c_none, gc_out)
        else:
            _numpy_chunk(X, Y, zero_rows, inv_xn, Wc, Ac, wn2, an2, ap, am, tol_kink, tol_tiny, xscale, yscale,
                         factor, rows, out, pn, s, Cc)
        done[0] += len(Wc)

    starts = list(range(0, T, chunk))
    last = [0.0]

    def report() -> None:            # at most four lines a second
        if callable(progress):
            progress(done[0], T)
        elif time.perf_counter() - last[0] >= 0.25:
            last[0] = time.perf_counter()
            _progress(done[0], T, t0)

    if workers > 1 and T > 4 * chunk:
        _run_threaded(one, starts, workers, report if progress else None)
    else:
        for s in starts:
            one(s)
            if progress:
                report()
    if progress is True and T > chunk:
        _progress(done[0], T, t0)
        print(file=sys.stderr)
    return ScreenResult(out["loss"], out["grad_A"], out["grad_W"], out["near_kink"], out["tiny"], out["dead"],
                        pn.get("min_rel_z"), pn.get("balance"), pn.get("norms"), time.perf_counter() - t0,
                        out.get("grad_c"))


BACKENDS = ("numpy", "torch")
TORCH_ENTRIES = 2 * 10 ** 6    # entries of one n x m temporary of the torch pass (a chunk's size)


def _torch_device():
    """(the torch module, "cuda" when a GPU is present else "cpu"); a one-line error without torch."""
    try:
        import torch
    except ImportError:
        raise InputError("the torch screening backend needs PyTorch (pip install torch); "
                         "use the default numpy backend without it") from None
    return torch, ("cuda" if torch.cuda.is_available() else "cpu")


def _torch_chunk(torch, dev, X, Y, zero_rows, inv_xn, Wc, Ac, wn2, an2, ap, am, tol_kink, tol_tiny, xscale, yscale,
                 factor, out, pn, s, Cc=None) -> None:
    """``_numpy_chunk`` in float64 torch tensors on ``dev``, all data rows at once: the same
    quantities, each computed as there (z = w_j.x_i; sigma'(z) = alpha_+ for z > 0 else alpha_-, as
    ``core.formulas.slopes``; sigma(z) = sigma'(z) z; residuals with c; the gradient sums off the
    near-kink pairs |z_ij|/|x_i| < tol |w_j|; a zero row x_i is on no kink; dead: w_j.x_i < 0 on
    every x_i != 0), moved back to numpy at the end."""
    B, m, d = Wc.shape
    n, k = Y.shape
    f64 = torch.float64
    Wt, At = torch.as_tensor(Wc, dtype=f64).to(dev), torch.as_tensor(Ac, dtype=f64).to(dev)
    wn2t, an2t = torch.as_tensor(wn2, dtype=f64).to(dev), torch.as_tensor(an2, dtype=f64).to(dev)
    wn, an = torch.sqrt(wn2t), torch.sqrt(an2t)
    Z = torch.matmul(X, Wt.transpose(1, 2))                       # B x n x m
    pos = (Z > 0).to(f64)                                         # (a bool tensor times a float: float32)
    S = pos * float(ap) if am == 0 else float(am) + (float(ap) - float(am)) * pos
    H = S * Z
    F = torch.matmul(H, At)                                       # B x n x k
    if Cc is not None:
        F = F + torch.as_tensor(Cc, dtype=f64).to(dev)[:, None, :]
    E = F - Y
    G = torch.matmul(H.transpose(1, 2), E)                        # n dL/dA
    zr = zero_rows[None, :, None]
    rel = (Z.abs() * inv_xn[None, :, None]).masked_fill_(zr, float("inf"))
    near = rel < (tol_kink * wn)[:, None, :]
    P = E * At.transpose(1, 2) if k == 1 else torch.matmul(E, At.transpose(1, 2))   # e_i . a_j
    P.mul_(S).masked_fill_(near, 0.0)
    GW = torch.matmul(P.transpose(1, 2), X)                       # n dL/dW off the near-kink pairs
    sl = slice(s, s + B)

    def back(t):
        return t.detach().cpu().numpy()
    out["loss"][sl] = back((E * E).sum(dim=(1, 2))) / (2 * n) * factor
    out["grad_A"][sl] = back(torch.sqrt(((G / n) ** 2).sum(dim=(1, 2))))
    out["grad_W"][sl] = back(torch.sqrt(((GW / n) ** 2).sum(dim=(1, 2))))
    if Cc is not None:
        out["grad_c"][sl] = back(torch.sqrt(((E.sum(dim=1) / n) ** 2).sum(dim=1)))
    out["near_kink"][sl] = back(near.sum(dim=(1, 2)))
    out["tiny"][sl] = back((an * wn * xscale / yscale < tol_tiny).sum(dim=1))
    if am == 0:
        out["dead"][sl] = back((Z.masked_fill(zr, -float("inf")).amax(dim=1) < 0).sum(dim=1))
    else:
        out["dead"][sl] = 0
    if pn:
        pn["min_rel_z"][sl] = back(rel.amin(dim=1) / torch.clamp(wn, min=1e-300))
        pn["balance"][sl] = back(wn2t - an2t)
        pn["norms"][sl] = back(torch.sqrt(wn2t + an2t))


# The thread rule: threads only for a pass of at least THREAD_MIN_WORK pre-activations (T*n*m, about
# a tenth of a second on one thread) spread over more than four chunks; below that, timing one and
# two threads costs more than threads can win (m=50, n=7, d=3, T=4000: two threads took twice as long
# as one).  Above it, _run_threaded times both and keeps the faster (THREAD_GAIN, PROBE_EVERY).
# And never more threads than CPUs that are free: with the machine's load (1-minute average of
# runnable processes, this one included) at L on C usable CPUs, at most round(C - L) + 1 threads (a
# second thread on a busy machine only waits for a core and slows the pass down).
THREAD_MIN_WORK = 10 ** 7


def _idle_cpus() -> int:
    """Usable CPUs not busy with other processes (``THREAD_MIN_WORK``'s rule), at least 1."""
    cpus = _usable_cpus()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cpus
    return max(1, min(cpus, int(round(cpus - load)) + 1))

PROBE_EVERY = 32   # chunks per thread between two timings of the thread count not in use
THREAD_GAIN = 0.9  # threads are used while they take at most this fraction of one thread's time
PROBE_BACKOFF = 32  # losing threads are re-timed at most this many times less often than PROBE_EVERY


def _run_threaded(one, starts: list, workers: int, report=None) -> None:
    """one(s) for every chunk start s, on ``workers`` threads (numpy and the kernel release the GIL)
    where that is faster than one thread: both are timed on a few chunks, the faster one goes on
    (re-timed every 8 chunks per thread, and dropped as soon as threads stop paying), and the
    other is timed again every PROBE_EVERY chunks per thread -- a shared or busy machine can make
    threads slower, and that can change during a run.  Every checkpoint's numbers are the same
    either way."""
    from concurrent.futures import ThreadPoolExecutor
    pos = 0

    def batch(count: int, threads: int) -> float:
        """Seconds per chunk for the next ``count`` chunks on ``threads`` threads."""
        nonlocal pos
        todo = starts[pos:pos + count]
        pos += len(todo)
        t = time.perf_counter()
        if threads == 1:
            for s in todo:
                one(s)
        else:
            for f in [ex.submit(one, s) for s in todo]:
                f.result()
        if report:
            report()
        return (time.perf_counter() - t) / max(1, len(todo))

    with ThreadPoolExecutor(max_workers=workers) as ex:
        per_chunk = {1: batch(workers, 1), workers: batch(2 * workers, workers)}
        every = PROBE_EVERY
        while pos < len(starts):
            use = workers if per_chunk[workers] < THREAD_GAIN * per_chunk[1] else 1
            for _ in range(max(1, every // 8)):
                if pos >= len(starts):
                    break
                per_chunk[use] = batch(8 * workers, use)
                if use == workers and per_chunk[workers] >= THREAD_GAIN * per_chunk[1]:
                    break                              # threads stopped paying: time one thread again
            other = 1 if use == workers else workers
            if pos < len(starts):
                per_chunk[other] = batch(workers if other == 1 else 2 * workers, other)
                # threads that lose again are timed half as often (a probe on threads that do not
                # pay costs more than the chunks it times); a win resets the interval
                lost = per_chunk[workers] >= THREAD_GAIN * per_chunk[1]
                every = min(PROBE_EVERY * PROBE_BACKOFF, 2 * every) if lost and use == 1 else PROBE_EVERY


def _sq_norms(V: np.ndarray) -> np.ndarray:
    """sum_q V[..., q]^2, B x m, summed in the order of q from the first square (each product and each
    sum rounded on its own): the order the fused kernel's _fk_norms uses, so both paths see the same
    |w_j| bit for bit (einsum's order depends on numpy's SIMD build)."""
    acc = V[..., 0] * V[..., 0]
    for q in range(1, V.shape[-1]):
        acc = acc + V[..., q] * V[..., q]
    return acc


def _numpy_chunk(X, Y, zero_rows, inv_xn, Wc, Ac, wn2, an2, ap, am, tol_kink, tol_tiny, xscale, yscale, factor,
                 rows, out, pn, s, Cc=None) -> None:
    """The numpy pass over B checkpoints, ``rows`` data rows at a time (every quantity is a sum, a
    count, a minimum or an all() over the data rows); ``Cc`` (B x k): the output biases, or None."""
    B, m, d = Wc.shape
    n, k = Y.shape
    wn, an = np.sqrt(wn2), np.sqrt(an2)
    thr = (tol_kink * wn)[:, None, :]                  # near a kink: |w_j.x_i| / |x_i| < tol |w_j|
    AcT = np.swapaxes(Ac, 1, 2)
    lsum = np.zeros(B)
    G = np.zeros((B, m, k))                            # n dL/dA
    GW = np.zeros((B, m, d))                           # n dL/dW off the near-kink pairs
    nnear = np.zeros(B, dtype=np.int64)
    esum = np.zeros((B, k)) if Cc is not None else None   # n dL/dc = sum of the residuals, all rows (CE3)
    zmax = np.full((B, m), -np.inf) if am == 0 else None   # largest w_j.x_i over the x_i != 0
    mr = np.full((B, m), np.inf) if pn else None
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        Xr, zr = X[r0:r1], zero_rows[r0:r1]
        fw = forward(Xr, Y[r0:r1], Wc, Ac, ap, am, Cc)   # B x rows x m (Z, S, H), B x rows x k (E, c included)
        lsum += (fw.E * fw.E).sum(axis=(1, 2))
        if esum is not None:
            esum += fw.E.sum(axis=1)
        G += np.matmul(np.swapaxes(fw.H, 1, 2), fw.E)
        rel = np.abs(fw.Z)                             # then |w_j.x_i| / |x_i| in place
        rel *= inv_xn[r0:r1, None]
        if zr.any():
            rel[:, zr, :] = np.inf                     # x_i = 0 is on no neuron's kink
        near = rel < thr
        nnear += near.sum(axis=(1, 2))
        P = fw.E * AcT if k == 1 else np.matmul(fw.E, AcT)   # e_i . a_j
        P *= fw.S
        np.copyto(P, 0.0, where=near)                  # s_ij = 0 on the near-kink pairs
        GW += np.matmul(np.swapaxes(P, 1, 2), Xr)
        if mr is not None:
            _fold_rows(np.minimum, rel, mr)
        if zmax is not None:
            Z = fw.Z
            if zr.any():
                Z[:, zr, :] = -np.inf
            _fold_rows(np.maximum, Z, zmax)
    sl = slice(s, s + B)
    out["loss"][sl] = lsum / (2 * n) * factor
    out["grad_A"][sl] = np.sqrt(((G / n) ** 2).sum(axis=(1, 2)))
    out["grad_W"][sl] = np.sqrt(((GW / n) ** 2).sum(axis=(1, 2)))
    if esum is not None:
        out["grad_c"][sl] = np.sqrt(((esum / n) ** 2).sum(axis=1))
    out["near_kink"][sl] = nnear
    out["tiny"][sl] = (an * wn * xscale / yscale < tol_tiny).sum(axis=1)
    # dead as in core.formulas.neuron_status: w_j.x_i < 0 on every data point x_i != 0
    out["dead"][sl] = (zmax < 0).sum(axis=1) if zmax is not None else 0
    if pn:
        pn["min_rel_z"][sl] = mr / np.maximum(wn, 1e-300)
        pn["balance"][sl] = wn2 - an2
        pn["norms"][sl] = np.sqrt(wn2 + an2)


def _fold_rows(ufunc, V: np.ndarray, acc: np.ndarray) -> None:
    """acc = ufunc(acc, V[:, i, :]) over the rows i of V (B x rows x m): row by row when the rows are
    few for the outputs (a reduction costs ~50 ns per output, a call ~3 us), else one reduction."""
    if V.shape[1] * 60 <= acc.size:
        for i in range(V.shape[1]):
            ufunc(acc, V[:, i, :], out=acc)
    else:
        ufunc(acc, ufunc.reduce(V, axis=1), out=acc)


# ---------------------------------------------------------------------------------------------
# the fused kernel (optional numba): plain Python here, compiled by _fused_kernel()
# ---------------------------------------------------------------------------------------------

def _fused_kernel(load: bool = True):
    """The compiled kernel, or None without numba (or with RELUCERT_NO_NUMBA=1).  Looked for once,
    and only when ``load`` (importing numba and loading the compiled code takes about a second)."""
    global _KERNEL
    if _KERNEL is None and load:
        _KERNEL = _build_kernel() or False
    return _KERNEL or None


def _build_kernel():
    if os.environ.get("RELUCERT_NO_NUMBA", "") not in ("", "0"):
        return None
    try:
        import numba
    except Exception:       # not installed, or broken against this numpy: the numpy pass does it
        return None
    for cache in (True, False):
        try:
            g = globals()
            # _fk_rows and _fk_sumsq may reassociate their sums (vectorised reductions: it changes
            # floats in the last bits, but no single product, quotient or comparison, so no count);
            # _fk_screen sums the pre-activations strictly in order.  (No division by zero can
            # happen, n >= 1 and yscale > 0: error_model="numpy" spares the checks.)
            red = numba.njit(nogil=True, cache=cache, error_model="numpy", fastmath={"reassoc", "contract"})
            g["_fk_rows_jit"] = red(_fk_rows)
            g["_fk_sumsq_jit"] = red(_fk_sumsq)
            # (fastmath=False said explicitly: else numba lets a callee inherit its caller's flags, and
            # the norms would be summed with fused multiply-adds, not as _sq_norms sums them)
            g["_fk_norms_jit"] = numba.njit(nogil=True, cache=cache, error_model="numpy", fastmath=False)(_fk_norms)
            kernel = numba.njit(nogil=True, cache=cache, error_model="numpy", fastmath={"contract"})(_fk_screen)
            _warm_up(kernel)
            return kernel
        except Exception:
            continue
    return None


def _warm_up(kernel) -> None:
    """Compile (or load from numba's cache) with the argument types screen_arrays passes."""
    f, i = np.zeros(1), np.zeros(1, dtype=np.int64)
    p = np.zeros((1, 1), dtype=np.float32)
    kernel(np.zeros((4, 1)), np.zeros((4, 1)), np.ones(4), np.ones(4, dtype=bool), 1, np.zeros((1, 1, 1)),
           np.zeros((1, 1, 1)), 1.0, 0.0, True, 1e-4, 1e-6, 1.0, 1.0, 1.0,
           False, f, f.copy(), f.copy(), i, i.copy(), i.copy(), p, p.copy(), p.copy(), 0, False, np.zeros((1, 1)),
           f.copy())


_fk_rows_jit = _fk_sumsq_jit = _fk_norms_jit = None   # the compiled _fk_rows, _fk_sumsq and _fk_norms (set by _build_kernel) that _fk_screen calls


def _fk_rows(Zb, Hb, Sb, Fb, At, thr, mr, alive, s_pos, s_neg, inv_xn, zero_row, i0, n, m, k):
    """The block of data points i0 .. i0+3: sigma(z_ij) and the slopes (0 on the near-kink pairs, of
    which it returns the number), the smallest |z_ij| / |x_i| and the points with z_ij >= 0 (over
    the x_i != 0), and the outputs f(x_i)."""
    nnear = 0
    for r in range(4):
        i = i0 + r
        f = 0.0
        if zero_row[i]:               # x_i = 0 is on no neuron's kink (a padding row is not counted)
            counted = i < n
            for j in range(m):
                zz = Zb[r, j]
                s = s_pos if zz > 0 else s_neg
                h = s * zz
                Hb[r, j] = h
                nr = (np.inf < thr[j]) & counted
                nnear += nr
                Sb[r, j] = 0.0 if nr else s
                f += h * At[0, j]
        else:
            sc = inv_xn[i]
            for j in range(m):
                zz = Zb[r, j]
                s = s_pos if zz > 0 else s_neg
                h = s * zz
                Hb[r, j] = h
                rel = abs(zz) * sc
                nr = rel < thr[j]
                nnear += nr
                Sb[r, j] = 0.0 if nr else s
                mj = mr[j]
                mr[j] = (rel if rel < mj else mj) + 0.0   # (+ 0.0: a plain store, not a slow masked one)
                alive[j] += 0 if zz < 0 else 1
                f += h * At[0, j]
        Fb[r, 0] = f
        for c in range(1, k):
            f = 0.0
            for j in range(m):
                f += Hb[r, j] * At[c, j]
            Fb[r, c] = f
    return nnear


def _fk_norms(W, A, b, Wt, At, wn2, an2, wn, thr, mr, alive, G, GWt, tol_kink):
    """The per-checkpoint set-up of checkpoint b: Wt, At (W[b], A[b] transposed), |w_j|^2 and
    |a_j|^2 each summed in coordinate order from the first square with every product and sum
    rounded on its own (compiled without fastmath: no fused multiply-add), as _sq_norms does in
    numpy; |w_j|, the kink thresholds, and the accumulators reset.  Loops over j innermost, so
    that each one vectorises."""
    m, d = W.shape[1], W.shape[2]
    k = A.shape[2]
    for q in range(d):          # (q outside: a strided gather vectorises, a short inner loop over q does not)
        for j in range(m):
            Wt[q, j] = W[b, j, q]
    for c in range(k):
        for j in range(m):
            At[c, j] = A[b, j, c]
    for j in range(m):
        wn2[j] = Wt[0, j] * Wt[0, j]
        an2[j] = At[0, j] * At[0, j]
    for q in range(1, d):
        for j in range(m):
            wn2[j] = wn2[j] + Wt[q, j] * Wt[q, j]
    for c in range(1, k):
        for j in range(m):
            an2[j] = an2[j] + At[c, j] * At[c, j]
    for j in range(m):
        w = np.sqrt(wn2[j])
        wn[j] = w
        thr[j] = tol_kink * w
        mr[j] = np.inf
        alive[j] = 0
    for c in range(k):
        for j in range(m):
            G[c, j] = 0.0
    for q in range(d):
        for j in range(m):
            GWt[q, j] = 0.0


def _fk_sumsq(V, rows, m, n):
    """sum of (V / n)^2."""
    acc = 0.0
    for r in range(rows):
        for j in range(m):
            g = V[r, j] / n
            acc += g * g
    return acc


def _fk_screen(Xp, Yp, inv_xn, zero_row, n, W, A, s_pos, s_neg, am_zero, tol_kink, tol_tiny,
               xscale, yscale, factor, per_neuron, loss, grad_A, grad_W, near_kink, tiny, dead,
               min_rel, balance, norms, off, has_c, C, grad_c):
    """Checkpoints off .. off+B-1 (W: B x m x d, A: B x m x k; with ``has_c`` the output biases C,
    B x k, and grad_c) in one sweep over the data rows, four at a time (Xp, Yp padded with zero rows
    to a multiple of four; n the true number of rows): the same quantities, decisions and
    conventions as _numpy_chunk."""
    B, m, d = W.shape
    npad = Xp.shape[0]
    k = Yp.shape[1]
    d4 = d - d % 4
    Wt = np.empty((d, m))
    At = np.empty((k, m))
    wn = np.empty(m)
    thr = np.empty(m)
    mr = np.empty(m)
    alive = np.empty(m, np.int64)     # data points x_i != 0 with w_j.x_i >= 0 (not dead)
    Zb = np.empty((4, m))             # w_j.x_i
    Hb = np.empty((4, m))             # sigma(w_j.x_i)
    Sb = np.empty((4, m))             # sigma'(w_j.x_i), 0 on the near-kink pairs
    Cb = np.empty((4, m))             # s_ij (e_i . a_j)
    Fb = np.empty((4, k))             # outputs, then residuals
    G = np.empty((k, m))              # n dL/dA (transposed)
    esum = np.zeros(k)                # n dL/dc: the sum of the residuals (with has_c)
    GWt = np.empty((d, m))            # n dL/dW off the near-kink pairs (transposed)
    wn2s = np.empty(m)                # |w_j|^2, |a_j|^2 of the checkpoint (as _sq_norms sums them)
    an2s = np.empty(m)
    for b in range(B):
        _fk_norms_jit(W, A, b, Wt, At, wn2s, an2s, wn, thr, mr, alive, G, GWt, tol_kink)
        lacc = 0.0
        nnear = 0
        for c in range(k):
            esum[c] = 0.0
        for i0 in range(0, npad, 4):
            # z_ij = sum_q x_iq w_jq, each summed in the order of q with fused multiply-adds from 0:
            # bit for bit what OpenBLAS computes for X @ W.T (so the counts below decide as numpy's
            # do, also where z_ij is a rounding error; tests/test_screen_kernel.py checks it)
            for q in range(0, d4, 4):
                a0, a1, a2, a3 = Xp[i0, q], Xp[i0, q + 1], Xp[i0, q + 2], Xp[i0, q + 3]
                b0, b1, b2, b3 = Xp[i0 + 1, q], Xp[i0 + 1, q + 1], Xp[i0 + 1, q + 2], Xp[i0 + 1, q + 3]
                c0, c1, c2, c3 = Xp[i0 + 2, q], Xp[i0 + 2, q + 1], Xp[i0 + 2, q + 2], Xp[i0 + 2, q + 3]
                e0, e1, e2, e3 = Xp[i0 + 3, q], Xp[i0 + 3, q + 1], Xp[i0 + 3, q + 2], Xp[i0 + 3, q + 3]
                for j in range(m):
                    w0 = Wt[q, j]
                    w1 = Wt[q + 1, j]
                    w2 = Wt[q + 2, j]
                    w3 = Wt[q + 3, j]
                    z0, z1, z2, z3 = (0.0, 0.0, 0.0, 0.0) if q == 0 else (Zb[0, j], Zb[1, j], Zb[2, j], Zb[3, j])
                    Zb[0, j] = (((z0 + a0 * w0) + a1 * w1) + a2 * w2) + a3 * w3
                    Zb[1, j] = (((z1 + b0 * w0) + b1 * w1) + b2 * w2) + b3 * w3
                    Zb[2, j] = (((z2 + c0 * w0) + c1 * w1) + c2 * w2) + c3 * w3
                    Zb[3, j] = (((z3 + e0 * w0) + e1 * w1) + e2 * w2) + e3 * w3
            if d == 3:      # (the same fma chain, in one pass over j)
                a0, b0, c0, e0 = Xp[i0, 0], Xp[i0 + 1, 0], Xp[i0 + 2, 0], Xp[i0 + 3, 0]
                a1, b1, c1, e1 = Xp[i0, 1], Xp[i0 + 1, 1], Xp[i0 + 2, 1], Xp[i0 + 3, 1]
                a2, b2, c2, e2 = Xp[i0, 2], Xp[i0 + 1, 2], Xp[i0 + 2, 2], Xp[i0 + 3, 2]
                for j in range(m):
                    w0 = Wt[0, j]
                    w1 = Wt[1, j]
                    w2 = Wt[2, j]
                    Zb[0, j] = ((0.0 + a0 * w0) + a1 * w1) + a2 * w2
                    Zb[1, j] = ((0.0 + b0 * w0) + b1 * w1) + b2 * w2
                    Zb[2, j] = ((0.0 + c0 * w0) + c1 * w1) + c2 * w2
                    Zb[3, j] = ((0.0 + e0 * w0) + e1 * w1) + e2 * w2
            elif d == 2:
                a0, b0, c0, e0 = Xp[i0, 0], Xp[i0 + 1, 0], Xp[i0 + 2, 0], Xp[i0 + 3, 0]
                a1, b1, c1, e1 = Xp[i0, 1], Xp[i0 + 1, 1], Xp[i0 + 2, 1], Xp[i0 + 3, 1]
                for j in range(m):
                    w0 = Wt[0, j]
                    w1 = Wt[1, j]
                    Zb[0, j] = (0.0 + a0 * w0) + a1 * w1
                    Zb[1, j] = (0.0 + b0 * w0) + b1 * w1
                    Zb[2, j] = (0.0 + c0 * w0) + c1 * w1
                    Zb[3, j] = (0.0 + e0 * w0) + e1 * w1
            elif d4 == 0:
                a0, b0, c0, e0 = Xp[i0, 0], Xp[i0 + 1, 0], Xp[i0 + 2, 0], Xp[i0 + 3, 0]
                for j in range(m):
                    w0 = Wt[0, j]
                    Zb[0, j] = 0.0 + a0 * w0
                    Zb[1, j] = 0.0 + b0 * w0
                    Zb[2, j] = 0.0 + c0 * w0
                    Zb[3, j] = 0.0 + e0 * w0
            for q in range(max(d4, 1) if d > 3 or d == 1 else d, d):
                a0 = Xp[i0, q]
                b0 = Xp[i0 + 1, q]
                c0 = Xp[i0 + 2, q]
                e0 = Xp[i0 + 3, q]
                for j in range(m):
                    w0 = Wt[q, j]
                    Zb[0, j] = Zb[0, j] + a0 * w0
                    Zb[1, j] = Zb[1, j] + b0 * w0
                    Zb[2, j] = Zb[2, j] + c0 * w0
                    Zb[3, j] = Zb[3, j] + e0 * w0
            # slopes, sigma(z), the near-kink pairs, the smallest relative |z|, dead neurons, outputs
            nnear += _fk_rows_jit(Zb, Hb, Sb, Fb, At, thr, mr, alive, s_pos, s_neg, inv_xn, zero_row, i0, n, m, k)
            # residuals e_i = f(x_i) - y_i (+ c: f includes it; a padding row then has none, not c)
            if has_c:
                for r in range(4):
                    real = i0 + r < n
                    for c in range(k):
                        ec = (Fb[r, c] + C[b, c]) - Yp[i0 + r, c]
                        if not real:
                            ec = 0.0
                        Fb[r, c] = ec
                        lacc += ec * ec
                        esum[c] += ec
            else:
                for r in range(4):
                    for c in range(k):
                        ec = Fb[r, c] - Yp[i0 + r, c]
                        Fb[r, c] = ec
                        lacc += ec * ec
            # G_j += sigma(z_ij) e_i;  c_ij = s_ij (e_i . a_j)
            if k == 1:      # (the four rows in one pass over j, the same sums in the same order)
                e0, e1, e2, e3 = Fb[0, 0], Fb[1, 0], Fb[2, 0], Fb[3, 0]
                for j in range(m):
                    aj = At[0, j]
                    G[0, j] = (((G[0, j] + Hb[0, j] * e0) + Hb[1, j] * e1) + Hb[2, j] * e2) + Hb[3, j] * e3
                    Cb[0, j] = Sb[0, j] * (e0 * aj)
                    Cb[1, j] = Sb[1, j] * (e1 * aj)
                    Cb[2, j] = Sb[2, j] * (e2 * aj)
                    Cb[3, j] = Sb[3, j] * (e3 * aj)
            for r in range(4):
                ec = Fb[r, 0]
                if k == 1:
                    break
                for j in range(m):
                    G[0, j] += Hb[r, j] * ec
                    Cb[r, j] = ec * At[0, j]
                for c in range(1, k):
                    ec = Fb[r, c]
                    for j in range(m):
                        G[c, j] += Hb[r, j] * ec
                        Cb[r, j] += ec * At[c, j]
                for j in range(m):
                    Cb[r, j] *= Sb[r, j]
            # GW_j += sum_i c_ij x_i
            for q in range(0, d - 1, 2):
                a0, b0, c0, e0 = Xp[i0, q], Xp[i0 + 1, q], Xp[i0 + 2, q], Xp[i0 + 3, q]
                a1, b1, c1, e1 = Xp[i0, q + 1], Xp[i0 + 1, q + 1], Xp[i0 + 2, q + 1], Xp[i0 + 3, q + 1]
                for j in range(m):
                    p0, p1, p2, p3 = Cb[0, j], Cb[1, j], Cb[2, j], Cb[3, j]
                    GWt[q, j] = (((GWt[q, j] + a0 * p0) + b0 * p1) + c0 * p2) + e0 * p3
                    GWt[q + 1, j] = (((GWt[q + 1, j] + a1 * p0) + b1 * p1) + c1 * p2) + e1 * p3
            if d % 2:
                q = d - 1
                a0, b0, c0, e0 = Xp[i0, q], Xp[i0 + 1, q], Xp[i0 + 2, q], Xp[i0 + 3, q]
                for j in range(m):
                    GWt[q, j] = (((GWt[q, j] + a0 * Cb[0, j]) + b0 * Cb[1, j]) + c0 * Cb[2, j]) + e0 * Cb[3, j]
        t = off + b
        loss[t] = lacc / (2 * n) * factor
        grad_A[t] = np.sqrt(_fk_sumsq_jit(G, k, m, n))
        grad_W[t] = np.sqrt(_fk_sumsq_jit(GWt, d, m, n))
        if has_c:
            gc = 0.0
            for c in range(k):
                g = esum[c] / n
                gc += g * g
            grad_c[t] = np.sqrt(gc)
        near_kink[t] = nnear
        nt = 0
        nd = 0
        if per_neuron:      # (one pass over j for the counts and the per-neuron series)
            for j in range(m):
                w2 = wn2s[j]
                a2 = an2s[j]
                nt += np.sqrt(a2) * wn[j] * xscale / yscale < tol_tiny
                nd += alive[j] == 0
                min_rel[t, j] = mr[j] / max(wn[j], 1e-300)
                balance[t, j] = w2 - a2
                norms[t, j] = np.sqrt(w2 + a2)
        else:
            for j in range(m):
                nt += np.sqrt(an2s[j]) * wn[j] * xscale / yscale < tol_tiny
                nd += alive[j] == 0
        tiny[t] = nt
        dead[t] = nd if am_zero else 0


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
        p = plateau_of_chain(ch, long, lambda a0, a1: step[a1] - step[a0] >= win)
        if p is not None:
            res.append(p)
    return res


def plateau_of_chain(ch: list, long, wide) -> "Plateau | None":
    """The plateau a chain of flat stretches (start, end, end + window) makes, or None when it is too
    short; ``long(a, b)``: checkpoints a..b span enough of the run, ``wide(a, b)``: they span a window.
    Shared by the offline detection above and the online one of ``relucert.torch``."""
    # pieces at a chain's ends too short to be plateaus themselves are dropped (as without merging)
    keep = [k for k, (s, _, e2) in enumerate(ch) if long(s, e2)]
    if keep:
        ch = ch[keep[0]:keep[-1] + 1]
    start, end = ch[0][0], max(e2 for _, _, e2 in ch)
    if not long(start, end):
        return None
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
        if k == 1 or segs[k - 2][1] + 1 >= a0 or wide(a0, a1):
            spikes += 1
    return Plateau(start, end, [tuple(sg) for sg in segs], spikes)


def _certify_checkpoint(args) -> dict:
    """Worker: refine and certify one checkpoint under the requested tiny-neuron reading.  A checkpoint
    with an output bias c goes to ``pipeline.certify_checkpoint`` with its c (the point exactly as
    given; refined only where refinement carries c)."""
    problem_json, W, A, reading, tol = args[:5]
    c = args[5] if len(args) > 5 else None
    from relucert.decide.certify import certify
    from relucert.core.problem import Problem as P, Point as Pt
    from relucert.refine import READINGS, Tolerances, refine, refined_report
    pb = P.make(problem_json["X"], problem_json["Y"], problem_json["activation"], problem_json["loss"])
    pt = Pt.make(W, A, pb, c=c)
    t0 = time.perf_counter()
    if c is not None:
        return _certify_with_bias(pb, pt, Tolerances(**tol), t0)
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


def _certify_with_bias(pb: Problem, pt, tol, t0: float) -> dict:
    """The plateau row of a checkpoint with an output bias: ``certify_checkpoint`` on the point with c
    (the tiny-neuron readings are refinement's; a verdict about the given point has reading 'exact point')."""
    from relucert.pipeline import certify_checkpoint
    rep = certify_checkpoint(pb, pt, tolerances=tol, check_mode=False)
    given = rep.given
    rf = dict(rep.refined) if rep.refined is not None else None
    if rf is None or (rf["verdict"] not in ("local_min", "saddle", "global_min")
                      and given.verdict in ("local_min", "saddle", "global_min")):
        skipped = getattr(rep, "refine_skipped", None)     # why refinement did not run, where the report says
        reason = given.reason + (f" ({skipped})" if skipped and given.verdict == "inconclusive" else "")
        rf = {"reading": "exact point", "verdict": given.verdict, "escape_neurons": given.escape_neurons,
              "reason": reason, "readings": [], "distance": {"max_abs": 0.0, "relative": 0.0}}
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
                     growth: float = 10.0, tol: dict | None = None, progress=None) -> list[PlateauRow]:
    """Refine and certify the middle checkpoint of each plateau (process pool), and compare the
    neurons that grow after the plateau with the certified escape neurons.  A plateau with merged
    loss spikes (``Plateau.segments``) is represented by the checkpoint nearest its middle that lies
    in one of its flat stretches, never by one inside a spike.  ``progress(done, total)``, when
    given, is called once before the first plateau (done = 0) and after each plateau is certified
    (in the plateaus' order)."""
    pj = traj.problem.to_json()
    tol = tol or {}
    rows, jobs = [], []
    for p, pl in enumerate(plateaus):
        s, e = int(pl[0]), int(pl[1])
        rep = _representative(traj.step, s, e, _segments(pl))
        loss = float(traj.loss[rep]) if traj.loss is not None else float("nan")
        rows.append(PlateauRow(p + 1, s, e, (int(traj.step[s]), int(traj.step[e])), rep, loss,
                               spikes=int(getattr(pl, "spikes", 0))))
        job = (pj, traj.W[rep], traj.A[rep], reading, tol)
        jobs.append(job if traj.c is None else job + (traj.c[rep],))
    results = []
    if progress is not None:
        progress(0, len(jobs))
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for rf in ex.map(_certify_checkpoint, jobs):
                results.append(rf)
                if progress is not None:
                    progress(len(results), len(jobs))
    else:
        for j in jobs:
            results.append(_certify_checkpoint(j))
            if progress is not None:
                progress(len(results), len(jobs))
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
