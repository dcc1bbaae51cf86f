"""Plots (matplotlib, optional extra, Agg backend). Every plot's data is also returned as JSON."""
from __future__ import annotations

import numpy as np

from relucert.errors import InputError

VERDICT_COLOURS = {"saddle": "tab:orange", "local_min": "tab:green", "global_min": "tab:blue",
                   "not_stationary": "tab:red", "inconclusive": "tab:grey"}


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("plots need matplotlib, an optional extra: pip install 'relucert[plot]'") from None
    return plt


def neuron_series(traj, every: int = 1) -> dict | None:
    """Angle and norm of each neuron over time (2-D inputs), grouped by final direction."""
    if traj.W.shape[2] != 2:
        return None
    W = traj.W[::every]
    ang = np.degrees(np.arctan2(W[:, :, 1], W[:, :, 0]))
    norm = np.sqrt((W ** 2).sum(axis=2) + (traj.A[::every] ** 2).sum(axis=2))
    final = np.round(ang[-1] / 5.0) * 5.0   # groups: final direction to 5 degrees
    groups: dict = {}
    for j, g in enumerate(final.tolist()):
        groups.setdefault(g, []).append(j)
    return {"step": traj.step[::every].tolist(), "angle_deg": ang.T.tolist(), "norm": norm.T.tolist(),
            "groups": {f"{g:g}": js for g, js in sorted(groups.items())}}


def plot_screen(traj, screen, rows, out_png: str) -> dict:
    plt = _plt()
    series = neuron_series(traj, max(1, traj.T // 2000))
    nplots = 3 if series else 1
    fig, axes = plt.subplots(nplots, 1, figsize=(9, 3.2 * nplots), sharex=True, squeeze=False)
    ax = axes[0, 0]
    ax.plot(traj.step, screen.loss, color="black", lw=1)
    ax.set_yscale("log")
    ax.set_ylabel(f"loss ({traj.problem.loss})")
    for r in rows:
        ax.axvspan(r.step_range[0], r.step_range[1], color=VERDICT_COLOURS.get(r.verdict, "grey"), alpha=0.25,
                   label=r.verdict)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    if uniq:
        ax.legend(uniq.values(), uniq.keys(), loc="upper right", fontsize=8)
    ax.set_title("loss with plateaus coloured by certified verdict")
    if series:
        cmap = plt.get_cmap("tab10")
        for gi, (g, js) in enumerate(series["groups"].items()):
            for j in js:
                axes[1, 0].plot(series["step"], series["angle_deg"][j], color=cmap(gi % 10), lw=0.8)
                axes[2, 0].plot(series["step"], series["norm"][j], color=cmap(gi % 10), lw=0.8)
        axes[1, 0].set_ylabel("angle of w_j (deg)")
        axes[2, 0].set_ylabel("sqrt(|w_j|^2+|a_j|^2)")
        axes[2, 0].set_yscale("log")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return {"loss_curve": {"step": traj.step.tolist(), "loss": screen.loss.tolist()},
            "plateau_bands": [{"steps": list(r.step_range), "verdict": r.verdict} for r in rows],
            "neurons": series}
