"""Plots of a screened trajectory (matplotlib, an optional extra; Agg backend), for print.

``plot_screen`` writes one figure, in the format of the file's extension (``.png`` at 300 dpi,
``.pdf`` or ``.svg`` as vector graphics), 7 in wide (a two-column page):

* the loss (log scale, in the problem's convention, stated in the axis label) with the plateaus
  shaded by their certified verdict;
* per neuron, for any input dimension d and output dimension k: ``‖w_j‖``, ``‖a_j‖`` (the norm of
  the row of A; ``|a_j|`` for k = 1) and the cosine similarity of ``w_j(t)`` to its final direction
  ``w_j(end)``; for d = 2, or d = 3 with a constant (bias) column in X, also the angle of ``w_j``
  (of its non-bias part) in the plane, unwrapped over time (no jumps at ±180°).

Neurons get distinct colours (a qualitative colour map, cycled with line styles beyond 10; 60
distinct styles) and a legend; with more than ``top`` neurons only the ``top`` largest by final ``sqrt(‖w_j‖²+‖a_j‖²)`` are
coloured, the others drawn in grey, and the legend title says so.  Every plot's data is also
returned (``plot_screen``'s dict, the ``plot`` entry of ``relucert screen --json``).
"""
from __future__ import annotations

import os

import numpy as np

from relucert.errors import InputError

VERDICT_COLOURS = {"saddle": "tab:orange", "local_min": "tab:green", "global_min": "tab:blue",
                   "not_stationary": "tab:red", "inconclusive": "tab:grey"}
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
PNG_DPI = 300                 # print resolution of .png output
FIG_WIDTH = 7.0               # inches: the width of a two-column page
PANEL_HEIGHT = 1.55           # inches per panel
TOP_NEURONS = 20              # neurons drawn in colour by default
MAX_POINTS = 2000             # samples per neuron series
MAX_GREY = 100                # grey background neurons drawn at most (evenly by final norm rank)
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)))   # 10 colours x 6: 60 distinct
# matplotlib's qualitative "tab10" with its grey replaced by black (grey is for the neurons not shown)
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#000000",
           "#bcbd22", "#17becf")
LOSS_LABELS = {"mse": "loss, mse\n" + r"$\frac{1}{nk}\sum_i \Vert f(x_i)-y_i\Vert^2$",
               "half_mean": "loss, half_mean\n" + r"$\frac{1}{2n}\sum_i \Vert f(x_i)-y_i\Vert^2$"}


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("plots need matplotlib, an optional extra: pip install 'relucert[plot]'") from None
    return plt


def plot_format(path: str) -> str:
    """'png', 'pdf' or 'svg', from the file's extension (a one-line InputError otherwise)."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise InputError(f"{path}: the plot format comes from the extension: use .png, .pdf or .svg "
                         f"(got {ext or 'none'})")
    return FORMATS[ext]


def check_plot_path(path: str) -> str:
    """Fail early (before screening) on a bad extension, a missing directory or missing matplotlib."""
    fmt = plot_format(path)
    folder = os.path.dirname(os.path.abspath(str(path)))
    if not os.path.isdir(folder):
        raise InputError(f"{path}: no such directory {folder}")
    _plt()
    return fmt


def bias_column(X) -> int | None:
    """Index of a constant non-zero column of X (a bias input), the last one if several, else None."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] == 0:
        return None
    const = [q for q in range(X.shape[1]) if X[0, q] != 0 and np.all(X[:, q] == X[0, q])]
    return const[-1] if const else None


def _angle_columns(d: int, bias: int | None) -> tuple[int, int] | None:
    if d == 2:
        return (0, 1)
    if d == 3 and bias is not None:
        rest = [q for q in range(3) if q != bias]
        return (rest[0], rest[1])
    return None


def neuron_series(traj, every: int | None = None, top: int = TOP_NEURONS) -> dict:
    """Per-neuron series over the run, for any d and k (every ``every``-th checkpoint; by default
    at most MAX_POINTS samples): ``w_norm`` ‖w_j‖, ``a_norm`` ‖a_j‖ (row norm of A), ``cos_final``
    cos∠(w_j(t), w_j(end)) (NaN where a vector is 0) and, for d = 2 or d = 3 with a bias column,
    ``angle_deg``: the angle of the (non-bias part of) w_j, unwrapped along the samples (np.unwrap:
    consecutive values differ by at most 180 degrees) and shifted by whole turns so that its final
    value lies in [-180, 180].  ``shown``: the neurons drawn in
    colour, the ``top`` largest by final sqrt(‖w_j‖²+‖a_j‖²) (all if ``top`` <= 0 or >= m)."""
    W, A = traj.W, traj.A
    T, m, d = W.shape
    every = every or max(1, -(-T // MAX_POINTS))
    idx = np.arange(0, T, every)
    if idx[-1] != T - 1:
        idx = np.append(idx, T - 1)
    Ws, As = W[idx].astype(float), A[idx].astype(float)
    w_norm = np.sqrt((Ws ** 2).sum(axis=2))                        # S x m
    a_norm = np.sqrt((As ** 2).sum(axis=2))
    wf = W[-1].astype(float)
    wf_norm = np.sqrt((wf ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("smd,md->sm", Ws, wf) / (w_norm * wf_norm[None, :])
    cos = np.where((w_norm > 0) & (wf_norm[None, :] > 0), np.clip(cos, -1.0, 1.0), np.nan)
    bias = bias_column(traj.problem.Xf)
    cols = _angle_columns(d, bias)
    angle = None
    if cols is not None:
        # unwrapped along the plotted samples: consecutive values differ by at most 180 degrees
        ang = np.unwrap(np.arctan2(Ws[:, :, cols[1]], Ws[:, :, cols[0]]), axis=0)
        ang -= 2 * np.pi * np.round(ang[-1] / (2 * np.pi) - 1e-12)[None, :]
        angle = np.degrees(ang)
    final = np.sqrt((wf ** 2).sum(axis=1) + (A[-1].astype(float) ** 2).sum(axis=1))
    order = [int(j) for j in np.argsort(-final, kind="stable")]
    shown = sorted(order[:top]) if 0 < top < m else list(range(m))
    what = None
    if cols is not None:
        what = (f"w_j (columns {cols[0]}, {cols[1]})" if d == 2
                else f"w_j without the bias column {bias} (columns {cols[0]}, {cols[1]})")
    return {"step": [int(s) for s in np.asarray(traj.step)[idx]], "every": int(every), "m": int(m), "d": int(d),
            "k": int(A.shape[2]), "bias_column": bias, "shown": shown, "by_final_norm": order,
            "w_norm": w_norm.T.tolist(), "a_norm": a_norm.T.tolist(), "cos_final": cos.T.tolist(),
            "angle_deg": angle.T.tolist() if angle is not None else None, "angle_of": what}


def _decimate(y: np.ndarray, max_points: int = 20000) -> np.ndarray:
    """Indices of at most ~max_points samples keeping each bucket's min and max (spikes stay visible)."""
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    edges = np.linspace(0, n, max_points // 2 + 1).astype(int)
    keep = {0, n - 1}
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            seg = y[a:b]
            keep.add(a + int(np.nanargmin(seg)))
            keep.add(a + int(np.nanargmax(seg)))
    return np.array(sorted(keep))


def _max_jump(series) -> float:
    out = 0.0
    for s in series or []:
        a = np.asarray(s, dtype=float)
        if len(a) > 1:
            out = max(out, float(np.nanmax(np.abs(np.diff(a)), initial=0.0)))
    return out


def plot_screen(traj, screen, rows, out_path: str, *, top: int = TOP_NEURONS, plateaus=None) -> dict:
    """Write the figure to ``out_path`` (format from its extension) and return its data and layout:
    ``loss_curve``, ``plateau_bands``, ``neurons`` (``neuron_series``), ``file``, ``format``, ``dpi``,
    ``size_inches``, ``size_px``, ``panels`` / ``n_panels``, ``legend_entries`` / ``legend_title`` (the
    neuron legend), ``loss_legend_entries``, ``neurons_shown``, ``neuron_styles`` (neuron -> [colour,
    line style]) and ``max_angle_jump_deg``."""
    fmt = plot_format(out_path)
    plt = _plt()
    series = neuron_series(traj, top=top)
    m, k = series["m"], series["k"]
    panels = ["loss", "w_norm", "a_norm", "cos_final"] + (["angle"] if series["angle_deg"] is not None else [])
    if rows:
        bands = [{"index": r.index, "steps": list(r.step_range), "verdict": r.verdict,
                  "spikes": getattr(r, "spikes", 0)} for r in rows]
    else:
        bands = [{"index": i + 1, "steps": [int(traj.step[p[0]]), int(traj.step[p[1]])], "verdict": "",
                  "spikes": int(getattr(p, "spikes", 0))} for i, p in enumerate(plateaus or [])]
    shown = series["shown"]
    others = [j for j in series["by_final_norm"] if j not in set(shown)]
    drawn = others if len(others) <= MAX_GREY else [others[i] for i in np.linspace(0, len(others) - 1, MAX_GREY).astype(int)]
    grey_label = f"other {len(others)} neurons" + (f" ({len(drawn)} drawn)" if len(drawn) < len(others) else "")
    n_leg = len(shown) + (1 if others else 0)
    leg_rows = -(-n_leg // 10)
    ncol = max(1, -(-n_leg // leg_rows))
    size = (FIG_WIDTH, PANEL_HEIGHT * len(panels) + 0.45 + 0.17 * leg_rows)
    rc = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
          "legend.title_fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 0.9,
          "pdf.fonttype": 42, "ps.fonttype": 42, "svg.hashsalt": "relucert", "axes.grid": True,
          "grid.alpha": 0.25, "grid.linewidth": 0.4}
    step = np.asarray(traj.step)
    with plt.rc_context(rc):
        fig, axes = plt.subplots(len(panels), 1, figsize=size, sharex=True, squeeze=False,
                                 layout="constrained")
        ax_of = {name: axes[i, 0] for i, name in enumerate(panels)}
        # -- loss
        ax = ax_of["loss"]
        keep = _decimate(np.asarray(screen.loss, dtype=float))
        ax.plot(step[keep], np.asarray(screen.loss)[keep], color="black", lw=0.8, label="loss")
        ax.set_yscale("log")
        pos = np.asarray(screen.loss, dtype=float)
        pos = pos[np.isfinite(pos) & (pos > 0)]
        if len(pos):   # head room for the plateau labels above the curve
            lo, hi = float(pos.min()), float(pos.max())
            decades = max(np.log10(hi / lo), 0.05)
            ax.set_ylim(lo / 10 ** ((0.3 if bands else 0.05) * decades), hi * 10 ** (0.22 * decades))
        ax.set_ylabel(LOSS_LABELS.get(traj.problem.loss, f"loss ({traj.problem.loss})"))
        loss_handles: dict = {}
        for b in bands:
            colour = VERDICT_COLOURS.get(b["verdict"], "0.6")
            label = f"plateau: {b['verdict']}" if b["verdict"] else "plateau (not certified)"
            for name in panels:
                h = ax_of[name].axvspan(b["steps"][0], b["steps"][1], color=colour,
                                        alpha=0.25 if name == "loss" else 0.08, lw=0, zorder=0)
                if name == "loss":
                    loss_handles.setdefault(label, h)
            ax.text((b["steps"][0] + b["steps"][1]) / 2, 0.97, f"P{b['index']}", transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=7)
        if loss_handles:
            ax.legend(list(loss_handles.values()), list(loss_handles.keys()), loc="lower left",
                      ncols=len(loss_handles), framealpha=0.9, handlelength=1.4, columnspacing=1.0)
        name = os.path.basename(str(traj.source).split(" [")[0].rstrip(os.sep)) or str(traj.source)
        ax.set_title(f"{name}: m = {m}, d = {series['d']}, k = {k}; plateaus P1, P2, ... shaded"
                     + (" by certified verdict" if rows else ""), loc="left")
        # -- neuron panels
        xs = series["step"]
        data = {"w_norm": series["w_norm"], "a_norm": series["a_norm"], "cos_final": series["cos_final"],
                "angle": series["angle_deg"]}
        handles, grey = [], []
        styles = {j: [COLOURS[i % len(COLOURS)], LINESTYLES[(i // len(COLOURS)) % len(LINESTYLES)]]
                  for i, j in enumerate(shown)}
        for name in panels[1:]:
            a = ax_of[name]
            ys = data[name]
            for i, j in enumerate(drawn):
                h, = a.plot(xs, ys[j], color="0.78", lw=0.5, zorder=1, label=grey_label if i == 0 else None)
                if name == "w_norm" and i == 0:
                    grey.append(h)
            for i, j in enumerate(shown):
                h, = a.plot(xs, ys[j], color=styles[j][0], ls=styles[j][1], zorder=2, label=str(j))
                if name == "w_norm":
                    handles.append(h)
        handles += grey
        ax_of["w_norm"].set_yscale("log")
        ax_of["w_norm"].set_ylabel(r"$\Vert w_j\Vert$")
        ax_of["a_norm"].set_yscale("log")
        ax_of["a_norm"].set_ylabel(r"$|a_j|$" if k == 1 else r"$\Vert a_j\Vert$" + f"\n(row of A, k = {k})")
        ax_of["cos_final"].set_ylim(-1.05, 1.05)
        ax_of["cos_final"].set_ylabel("cosine of $w_j(t)$\nto $w_j$(end)")
        if "angle" in ax_of:
            ax_of["angle"].set_ylabel("angle of $w_j$ (deg)\nunwrapped" if series["d"] == 2
                                      else "angle of $w_j$ (deg)\nw/o bias, unwrapped")
        axes[-1, 0].set_xlabel("step")
        for a in axes[:, 0]:
            a.margins(x=0)
        title = "neuron j"
        if others:
            title += f" (the {len(shown)} of {m} largest by final " + r"$\sqrt{\Vert w_j\Vert^2+\Vert a_j\Vert^2}$" + ")"
        leg = fig.legend(handles=handles, loc="outside lower center", ncols=ncol, title=title, frameon=False,
                         handlelength=2.6, columnspacing=1.2)
        kw = {"dpi": PNG_DPI} if fmt == "png" else {}
        meta = {"Software": "relucert"} if fmt == "png" else ({"Creator": "relucert", "CreationDate": None}
                                                             if fmt == "pdf" else {"Creator": "relucert", "Date": None})
        fig.savefig(out_path, format=fmt, metadata=meta, **kw)
        n_entries = len(leg.legend_handles)
        plt.close(fig)
    return {"file": str(out_path), "format": fmt, "dpi": PNG_DPI if fmt == "png" else None,
            "size_inches": [round(size[0], 3), round(size[1], 3)],
            "size_px": [int(round(size[0] * PNG_DPI)), int(round(size[1] * PNG_DPI))] if fmt == "png" else None,
            "panels": panels, "n_panels": len(panels), "legend_entries": n_entries, "legend_title": title,
            "loss_legend_entries": len(loss_handles), "neurons_shown": shown, "neurons_grey": len(others), "neurons_grey_drawn": len(drawn),
            "neuron_styles": {str(j): st for j, st in styles.items()},
            "max_angle_jump_deg": _max_jump(series["angle_deg"]) if series["angle_deg"] is not None else None,
            "loss_curve": {"step": step.tolist(), "loss": np.asarray(screen.loss).tolist()},
            "plateau_bands": bands, "neurons": series}
