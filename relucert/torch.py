"""Live PyTorch models: ``from_torch`` reads a model's weights exactly, ``Monitor`` watches a training loop.

    problem, point = relucert.from_torch(model, X, Y)         # nn.Sequential(Linear, ReLU, Linear)
    report = relucert.certify_checkpoint(problem, point)

    with relucert.torch.Monitor(model, X, Y, steps=N) as monitor:
        for step in range(N):
            ...; loss.backward(); optimizer.step()
            monitor(loss)                    # one call per step: plateaus are certified as they end
    monitor.rows                             # one row per plateau, and the final point's

torch is imported inside the functions only: ``import relucert`` works without it.  The weights go
through the file loader's mapping (``relucert.io.state_dict_point``): every float tensor is converted
exactly (float32 / float64 values are dyadic rationals), a hidden bias is folded exactly into a
constant-1 column of X, an output bias becomes the point's c, and a tensor the mapping does not use
is refused, never dropped.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from relucert.errors import InputError
from relucert.core.problem import Activation, Point, Problem

SOURCE = "model"      # how errors and mappings name a live model


def _torch():
    from relucert.io import _import_torch
    return _import_torch("relucert.from_torch")


# ---------------------------------------------------------------------------------------------
# from_torch
# ---------------------------------------------------------------------------------------------

def _activation_of(module, name: str) -> Any:
    """The exact activation spec of an activation module: nn.ReLU, nn.LeakyReLU(negative_slope)."""
    nn = _torch().nn
    if type(module) is nn.ReLU:
        return "relu"
    if type(module) is nn.LeakyReLU:
        slope = module.negative_slope
        if not isinstance(slope, (int, float)):
            raise InputError(f"{SOURCE}: activation {name!r} LeakyReLU has negative_slope {slope!r}, not a number")
        return {"alpha_plus": 1, "alpha_minus": Fraction(slope)}      # the float's exact binary value
    what = type(module).__name__
    extra = " (a learned slope is a parameter relucert does not carry)" if isinstance(module, nn.PReLU) else ""
    raise InputError(f"{SOURCE}: module {name!r} is {what}{extra}, not a ReLU-like activation: relucert certifies "
                     "nn.Linear -> nn.ReLU or nn.LeakyReLU(negative_slope) -> nn.Linear networks")


def _passes_through(mod, name: str) -> bool:
    """nn.Identity, and nn.Flatten over every axis after the batch axis (the identity on the 2-D
    tensors of this network; it flattens data with more axes, which from_torch does for X); any other
    nn.Flatten is refused."""
    nn = _torch().nn
    if type(mod) is nn.Identity:
        return True
    if type(mod) is nn.Flatten:
        if mod.start_dim == 1 and mod.end_dim == -1:
            return True
        raise InputError(f"{SOURCE}: module {name!r} is nn.Flatten(start_dim={mod.start_dim}, end_dim={mod.end_dim}); "
                         "only nn.Flatten() (start_dim=1, end_dim=-1: one row per data point) is read")
    return False


def _flattens(model) -> bool:
    nn = _torch().nn
    return isinstance(model, nn.Module) and any(type(m) is nn.Flatten for m in model.modules())


def _layers(model, d: int, k: int, activation: Any = None) -> tuple[str, str | None, Any]:
    """(keys 'IN_W[,IN_B],OUT_W' of the two Linear layers, their order checked against the data shape;
    activation spec) of ``model``: exactly two nn.Linear modules and one activation module."""
    nn = _torch().nn
    if not isinstance(model, nn.Module):
        raise InputError(f"from_torch: expected a torch.nn.Module, got {type(model).__name__}")
    linears, others = [], []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            linears.append((name, mod))
        elif mod is not model and not list(mod.children()) and not _passes_through(mod, name):
            others.append((name, mod))
    if len(linears) != 2:
        shown = ", ".join(f"{n or 'the model'} {type(m).__name__}" for n, m in linears) or "none"
        raise InputError(f"{SOURCE}: found {len(linears)} nn.Linear layers ({shown}); relucert certifies "
                         "one-hidden-layer networks: exactly two Linear layers around one activation")
    if len(others) > 1:
        shown = ", ".join(f"{n!r} {type(m).__name__}" for n, m in others[:6])
        raise InputError(f"{SOURCE}: besides the two Linear layers the model has {len(others)} modules ({shown}); "
                         "expected exactly one activation (nn.ReLU or nn.LeakyReLU) between them")
    if others:
        spec = _activation_of(others[0][1], others[0][0])
        if activation is not None:
            if Activation.parse(activation) != Activation.parse(spec):
                raise InputError(f"{SOURCE}: activation={activation!r} contradicts the model's module "
                                 f"{others[0][0]!r} ({type(others[0][1]).__name__})")
    elif activation is None:
        raise InputError(f"{SOURCE}: no activation module between the Linear layers (an activation applied in "
                         "forward(), such as F.relu, cannot be read): pass activation='relu' "
                         "(or 'leaky_relu:SLOPE') to from_torch")
    else:
        spec = activation

    def fits(a, b) -> bool:
        return a.in_features == d and b.in_features == a.out_features and b.out_features == k

    (n0, l0), (n1, l1) = linears
    # module order first (nn.Sequential's forward order); the other order only when the shapes say so
    if not fits(l0, l1) and fits(l1, l0):
        (n0, l0), (n1, l1) = (n1, l1), (n0, l0)
    p0, p1 = (n0 + "." if n0 else ""), (n1 + "." if n1 else "")
    keys = [p0 + "weight"] + ([p0 + "bias"] if l0.bias is not None else []) + [p1 + "weight"]
    return ",".join(keys), spec


def _data_array(v, what: str) -> np.ndarray:
    """X or Y (torch tensor, numpy array or nested lists) as an array whose floats are read exactly."""
    from relucert.io import _exact_float64
    if hasattr(v, "detach") and hasattr(v, "dtype"):
        name = str(v.dtype).replace("torch.", "")
        if "int" in name and "complex" not in name:
            return v.detach().cpu().numpy()
        return _exact_float64(what, v, "from_torch")
    return np.asarray(v) if not isinstance(v, np.ndarray) else v


def from_torch_info(model, X, Y, *, loss: str = "mse", activation: Any = None):
    """``from_torch`` with the parameter mapping (``relucert.io.TorchLoadInfo``: which tensor went where,
    ``info.lines()`` says it in words)."""
    from relucert.io import state_dict_point
    Xa, Ya = _data_array(X, "X"), _data_array(Y, "Y")
    if Xa.ndim > 2 and _flattens(model):
        Xa = Xa.reshape(Xa.shape[0], -1)          # what the model's nn.Flatten() does to a batch
    pb = Problem.make(Xa, Ya, "relu", loss)
    keys, spec = _layers(model, pb.d, pb.k, activation)
    pb = Problem(pb.X, pb.Y, Activation.parse(spec), pb.loss)
    sd = dict(model.state_dict())
    name = type(model).__name__
    return state_dict_point(sd, pb, keys=keys, source=SOURCE, container=f"live {name}")


def from_torch(model, X, Y, *, loss: str = "mse", activation: Any = None) -> tuple[Problem, Point]:
    """(Problem, Point) of a live PyTorch model on data X (n x d), Y (n x k, or length n for k = 1),
    exactly.  ``model`` is an nn.Sequential(nn.Linear, activation, nn.Linear) or any module whose
    parameters are exactly two nn.Linear layers around one activation module: nn.ReLU, or
    nn.LeakyReLU(negative_slope) with the slope's exact binary value (anything else is refused in one
    line; a model applying F.relu in forward() needs ``activation="relu"``).  nn.Identity and
    nn.Flatten() modules are read as what they do here (nothing; X with more than two axes is
    flattened to one row per data point).  A hidden bias is folded
    into a constant-1 column appended to X; an output bias becomes the point's c.  X, Y are torch
    tensors or numpy arrays, their floats read exactly.  ``loss``: "mse" (PyTorch's mse_loss, the
    default) or "half_mean"."""
    pb, pt, _ = from_torch_info(model, X, Y, loss=loss, activation=activation)
    return pb, pt


# ---------------------------------------------------------------------------------------------
# online plateau detection
# ---------------------------------------------------------------------------------------------

class OnlinePlateaus:
    """``tools.screen.detect_plateaus`` one loss at a time, for a run of ``total`` steps (step numbers
    0, 1, ..., total - 1): ``push`` returns the plateaus that are certain to have ended, ``finish``
    (after the last step) the rest.  Together they are exactly ``detect_plateaus(arange(total), losses,
    opts)``: the same flat test (each loss against the one a window later), flat stretches extended by a
    window, chained across short spikes, with the same trimming, length test and spike count; a chain
    is emitted once no later stretch can join it (a window and ``spike_frac`` of the run after its last
    flat checkpoint)."""

    def __init__(self, total: int, opts=None):
        from relucert.tools.screen import PlateauOptions
        if not isinstance(total, (int, np.integer)) or total < 3:
            raise InputError(f"Monitor: steps must be the number of training steps (an integer >= 3), got {total!r}")
        self.T = int(total)
        self.opts = opts or PlateauOptions()
        self.span = float(self.T - 1)
        self.win = self.opts.window_frac * self.span
        self.loss: list[float] = []
        self.flat: list[bool] = []
        self.run_start: int | None = None
        self.chain: list[tuple[int, int, int]] = []      # stretches (s, e, e2) of the open chain
        self.merged: tuple[int, int] | None = None       # spike_frac <= 0: the open merged plateau
        self.done = False

    # -- the offline code's pieces, one at a time ------------------------------------------------
    def _flat_value(self, i: int, j: int) -> bool:
        if float(j) - float(i) < self.win * 0.5:
            return self.flat[i - 1] if i else False
        lo, hi = self.loss[i], self.loss[j]
        return abs(hi - lo) <= self.opts.rel_change * max(abs(lo), 1e-300)

    def _long(self, a: int, b: int) -> bool:
        return float(b) - float(a) >= self.opts.min_frac * self.span

    def horizon(self) -> int:
        """The first checkpoint that can still be in a plateau not yet emitted (older ones may be dropped)."""
        cands = [len(self.flat)]
        if self.run_start is not None:
            cands.append(self.run_start)
        if self.chain:
            cands.append(self.chain[0][0])
        if self.merged is not None:
            cands.append(self.merged[0])
        return min(cands)

    def push(self, value: float) -> list:
        t = len(self.loss)
        if t >= self.T:
            raise InputError(f"Monitor: step {t + 1} recorded but steps={self.T}: pass the run's number of steps")
        self.loss.append(float(value))
        out: list = []
        # flat[i] compares loss i with the first checkpoint at least a window later: checkpoint t
        while len(self.flat) <= t and float(t) >= float(len(self.flat)) + self.win:
            self._set_flat(self._flat_value(len(self.flat), t), out)
        if t == self.T - 1:               # the last step: the remaining flats look at it (truncated window)
            while len(self.flat) < self.T:
                self._set_flat(self._flat_value(len(self.flat), t), out)
            if self.run_start is not None:
                self._stretch(self.run_start, self.T - 1, out)
                self.run_start = None
            self._emit_all(out)
            self.done = True
        return out

    def finish(self) -> list:
        """The plateaus still open (only before the last step: then the run was shorter than planned
        and they are cut at the last recorded step, which the offline detection would not know)."""
        out: list = []
        if not self.done:
            if self.run_start is not None:
                self._stretch(self.run_start, len(self.flat) - 1, out)
                self.run_start = None
            self._emit_all(out)
            self.done = True
        return out

    def _set_flat(self, value: bool, out: list) -> None:
        i = len(self.flat)
        self.flat.append(bool(value))
        if value and self.run_start is None:
            self.run_start = i
        elif not value and self.run_start is not None:
            self._stretch(self.run_start, i - 1, out)
            self.run_start = None
        if self.run_start is None:
            self._close_if_final(i, out)

    def _stretch(self, s: int, e: int, out: list) -> None:
        e2 = e
        while e2 < self.T - 1 and float(e2 + 1) <= float(e) + self.win:
            e2 += 1
        o = self.opts
        if o.spike_frac <= 0:
            if not self._long(s, e2):
                return
            if self.merged is not None and s <= self.merged[1]:
                self.merged = (self.merged[0], max(e2, self.merged[1]))
            else:
                self._emit_all(out)
                self.merged = (s, e2)
            return
        if self.chain:
            _, pe, pe2 = self.chain[-1]
            back = abs(self.loss[s] - self.loss[pe]) <= o.spike_tol * max(abs(self.loss[pe]), 1e-300)
            if s <= pe2 or (float(s) - float(pe) <= o.spike_frac * self.span and back):
                self.chain.append((s, e, e2))
                return
            self._emit_all(out)
        self.chain.append((s, e, e2))

    def _close_if_final(self, last_known: int, out: list) -> None:
        nxt = last_known + 1                      # the earliest start of a stretch not seen yet
        if self.merged is not None and nxt > self.merged[1]:
            self._emit_all(out)
        if self.chain:
            _, pe, pe2 = self.chain[-1]
            if nxt > pe2 and float(nxt) - float(pe) > self.opts.spike_frac * self.span:
                self._emit_all(out)

    def _emit_all(self, out: list) -> None:
        from relucert.tools.screen import Plateau, plateau_of_chain
        if self.merged is not None:
            out.append(Plateau(*self.merged))
            self.merged = None
        if not self.chain:
            return
        ch, self.chain = self.chain, []
        p = plateau_of_chain(ch, self._long, lambda a0, a1: float(a1) - float(a0) >= self.win)
        if p is not None:
            out.append(p)


# ---------------------------------------------------------------------------------------------
# the training monitor
# ---------------------------------------------------------------------------------------------

@dataclass
class MonitorRow:
    """One certified checkpoint of a monitored run: a plateau's representative, or the final point."""

    kind: str                      # "plateau" or "final"
    index: int                     # plateau number (1, 2, ...); 0 for the final point
    start: int                     # first / last step of the plateau (the final point: its step twice)
    end: int
    representative: int            # the plateau's representative step (tools.screen._representative)
    certified: int                 # the step actually certified (the kept checkpoint nearest it)
    loss: float                    # the recorded loss at the certified step
    verdict: str = ""
    about: str = ""                # "given point", "refined point", ...
    escape_neurons: list = field(default_factory=list)
    spikes: int = 0
    seconds: float = 0.0
    reason: str = ""
    report: Any = field(default=None, repr=False, compare=False)   # the pipeline.CheckpointReport

    def _repr_markdown_(self) -> str:
        from relucert.tools.render import monitor_markdown
        return monitor_markdown([self])


class Monitor:
    """Watch an ordinary training loop: call ``monitor.step(loss=...)`` (or ``monitor(loss)``) once per
    step, ``steps`` times; the loss may be omitted (then it is computed in float64 from the weights).

    The recorded losses go through ``OnlinePlateaus`` (the offline ``detect_plateaus`` with
    ``options``, a ``tools.screen.PlateauOptions``, one step at a time); each plateau, once it has
    ended, is certified at its representative checkpoint with ``relucert.certify_checkpoint``
    (``certify_options``: its keyword arguments) and printed as a table line to ``stream`` (default
    stderr; ``quiet=True``: nothing).  ``close()`` (or leaving the ``with`` block) certifies the final
    point.  ``rows`` holds the rows, ``table()`` is the text table, and the object renders in Jupyter.

    Memory is bounded: the losses (one float a step), and at most ``keep`` checkpoints, only those a
    plateau not yet emitted can be represented by; when more are needed, every other one is dropped
    (the certified step is then the kept one nearest the representative, and the row says which).
    Call it after ``optimizer.step()``: the checkpoint is the model's parameters at the call (the loss
    of the step just taken belongs to the parameters before it, a one-step shift that does not matter
    for plateaus; pass nothing to record the loss of the parameters at the call)."""

    def __init__(self, model, X, Y, *, steps: int, loss: str = "mse", activation: Any = None,
                 options=None, keep: int = 256, stream=None, quiet: bool = False,
                 certify_options: dict | None = None):
        pb, pt, info = from_torch_info(model, X, Y, loss=loss, activation=activation)
        if not isinstance(keep, int) or keep < 2:
            raise InputError(f"Monitor: keep must be an integer >= 2, got {keep!r}")
        self.model, self.problem, self.mapping = model, pb, info
        sd = model.state_dict()
        self._shapes = {k: tuple(sd[k].shape) for k in (info.input_weight, info.hidden_bias, info.output_weight,
                                                         info.output_bias) if k is not None}
        self.detector = OnlinePlateaus(steps, options)
        self.options = self.detector.opts
        self.keep = keep
        self.stream = sys.stderr if stream is None else stream
        self.quiet = quiet
        self.certify_options = dict(certify_options or {})
        self.rows: list[MonitorRow] = []
        self.plateaus: list = []
        self._kept: dict[int, tuple] = {}
        self._header = False
        self.closed = False
        act = pb.activation
        self._slopes = (float(act.alpha_plus), float(act.alpha_minus))

    # -- recording -------------------------------------------------------------------------------
    @property
    def losses(self) -> np.ndarray:
        """The recorded loss curve (one float per step)."""
        return np.asarray(self.detector.loss, dtype=float)

    def _snapshot(self) -> tuple:
        """(W, A, c) of the model now: copies, read exactly with the mapping checked at the start."""
        from relucert.io import assemble_weights
        i = self.mapping
        keys = [k for k in (i.input_weight, i.hidden_bias, i.output_weight, i.output_bias) if k is not None]
        try:
            sd = {k: self.model.get_parameter(k) for k in keys}
        except AttributeError as e:
            raise InputError(f"Monitor: the model no longer has the parameters it started with ({e})") from None
        for k, v in sd.items():
            if tuple(v.shape) != self._shapes[k]:
                raise InputError(f"Monitor: parameter {k!r} changed shape from {self._shapes[k]} to {tuple(v.shape)}")
        return assemble_weights(sd, i.input_weight, i.hidden_bias, i.output_weight, i.output_bias, SOURCE)

    def _float_loss(self, snap: tuple) -> float:
        from relucert.core.formulas import forward, half_mean_loss
        W, A, c = snap
        pb = self.problem
        fw = forward(pb.Xf, pb.Yf, W, A, *self._slopes, c)
        return float(half_mean_loss(fw.E)) * float(pb.loss_factor())

    def __call__(self, loss=None) -> list[MonitorRow]:
        return self.step(loss=loss)

    def step(self, loss=None) -> list[MonitorRow]:
        """Record one step (its loss: a float or a 0-d tensor; None: computed); returns the rows of the
        plateaus this step showed to have ended (usually none)."""
        if self.closed:
            raise InputError("Monitor: step() after close()")
        t = len(self.detector.loss)
        snap = self._snapshot()
        if loss is None:
            value = self._float_loss(snap)
        else:
            value = float(loss.detach().item() if hasattr(loss, "detach") else loss)
        if not np.isfinite(value):
            raise InputError(f"Monitor: the loss at step {t} is {value}")
        self._kept[t] = snap
        ended = self.detector.push(value)
        rows = [self._certify_plateau(p) for p in ended]
        self._prune()
        return rows

    def _prune(self) -> None:
        h = self.detector.horizon()
        for i in [i for i in self._kept if i < h]:
            del self._kept[i]
        if len(self._kept) > self.keep:
            idx = sorted(self._kept)
            drop = set(idx) - set(idx[::-1][::2])        # the newest and every other one before it stay
            for i in drop:
                del self._kept[i]

    # -- certifying ------------------------------------------------------------------------------
    def _point(self, snap: tuple) -> Point:
        W, A, c = snap
        return Point.make(W, A, self.problem, c=c)

    def _certify(self, snap: tuple):
        from relucert.pipeline import certify_checkpoint
        return certify_checkpoint(self.problem, self._point(snap), **self.certify_options)

    def _certify_plateau(self, p) -> MonitorRow:
        from relucert.tools.screen import _representative, _segments
        self.plateaus.append(p)
        s, e = int(p[0]), int(p[1])
        step = np.arange(self.detector.T, dtype=float)
        rep = _representative(step, s, e, _segments(p))
        cands = [i for i in self._kept if s <= i <= e] or list(self._kept)
        in_flat = [i for i in cands if any(a <= i <= b for a, b in _segments(p))]
        got = min(in_flat or cands, key=lambda i: (abs(i - rep), i))
        t0 = time.perf_counter()
        report = self._certify(self._kept[got])
        row = MonitorRow("plateau", len(self.plateaus), s, e, rep, got, self.detector.loss[got], report.verdict,
                         report.about, list(report._headline()["escape_neurons"] or []), int(p.spikes),
                         time.perf_counter() - t0, report._headline()["reason"], report)
        self._add(row)
        return row

    def close(self) -> list[MonitorRow]:
        """End the run: emit the plateaus still open, certify the final point (the model's parameters
        now); returns all rows."""
        if self.closed:
            return self.rows
        for p in self.detector.finish():
            self._certify_plateau(p)
        n = len(self.detector.loss)
        if n and n < self.detector.T:
            self._print(f"note: {n} of steps={self.detector.T} steps recorded; plateaus were detected for a "
                        f"run of {self.detector.T} steps")
        snap = self._snapshot()
        t0 = time.perf_counter()
        report = self._certify(snap)
        last = max(n - 1, 0)
        loss = self.detector.loss[-1] if n else self._float_loss(snap)
        self._add(MonitorRow("final", 0, last, last, last, last, loss, report.verdict, report.about,
                             list(report._headline()["escape_neurons"] or []), 0, time.perf_counter() - t0,
                             report._headline()["reason"], report))
        self.closed = True
        return self.rows

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        return False

    # -- output ----------------------------------------------------------------------------------
    HEAD = ("plateau", "steps", "certified", "loss", "verdict", "about", "escape neurons", "seconds")
    WIDTHS = (7, 15, 9, 14, 14, 16, 22, 7)

    def _cells(self, r: MonitorRow) -> list[str]:
        from relucert.tools.screen import summarise_list
        name = "final" if r.kind == "final" else str(r.index)
        steps = f"{r.start}-{r.end}" if r.kind == "plateau" else f"{r.end}"
        return [name, steps, str(r.certified), f"{r.loss:.8g}", r.verdict, r.about,
                summarise_list(r.escape_neurons, 22), f"{r.seconds:.2f}"]

    def _line(self, cells) -> str:
        return " ".join(c.ljust(w) for c, w in zip(cells, self.WIDTHS)).rstrip()

    def _print(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def _add(self, row: MonitorRow) -> None:
        self.rows.append(row)
        if not self._header:
            self._print(self._line(self.HEAD))
            self._header = True
        self._print(self._line(self._cells(row)))

    def table(self) -> str:
        """The rows as a text table (what was printed live)."""
        return "\n".join([self._line(self.HEAD)] + [self._line(self._cells(r)) for r in self.rows])

    def markdown(self) -> str:
        from relucert.tools.render import monitor_markdown
        return monitor_markdown(self.rows, self.problem.loss)

    def latex(self) -> str:
        from relucert.tools.render import monitor_latex
        return monitor_latex(self.rows, self.problem.loss)

    def _repr_markdown_(self) -> str:
        return self.markdown()


__all__ = ["from_torch", "from_torch_info", "Monitor", "MonitorRow", "OnlinePlateaus"]
