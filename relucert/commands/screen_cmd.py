"""relucert screen TRAJ"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from relucert.errors import InputError
from relucert.refine import Tolerances

from relucert.tools.screen import (PlateauOptions, certify_plateaus, detect_plateaus, drift_line, is_gradient_descent,
                                   load_trajectory, plateau_table, screen_arrays)


def add_parser(sub) -> None:
    p = sub.add_parser("screen", help="screen a training trajectory: per-checkpoint statistics, plateaus, "
                                      "certified verdict of every plateau")
    p.add_argument("trajectory", help="trajectory .npz (W T x m x d, A T x m x k, X, Y; optional step, loss, "
                                      "loss_convention, and optimizer: a string such as 'sgd', 'gd', "
                                      "'gradient_flow' or 'adam' -- the |w_j|^2-|a_j|^2 conservation drift "
                                      "is printed for (S)GD only, with a qualifier when optimizer is absent) "
                                      "or a directory of torch checkpoints (with --data)")
    p.add_argument("--data", help="data file for a directory of torch checkpoints (.json, .npz, .pt or .csv), or "
                   "the data of a trajectory .npz that has no X, Y")
    p.add_argument("--activation", metavar="SPEC",
                   help="activation for a data file that does not carry one (.csv always needs it): relu, leaky_relu:SLOPE, "
                        "abs, or ALPHA_PLUS,ALPHA_MINUS (numbers read exactly as written); a file that carries "
                        "a different one is an error")
    p.add_argument("--keys", help="state_dict keys IN_W,OUT_W or IN_W,IN_B,OUT_W (a hidden bias is folded exactly "
                   "into a constant-1 input column; see relucert certify --help)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--latex", metavar="OUT.tex", help="write the plateau table (verdict, plateau, steps, loss, reading, "
                   "escape neurons, grown neurons) as a LaTeX booktabs tabular; with --no-certify the plateaus' "
                   "step ranges only")
    p.add_argument("--plot", metavar="OUT.(png|pdf|svg)", help="write the loss / neuron plots, format from the "
                   "extension: .png (300 dpi), .pdf or .svg (vector) (needs matplotlib)")
    p.add_argument("--plot-neurons", type=int, default=20, metavar="N",
                   help="neurons drawn in colour: the N largest by final sqrt(|w|^2+|a|^2), the others in grey "
                        "(0: all; default %(default)s)")
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
    p.add_argument("--plateau-spike", type=float, default=PlateauOptions.spike_frac,
                   help="merge plateaus separated by a loss spike (e.g. Adam's) shorter than this fraction of "
                        "the run's steps after which the loss returns to the plateau's level; 0: never "
                        "(default %(default)g)")
    p.add_argument("--plateau-spike-tol", type=float, default=PlateauOptions.spike_tol,
                   help="relative distance from the plateau's level within which the loss must return after "
                        "a spike (default %(default)g)")
    p.add_argument("--growth", type=float, default=10.0, help="a neuron 'grew' after a plateau if its norm "
                   "sqrt(|w|^2+|a|^2) rose by more than this factor (default %(default)g)")
    p.add_argument("--no-certify", action="store_true", help="only screen and detect plateaus")
    p.add_argument("--converge", nargs="?", const="lbfgs", choices=["lbfgs", "flow"], default=None,
                   help="also follow the training dynamics from the last checkpoint to the stationary point "
                        "they lead to and certify it (as 'relucert certify --converge'): where the run is heading")
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr (progress bars are drawn "
                   "only when stderr is a terminal)")
    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy",
                   help="screening arithmetic: numpy (default; the fused numba kernel when installed) or torch "
                        "(float64 tensors, on a GPU when one is present; needs PyTorch); same numbers up to rounding")
    p.add_argument("--tol-kink", type=float, default=1e-4)
    p.add_argument("--tol-tiny", type=float, default=1e-6)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.plot:
        from relucert.tools.plots import check_plot_path
        check_plot_path(args.plot)       # a bad extension or missing matplotlib fails before the work
    if args.latex:
        folder = os.path.dirname(os.path.abspath(args.latex))
        if not os.path.isdir(folder):
            raise InputError(f"--latex {args.latex}: folder {folder} does not exist")
    if args.activation and not args.data:
        raise InputError("--activation is for the --data file (a trajectory .npz carries its activation)")
    from relucert.commands.progress import progress_bar
    traj = load_trajectory(args.trajectory, args.data, args.keys, args.activation)
    quiet = args.quiet or args.json
    bar = progress_bar("screening", quiet=quiet) if traj.T > 20000 else None
    sc = screen_arrays(traj.problem, traj.W, traj.A, c=traj.c, tol_kink=args.tol_kink, tol_tiny=args.tol_tiny,
                       progress=bar or False, workers=args.workers, backend=args.backend)
    if bar is not None:
        bar.close()
    if traj.loss is None:
        traj.loss = sc.loss
    opts = PlateauOptions(args.plateau_rel_change, args.plateau_window, args.plateau_min,
                          spike_frac=args.plateau_spike, spike_tol=args.plateau_spike_tol)
    plateaus = detect_plateaus(traj.step, sc.loss, opts)
    rows = []
    if not args.no_certify:
        bar = progress_bar("certifying plateaus", quiet=quiet) if plateaus else None
        rows = certify_plateaus(traj, plateaus, reading=args.reading, workers=args.workers, growth=args.growth,
                                tol={"kink": args.tol_kink, "tiny": args.tol_tiny}, progress=bar)
        if bar is not None:
            bar.close()
    heading = None
    if args.converge:
        from relucert.pipeline import certify_checkpoint
        last = traj.point(traj.T - 1)          # with the checkpoint's output bias c, if any
        bar = progress_bar("converging from the last checkpoint", quiet=quiet)
        heading = certify_checkpoint(traj.problem, last, converge=args.converge, progress=bar,
                                     tolerances=Tolerances(kink=args.tol_kink, tiny=args.tol_tiny))
        if bar is not None:
            bar.close()
    if args.latex:
        _write_latex(args.latex, traj, plateaus, rows, opts)
    plot_data = None
    if args.plot:
        from relucert.tools.plots import plot_screen
        plot_data = plot_screen(traj, sc, rows, args.plot, top=args.plot_neurons, plateaus=plateaus)
    if args.json:
        out = {"trajectory": traj.source, "T": traj.T, "m": traj.W.shape[1], "loss_convention": traj.problem.loss,
               "screen_seconds": sc.seconds, "checkpoints_per_second": traj.T / max(sc.seconds, 1e-12),
               "plateau_options": opts.to_json(), "plateaus": [r.__dict__ for r in rows] if rows else
               [{"start": p[0], "end": p[1], "step_range": [int(traj.step[p[0]]), int(traj.step[p[1]])],
                 "spikes": int(getattr(p, "spikes", 0))} for p in plateaus],
               "final": sc.row(traj.T - 1),
               "per_checkpoint": {"step": traj.step.tolist(), "loss": sc.loss.tolist(), "grad_A": sc.grad_A.tolist(),
                                  "grad_W": sc.grad_W.tolist(), "near_kink": sc.near_kink.tolist(),
                                  "tiny": sc.tiny.tolist(), "dead": sc.dead.tolist()}}
        if sc.grad_c is not None:
            out["per_checkpoint"]["grad_c"] = sc.grad_c.tolist()
        out["optimizer"] = traj.optimizer
        if sc.balance is not None and is_gradient_descent(traj.optimizer) is not False:
            out["balance_drift_max"] = float(np.abs(sc.balance - sc.balance[0]).max())
            out["balance_drift_meaningful"] = bool(is_gradient_descent(traj.optimizer)) or None
        if plot_data is not None:
            out["plot"] = {"file": args.plot, "data": plot_data}
        if heading is not None:
            out["last_checkpoint"] = heading.to_json()
        json.dump(out, sys.stdout, default=_default)
        print()
        return 0
    opt = f", optimizer {traj.optimizer}" if traj.optimizer else ""
    print(f"{traj.source}: {traj.T} checkpoints, m={traj.W.shape[1]}{opt}, screened in {sc.seconds:.3f} s "
          f"({traj.T / max(sc.seconds, 1e-12):,.0f} checkpoints/s)")
    f = sc.row(traj.T - 1)
    print(f"final checkpoint (step {int(traj.step[-1])}): loss ({traj.problem.loss}) {f['loss']:.10g}, "
          f"|dL/dA| {f['grad_A']:.2e}, |dL/dW| off kinks {f['grad_W']:.2e}, near-kink pairs {f['near_kink']}, "
          f"tiny {f['tiny']}, dead {f['dead']}" + (f", |dL/dc| {f['grad_c']:.2e}" if "grad_c" in f else ""))
    dl = drift_line(sc, traj.optimizer)
    if dl:
        print(dl)
    spikes = f"; spikes up to {opts.spike_frac:g} of it merged" if opts.spike_frac > 0 else ""
    print(f"plateaus (relative change <= {opts.rel_change:g} per {opts.window_frac:g} of the run, "
          f"lasting >= {opts.min_frac:g} of it{spikes}): {len(plateaus)}")
    if rows:
        print(plateau_table(rows, traj.problem.loss))
        for r in rows:
            if r.spikes:
                print(f"  plateau {r.index}: {r.spikes} short loss spike(s) inside, merged into one plateau "
                      f"(--plateau-spike {opts.spike_frac:g})")
            if len(set(r.readings.values())) > 1:
                print(f"  plateau {r.index}: verdicts by reading of tiny neurons: {r.readings}")
            if r.verdict == "inconclusive" and r.reason:
                why = r.reason if len(r.reason) <= 240 else "..." + r.reason[-237:]
                print(f"  plateau {r.index}: inconclusive because {why}")
                if r.hint:
                    print(f"  plateau {r.index}: {r.hint}")
    elif plateaus:
        for p in plateaus:
            n = int(getattr(p, "spikes", 0))
            print(f"  steps {int(traj.step[p[0]])}-{int(traj.step[p[1]])}"
                  + (f" ({n} short loss spike(s) merged)" if n else ""))
    if heading is not None:
        print(f"\nwhere the run is heading (the last checkpoint, step {int(traj.step[-1])}, followed with "
              f"--converge {args.converge}):")
        print(heading.answer_text())
    if args.plot:
        print(f"plot written to {args.plot}")
    if args.latex:
        print(f"LaTeX plateau table written to {args.latex}")
    return 0


def _write_latex(path: str, traj, plateaus, rows, opts) -> None:
    """The plateau table as a booktabs tabular (verdict first); uncertified plateaus: their step ranges."""
    from relucert.tools.render import latex_table, plateau_latex
    notes = [f"relucert screen {traj.source}: {traj.T} checkpoints, {len(plateaus)} plateau(s) "
             f"(relative change <= {opts.rel_change:g} per {opts.window_frac:g} of the run, lasting >= "
             f"{opts.min_frac:g} of it)"]
    if rows:
        text = plateau_latex(rows, traj.problem.loss, comments=notes)
    else:
        text = latex_table(["plateau", "steps", "merged spikes"],
                           [[str(i + 1), f"{int(traj.step[p[0]])}-{int(traj.step[p[1]])}",
                             str(int(getattr(p, "spikes", 0)))] for i, p in enumerate(plateaus)],
                           right=(0, 2), comments=notes + ["not certified (--no-certify)"])
    try:
        with open(path, "w") as fh:
            fh.write(text)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from None


def _default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
