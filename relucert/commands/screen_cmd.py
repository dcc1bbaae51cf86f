"""relucert screen TRAJ"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from relucert.tools.screen import PlateauOptions, certify_plateaus, detect_plateaus, load_trajectory, plateau_table, screen_arrays


def add_parser(sub) -> None:
    p = sub.add_parser("screen", help="screen a training trajectory: per-checkpoint statistics, plateaus, "
                                      "certified verdict of every plateau")
    p.add_argument("trajectory", help="trajectory .npz (W T x m x d, A T x m x k, step, loss, X, Y) "
                                      "or a directory of torch checkpoints (with --data)")
    p.add_argument("--data", help="data file for a directory of torch checkpoints")
    p.add_argument("--keys", help="state_dict keys INPUT_WEIGHT,OUTPUT_WEIGHT")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png", help="write the loss / neuron plots (needs matplotlib)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for plateau certification")
    p.add_argument("--reading", default="auto", choices=["auto", "as_given", "tiny_output_zero", "tiny_zero"],
                   help="reading of tiny neurons at plateaus (auto: first decisive of as_given, "
                        "tiny_output_zero, tiny_zero; all readings are reported)")
    p.add_argument("--plateau-rel-change", type=float, default=PlateauOptions.rel_change,
                   help="max relative loss change over a window inside a plateau (default %(default)g)")
    p.add_argument("--plateau-window", type=float, default=PlateauOptions.window_frac,
                   help="window, as a fraction of the run's steps (default %(default)g)")
    p.add_argument("--plateau-min", type=float, default=PlateauOptions.min_frac,
                   help="minimal plateau length, fraction of the run's steps (default %(default)g)")
    p.add_argument("--growth", type=float, default=10.0, help="a neuron 'grew' after a plateau if its norm "
                   "sqrt(|w|^2+|a|^2) rose by more than this factor (default %(default)g)")
    p.add_argument("--no-certify", action="store_true", help="only screen and detect plateaus")
    p.add_argument("--tol-kink", type=float, default=1e-4)
    p.add_argument("--tol-tiny", type=float, default=1e-6)
    p.set_defaults(func=run)


def run(args) -> int:
    traj = load_trajectory(args.trajectory, args.data, args.keys)
    sc = screen_arrays(traj.problem, traj.W, traj.A, tol_kink=args.tol_kink, tol_tiny=args.tol_tiny,
                       progress=not args.json and traj.T > 20000, workers=args.workers)
    if traj.loss is None:
        traj.loss = sc.loss
    opts = PlateauOptions(args.plateau_rel_change, args.plateau_window, args.plateau_min)
    plateaus = detect_plateaus(traj.step, sc.loss, opts)
    rows = [] if args.no_certify else certify_plateaus(
        traj, plateaus, reading=args.reading, workers=args.workers, growth=args.growth,
        tol={"kink": args.tol_kink, "tiny": args.tol_tiny})
    plot_data = None
    if args.plot:
        from relucert.tools.plots import plot_screen
        plot_data = plot_screen(traj, sc, rows, args.plot)
    if args.json:
        out = {"trajectory": traj.source, "T": traj.T, "m": traj.W.shape[1], "loss_convention": traj.problem.loss,
               "screen_seconds": sc.seconds, "checkpoints_per_second": traj.T / max(sc.seconds, 1e-12),
               "plateau_options": opts.to_json(), "plateaus": [r.__dict__ for r in rows] if rows else
               [{"start": s, "end": e, "step_range": [int(traj.step[s]), int(traj.step[e])]} for s, e in plateaus],
               "final": sc.row(traj.T - 1),
               "per_checkpoint": {"step": traj.step.tolist(), "loss": sc.loss.tolist(), "grad_A": sc.grad_A.tolist(),
                                  "grad_W": sc.grad_W.tolist(), "near_kink": sc.near_kink.tolist(),
                                  "tiny": sc.tiny.tolist(), "dead": sc.dead.tolist()}}
        if sc.balance is not None:
            out["balance_drift_max"] = float(np.abs(sc.balance - sc.balance[0]).max())
        if plot_data is not None:
            out["plot"] = {"file": args.plot, "data": plot_data}
        json.dump(out, sys.stdout, default=_default)
        print()
        return 0
    print(f"{traj.source}: {traj.T} checkpoints, m={traj.W.shape[1]}, screened in {sc.seconds:.3f} s "
          f"({traj.T / max(sc.seconds, 1e-12):,.0f} checkpoints/s)")
    f = sc.row(traj.T - 1)
    print(f"final checkpoint (step {int(traj.step[-1])}): loss ({traj.problem.loss}) {f['loss']:.10g}, "
          f"|dL/dA| {f['grad_A']:.2e}, |dL/dW| off kinks {f['grad_W']:.2e}, near-kink pairs {f['near_kink']}, "
          f"tiny {f['tiny']}, dead {f['dead']}")
    if sc.balance is not None:
        print(f"balance |w_j|^2-|a_j|^2: max drift over the run {float(np.abs(sc.balance - sc.balance[0]).max()):.3e}")
    print(f"plateaus (relative change <= {opts.rel_change:g} per {opts.window_frac:g} of the run, "
          f"lasting >= {opts.min_frac:g} of it): {len(plateaus)}")
    if rows:
        print(plateau_table(rows, traj.problem.loss))
        for r in rows:
            if len(set(r.readings.values())) > 1:
                print(f"  plateau {r.index}: verdicts by reading of tiny neurons: {r.readings}")
            if r.verdict == "inconclusive" and r.reason:
                why = r.reason if len(r.reason) <= 240 else "..." + r.reason[-237:]
                print(f"  plateau {r.index}: inconclusive because {why}")
                if r.hint:
                    print(f"  plateau {r.index}: {r.hint}")
    elif plateaus:
        for s, e in plateaus:
            print(f"  steps {int(traj.step[s])}-{int(traj.step[e])}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def _default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
