"""relucert certify FILE"""
from __future__ import annotations

import json
import sys
from fractions import Fraction

from relucert.decide.certify import certify, escape_path_losses
from relucert.errors import InputError, RelucertError
from relucert.io import load, load_torch
from relucert.refine import DECISIVE, Tolerances, effective_kink_tol, float_gradient_norm, refine, refined_report


def add_parser(sub) -> None:
    p = sub.add_parser("certify", help="certify a point: verdict, report and certificate")
    p.add_argument("file", nargs="?", help="problem+point file (.json or .npz, or a trajectory .npz with --index)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.add_argument("--certificate", metavar="OUT", help="write the certificate (JSON) to OUT "
                   "(of the refined point when refinement ran, the given point's goes to OUT.given.json)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--exact-only", action="store_true", help="certify the point exactly as given (no refinement)")
    g.add_argument("--refine", action="store_true", help="always refine (even if the given point is decided)")
    p.add_argument("--index", type=int, default=None, help="checkpoint index in a trajectory .npz")
    p.add_argument("--torch", metavar="CKPT", help="PyTorch state_dict checkpoint (.pt); needs --data")
    p.add_argument("--data", metavar="DATA", help="data file (.json or .npz with X, Y, activation) for --torch")
    p.add_argument("--keys", metavar="WKEY,AKEY", help="state_dict keys of the input and output weights")
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
                        f"n*m = {AUTO_CHECK_MAX} data-neuron pairs)")
    p.add_argument("--replica-angle", type=float, default=Tolerances.replica_angle,
                   help="vector output: neurons of one activation pattern whose directions differ by less than "
                        "this (radians) may be read as exact replicas when refining (0 = never) (default %(default)g)")
    p.set_defaults(func=run)


AUTO_CHECK_MAX = 20000     # the pure-Fraction checker takes seconds beyond this


def _independent_check(certs: list, problem, point, args) -> list:
    """Re-check every emitted certificate with the Fraction-only checker (imports nothing from the
    decision code).  Returns lines for the report; a rejection is a bug and raises."""
    if args.no_check:
        return ["independent check: skipped (--no-check); run 'relucert check CERT'"]
    if problem.n * point.m > AUTO_CHECK_MAX:
        return [f"independent check: skipped (n*m = {problem.n * point.m} > {AUTO_CHECK_MAX}); "
                "run 'relucert check CERT'"]
    import time
    from relucert import check
    lines = []
    for label, cert in certs:
        t0 = time.perf_counter()
        got = check.check_certificate(cert)
        if not got.ok:
            raise RelucertError(f"internal error: the independent checker rejects the {label} certificate "
                                f"({'; '.join(got.reasons)}); no verdict is claimed, please report this point")
        if got.verdict != cert["verdict"]:
            raise RelucertError(f"internal error: the checker derives {got.verdict!r} for the {label} certificate "
                                f"claiming {cert['verdict']!r}")
        lines.append(f"independent check of the {label} certificate: OK, proves '{got.verdict}' "
                     f"({time.perf_counter() - t0:.2f} s)")
    return lines


def _load(args):
    if args.torch:
        if not args.data:
            raise InputError("--torch needs --data DATA.(json|npz) with X, Y and the activation")
        return load_torch(args.torch, args.data, args.keys)
    if not args.file:
        raise InputError("certify needs a FILE (or --torch CKPT --data DATA)")
    return load(args.file, args.index)


def run(args) -> int:
    problem, point = _load(args)
    res = certify(problem, point, method=args.method)
    for name in ("tol_kink", "tol_tiny", "tol_stationary", "tol_alive", "max_move", "replica_angle"):
        v = getattr(args, name)
        if not (v >= 0) or v == float("inf"):
            raise InputError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
    tol = Tolerances(args.tol_kink, args.tol_tiny, args.tol_stationary, args.tol_alive, args.max_move,
                     not args.fixed_kink_tol, replica_angle=args.replica_angle)
    refined = None
    grad = None
    if not args.exact_only:
        grad = float_gradient_norm(problem, point, effective_kink_tol(problem, point, tol))
        if args.refine or (res.verdict not in DECISIVE and grad <= tol.stationary):
            refined = refined_report(problem, point, refine(problem, point, tol))
    certs = [("given point's", res.certificate)]
    if refined is not None and refined.get("certificate"):
        certs.append(("refined point's", refined["certificate"]))
    checked = _independent_check(certs, problem, point, args)
    if args.certificate:
        target = refined["certificate"] if refined and refined.get("certificate") else res.certificate
        with open(args.certificate, "w") as fh:
            json.dump(target, fh, indent=1)
        if refined and refined.get("certificate"):
            with open(args.certificate[:-5] + ".given.json" if args.certificate.endswith(".json")
                      else args.certificate + ".given", "w") as fh:
                json.dump(res.certificate, fh, indent=1)
    if args.json:
        out = res.to_json()
        out["escape_path_losses"] = escape_path_losses(res)
        if grad is not None:
            out["float_gradient_relative"] = grad
        if refined is not None:
            out["refined"] = refined
        out["independent_check"] = checked
        json.dump(out, sys.stdout, indent=1, default=str)
        print()
        return 0
    print("== the point as given ==")
    print(res.report())
    for row in escape_path_losses(res):
        print(f"  escape path: t = {row['t']}: loss decreases by {float(Fraction(row['decrease'])):.3e}")
    if refined is None and not args.exact_only and res.verdict not in DECISIVE:
        print(f"\n(not refined: relative float gradient {grad:.2e} > {tol.stationary:g}; use --refine to force)")
    if refined is not None:
        print(refined_text(refined))
    print()
    for line in checked:
        print(line)
    if args.certificate:
        print(f"certificate written to {args.certificate}")
    return 0


def _short(v: str) -> str:
    return v if len(v) < 24 else f"{float(Fraction(v)):.6g}"


def refined_text(rf: dict) -> str:
    pc = rf["pattern_changes"]
    d = rf["distance"]
    lines = ["", "== refined point ==",
             f"verdict: {rf['verdict'].upper()}   (reading of tiny neurons: {rf['reading']})",
             f"  {rf['reason']}"]
    if rf.get("loss"):
        lines.append(f"loss ({rf['loss']['convention']}): {rf['loss']['float']:.17g} (exact rational in the certificate)")
    lines.append(f"escape neurons: {rf['escape_neurons'] or 'none'}")
    if d:
        lines.append(f"moved: max |change| = {d['max_abs']:.3e} (W {d['max_abs_W']:.3e}, A {d['max_abs_A']:.3e}), "
                     f"relative {d['relative']:.3e} (to the problem's scale {d['relative_to_scale']:.3e})")
    lines.append(f"method: {rf['method']}")
    for i, js in pc["snapped_by_data_point"].items():
        lines.append(f"snapped onto the kink of data point {i}: neurons {js}")
    if pc["tiny"]:
        lines.append(f"tiny neurons: {pc['tiny']}")
    if pc["dead"]:
        lines.append(f"dead neurons: {pc['dead']}")
    if rf["left_pattern"]:
        lines.append(f"left the pattern at (neuron, data): {rf['left_pattern'][:10]}")
    t = rf["tolerances"]
    lines.append(f"tolerances: kink {t['kink_used']:.3g} (base {t['kink_relative']:g}{', auto' if t['kink_auto'] else ''}), tiny {t['tiny_relative']:g}, alive {t['alive_relative']:g}, "
                 f"near-stationary {t['near_stationary']:g}, max move {t['max_move_relative']:g}")
    if len(rf["readings"]) > 1:
        lines.append("verdict under each reading (tiny neurons; snapped-but-dead neurons):")
        for r in rf["readings"]:
            lines.append(f"  {r['reading']:<17} {r['verdict']:<15} {r['reason'][:110]}")
    cert = rf.get("certificate") or {}
    ep = cert.get("evidence", {}).get("escape_path")
    if ep:
        lines.append(f"escape path on neuron {ep['neuron']} of the refined point: w_j + t r, a_j = -t^2 D, "
                     f"r = {[_short(v) for v in ep['r']]}, D = {[_short(v) for v in ep['D']]}")
        for row in rf.get("escape_path_losses", []):
            lines.append(f"  t = {row['t']}: loss decreases by {float(Fraction(row['decrease'])):.4e} "
                         f"({rf['loss']['convention']}, exact)")
    for a in rf["ambiguities"]:
        lines.append(f"ambiguity: {a['what']}" + (f" -> {a['verdicts']}" if "verdicts" in a else ""))
    return "\n".join(lines)
