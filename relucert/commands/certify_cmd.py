"""relucert certify FILE"""
from __future__ import annotations

import json
import os
import sys

from relucert.commands.progress import progress_bar
from relucert.errors import InputError
from relucert.io import load, load_torch_info
from relucert.pipeline import AUTO_CHECK_MAX, AUTO_CHECK_MAX_PRODUCTS, certify_checkpoint
from relucert.refine import Tolerances


def add_parser(sub) -> None:
    p = sub.add_parser("certify", help="certify a point: verdict, report and certificate")
    p.add_argument("file", nargs="?", help="problem+point file (.json or .npz, or a trajectory .npz with --index) or a certificate (.json)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.add_argument("--certificate", metavar="OUT", help="write the certificate (JSON) to OUT "
                   "(of the refined point when refinement ran, the given point's goes to OUT.given.json)")
    p.add_argument("--save-refined", metavar="OUT.json",
                   help="write the refined point as a problem file (exact rationals; the input format of every "
                        "command: symmetry, derive, embed, certify). Every command also reads a certificate's point")
    p.add_argument("--converge", nargs="?", const="lbfgs", choices=["lbfgs", "flow"], default=None,
                   help="when the checkpoint is not decided (as given or refined), follow the float64 training "
                        "dynamics from it to the stationary point they lead to (lbfgs: L-BFGS, the default; flow: "
                        "full-batch gradient descent with an adaptive step, closer to the training path), then "
                        "refine and certify that end point; the report says how far it went")
    p.add_argument("--converge-steps", type=int, default=20000, metavar="N",
                   help="with --converge: at most N steps (default %(default)s)")
    p.add_argument("--converge-time", type=float, default=120.0, metavar="SECONDS",
                   help="with --converge: at most this long (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    p.add_argument("--latex", metavar="OUT.tex",
                   help="write the neuron table (status, kinks, S1, S2, escape, why) of the point the verdict is "
                        "about as a LaTeX booktabs tabular, the verdict and facts as %%-comments above it")
    p.add_argument("--all", action="store_true",
                   help="batch: certify every checkpoint of FILE (a folder of point files, certificates and, with "
                        "--data, torch checkpoints; or a trajectory .npz), one JSON line per checkpoint")
    p.add_argument("--every", type=int, default=1, metavar="K",
                   help="with --all on trajectories: every K-th checkpoint and the last (default 1)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="with --all (implied for a folder): N worker processes")
    p.add_argument("--dask", metavar="ADDRESS", default=None,
                   help="with --all (implied for a folder): run on a Dask cluster (scheduler address, e.g. "
                        "tcp://127.0.0.1:8786)")
    p.add_argument("--certificates", metavar="DIR",
                   help="with --all: write each checkpoint's certificate to DIR (the line names the file)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--exact-only", action="store_true", help="certify the point exactly as given (no refinement)")
    g.add_argument("--refine", action="store_true", help="always refine (even if the given point is decided)")
    p.add_argument("--index", type=int, default=None, help="checkpoint index in a trajectory .npz")
    p.add_argument("--torch", metavar="CKPT",
                   help="checkpoint of a one-hidden-layer MLP (two Linear layers), needs --data: a state_dict "
                        "(torch.save(model.state_dict(), CKPT)), a checkpoint dict holding one under 'state_dict', "
                        "'model_state_dict', 'model', 'net' or 'module' (a 'module.' key prefix is removed), or a "
                        ".safetensors file (pip install safetensors). Read with torch.load(weights_only=True), never "
                        "unpickled; float16/bfloat16/float32/float64 weights are converted exactly. The layers are "
                        "found by shape; a hidden bias b is folded exactly: X gets a constant-1 column appended "
                        "(x' = (x, 1), w'_j = (w_j, b_j), the same function and loss landscape) and the report says "
                        "so. An output bias is read exactly into c, a free parameter that refinement and --converge move "
                        "with the rest; any tensor the mapping does not use is refused, never dropped")
    p.add_argument("--data", metavar="DATA",
                   help="data file for --torch (.json or .npz with X, Y, activation, loss; .pt with a dict of "
                        "tensors X, Y; .csv with a header row, y* columns = Y); X without a constant "
                        "column (with a hidden bias the loader appends one)")
    p.add_argument("--activation", metavar="SPEC",
                   help="activation for a data file that does not carry one (.csv always needs it): relu, leaky_relu:SLOPE, "
                        "abs, or ALPHA_PLUS,ALPHA_MINUS (numbers read exactly as written); a file that carries "
                        "a different one is an error")
    p.add_argument("--keys", metavar="IN_W[,IN_B],OUT_W",
                   help="state_dict keys for --torch when the layers are not found by shape: the input weight "
                        "(m x d), optionally the hidden bias (m), and the output weight (k x m), e.g. "
                        "0.weight,0.bias,2.weight; every other tensor of the state_dict must be absent")
    p.add_argument("--method", default="auto", choices=["auto", "separable", "cones", "rays", "z3"],
                   help="decision procedure for (S2) at non-differentiable points")
    p.add_argument("--tol-kink", type=float, default=Tolerances.kink,
                   help="relative |w.x|/(|w||x|) below which a pair is snapped onto the kink (default %(default)g)")
    p.add_argument("--fixed-kink-tol", action="store_true",
                   help="use --tol-kink as is (by default it is raised, up to 1e-2, to a clear gap in |w.x|/(|w||x|))")
    p.add_argument("--tol-tiny", type=float, default=Tolerances.tiny,
                   help="relative size |a||w|max|x|/max|y| below which a neuron is tiny (default %(default)g)")
    p.add_argument("--tol-alive", type=float, default=Tolerances.alive,
                   help="relative size above which a neuron is alive; smaller ones are alive only as replicas "
                        "of an alive activation pattern (default %(default)g)")
    p.add_argument("--max-move", type=float, default=Tolerances.max_move,
                   help="reject refined points farther than this (relative to |theta|) (default %(default)g)")
    p.add_argument("--tol-stationary", type=float, default=Tolerances.stationary,
                   help="relative float gradient above which the point is not refined (default %(default)g)")
    p.add_argument("--no-check", action="store_true",
                   help="do not re-check the certificates with the independent checker (done by default up to "
                        f"n*m = {AUTO_CHECK_MAX} data-neuron pairs and n*m*d = {AUTO_CHECK_MAX_PRODUCTS})")
    p.add_argument("--replica-angle", type=float, default=Tolerances.replica_angle,
                   help="vector output: neurons of one activation pattern whose directions differ by less than "
                        "this (radians) may be read as exact replicas when refining (0 = never) (default %(default)g)")
    p.set_defaults(func=run)


def _load(args):
    if args.torch:
        if not args.data:
            raise InputError("--torch needs --data DATA.(json|npz|pt|csv) with X, Y (and the activation)")
        problem, point, args.torch_mapping = load_torch_info(args.torch, args.data, args.keys, args.activation)
        return problem, point
    if args.activation:
        raise InputError("--activation is for the --data file of --torch (a point file carries its activation)")
    if not args.file:
        raise InputError("certify needs a FILE (or --torch CKPT --data DATA)")
    return load(args.file, args.index)


def run(args) -> int:
    for name in ("tol_kink", "tol_tiny", "tol_stationary", "tol_alive", "max_move", "replica_angle"):
        v = getattr(args, name)
        if not (v >= 0) or v == float("inf"):
            raise InputError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
    for opt, path in (("--certificate", args.certificate), ("--save-refined", args.save_refined),
                      ("--latex", getattr(args, "latex", None))):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise InputError(f"{opt} {path}: folder {folder} does not exist")
    tol = Tolerances(args.tol_kink, args.tol_tiny, args.tol_stationary, args.tol_alive, args.max_move,
                     not args.fixed_kink_tol, replica_angle=args.replica_angle)
    if args.file and os.path.isdir(args.file) and not args.all:
        if not (args.dask or args.workers != 1):
            raise InputError(f"{args.file} is a folder: add --all to certify every checkpoint in it")
        args.all = True         # a folder with --workers or --dask: batch certification is the only meaning
    if args.all or args.dask or args.workers != 1:
        return run_batch(args, tol)
    problem, point = _load(args)
    mode = "never" if args.exact_only else "always" if args.refine else "auto"
    if args.converge_steps < 1 or not (args.converge_time > 0):
        raise InputError("--converge-steps must be >= 1 and --converge-time > 0")
    bar = progress_bar("converging", quiet=args.quiet)
    # the exact per-neuron analysis: drawn only when it takes more than a second
    abar = progress_bar("exact analysis (neurons)", quiet=args.quiet, delay=1.0)
    rbar = progress_bar("refining (readings)", quiet=args.quiet, delay=1.0)
    report = certify_checkpoint(problem, point, method=args.method, tolerances=tol, refine_mode=mode,
                                check_mode=False if args.no_check else "auto", converge=args.converge,
                                converge_options={"max_steps": args.converge_steps,
                                                  "time_limit": args.converge_time},
                                progress=bar, analysis_progress=abar, refine_progress=rbar)
    for b in (abar, rbar, bar):
        if b is not None:
            b.close()
    if args.certificate:
        write_certificates(report, args.certificate)
    if args.latex:
        write_text(args.latex, latex_neuron_table(report, problem, args.method))
    saved = None
    if args.save_refined:
        try:
            saved = report.refined_point_file()
        except InputError as e:
            saved = str(e)
        else:
            _write_json(args.save_refined, saved)
    mapping = getattr(args, "torch_mapping", None)
    if args.json:
        out = report.to_json()
        if mapping is not None:
            out["torch_mapping"] = mapping.to_json()
        if args.save_refined:
            out["saved_refined"] = args.save_refined if isinstance(saved, dict) else None
        json.dump(out, sys.stdout, indent=1, default=str)
        print()
        return _saved_status(args, saved)
    if mapping is not None:
        print("\n".join(mapping.lines()) + "\n")
    print(report.text())
    if args.certificate:
        print(f"certificate written to {args.certificate}")
    if args.latex:
        print(f"LaTeX neuron table written to {args.latex}")
    if isinstance(saved, dict):
        print(f"refined point written to {args.save_refined} (read it with symmetry, derive, embed or certify)")
    return _saved_status(args, saved)


def run_batch(args, tol) -> int:
    """--all: one JSON line per checkpoint on stdout (exit 1 if any line is an error)."""
    from relucert.tools.batch import certify_many, jobs_for
    if not args.all:
        raise InputError("--workers and --dask apply to --all (batch certification)")
    if not args.file:
        raise InputError("--all needs a FILE: a folder or a trajectory .npz")
    for opt in ("certificate", "save_refined", "index", "latex"):
        if getattr(args, opt) is not None:
            raise InputError(f"--{opt.replace('_', '-')} applies to one checkpoint, not to --all "
                             "(use --certificates DIR)")
    if args.certificates and not os.path.isdir(args.certificates):
        raise InputError(f"--certificates {args.certificates}: folder does not exist")
    if args.converge_steps < 1 or not (args.converge_time > 0):
        raise InputError("--converge-steps must be >= 1 and --converge-time > 0")
    if args.activation and not args.data:
        raise InputError("--activation is for the --data file of torch checkpoints (point files carry their activation)")
    jobs = jobs_for(args.file, data=args.data, keys=args.keys, every=args.every, activation=args.activation)
    mode = "never" if args.exact_only else "always" if args.refine else "auto"
    options = {"method": args.method, "tolerances": tol, "refine_mode": mode,
               "check_mode": False if args.no_check else "auto", "converge": args.converge,
               "converge_options": {"max_steps": args.converge_steps, "time_limit": args.converge_time}}
    bar = progress_bar(f"certifying {len(jobs)} checkpoints", quiet=args.quiet)
    errors = 0
    for i, line in enumerate(certify_many(jobs, options, workers=args.workers, dask=args.dask, progress=bar)):
        cert = line.pop("certificate", None)
        if args.certificates and cert is not None:
            name = f"{i:06d}_" + "".join(ch if ch.isalnum() or ch in "._-" else "_"
                                         for ch in os.path.basename(line["source"]))[:80] + ".cert.json"
            _write_json(os.path.join(args.certificates, name), cert)
            line["certificate_file"] = os.path.join(args.certificates, name)
        errors += "error" in line
        print(json.dumps(line, default=str), flush=True)
    if bar is not None:
        bar.close()
    return 1 if errors else 0


def _saved_status(args, saved) -> int:
    """Exit 1 with a one-line note when --save-refined was asked for and there was nothing to save."""
    if args.save_refined and not isinstance(saved, dict):
        print(f"relucert: --save-refined {args.save_refined}: {saved}; nothing written", file=sys.stderr)
        return 1
    return 0


def _write_json(path: str, obj: dict) -> None:
    try:
        with open(path, "w") as fh:
            json.dump(obj, fh, indent=1)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from None


INDENT_MAX_DATA = 20_000   # certificates whose data has more numbers than this are written on one line


def certificate_text(cert: dict) -> str:
    """A certificate as JSON text: indented for reading, or -- when its data X, Y has more than
    INDENT_MAX_DATA numbers -- compact (the same JSON; Python's fast encoder only writes it compact)."""
    pb = cert.get("problem") or {}
    size = sum(len(rows) * len(rows[0]) for rows in (pb.get("X"), pb.get("Y")) if isinstance(rows, list) and rows
               and isinstance(rows[0], list))
    return json.dumps(cert, indent=None if size > INDENT_MAX_DATA else 1)


def write_certificates(report, path: str) -> None:
    """The report's certificate to PATH; with a refined point, the given point's to PATH.given.json."""
    with open(path, "w") as fh:
        fh.write(certificate_text(report.certificate))
    if report.about_refined:
        with open(path[:-5] + ".given.json" if path.endswith(".json") else path + ".given", "w") as fh:
            fh.write(certificate_text(report.given.certificate))


def latex_neuron_table(report, problem, method: str = "auto") -> str:
    """The neuron table of the point ``report.verdict`` is about, as a booktabs tabular: the refined (or
    converged) point's when its certificate is an ordinary one (re-derived exactly, and used only when
    it gives the same verdict), else the given point's, and the %-comments say which."""
    from relucert.check import FORMAT
    from relucert.decide.certify import certify
    from relucert.tools.render import result_latex
    head = f"relucert certify: {report.verdict} for the {report.about}"
    if report.about != "given point" and report.certificate.get("format") == FORMAT:
        pt = report.refined_point()
        if pt is not None:
            res = certify(problem, pt, method=method)
            if res.verdict == report.verdict:
                return f"% {head}\n" + result_latex(res, about=f"the {report.about}")
    if report.about != "given point":
        head += "; the table is the given point's (the verdict's point has no ordinary certificate)"
    return f"% {head}\n" + result_latex(report.given)


def write_text(path: str, text: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(text)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from None
