#!/usr/bin/env python3
"""Showcase: a plateau that random perturbations call a local minimum, and the certifier proves is not.

    python examples/showcase/run_showcase.py            # torch if installed, else numpy float32
    python examples/showcase/run_showcase.py --numpy    # force the numpy trainer
    python examples/showcase/run_showcase.py --no-train # reuse final.npz (the checks only, ~3 s)
    python examples/showcase/run_showcase.py --outdir DIR   # write the files to DIR instead

A run of our own with the authors' protocol (paper_experiments.json): 5 random 2-D points with a
bias column (d = 3), scalar targets, f(x) = A^T relu(W x), width 10, init width**mu with mu = -5,
torch.manual_seed(3), full-batch SGD (lr 1e-2) on mse_loss in float32 for 50 000 steps; the loss
is constant in float32 for the last half of training.  Then, on the end point:

  1. the authors' local-minimum check (5000 uniform random perturbations of amplitude
     min|param|/10 of the non-dead neurons, dead neurons left unperturbed; numpy re-implementation);
  2. `relucert certify final.json` (the library call it makes: relucert.certify_checkpoint, default
     tolerances): exact certification of the point as given, refinement to nearby exact stationary
     points, exact certification of those, the independent checker on every certificate;
  3. the escape path of the certified saddle, with the exact loss along it at t = 1e-1, 1e-2, 1e-3
     recomputed here from the certificate alone (Fractions), and the independent checker's verdict;
  4. the other reading of the one near-tie, the escape neuron strictly dead instead of on its kink:
     `relucert certify final.json --tol-kink T --fixed-kink-tol` with T below the snap (a fixed
     tolerance: without --fixed-kink-tol the tolerance is raised to a clear gap and snaps again).

Writes final.json (problem file, float32 weights as exact 'p/q'), final.npz (+ loss curve),
init.npz (the torch initialisation; the numpy trainer starts from it) and certificate.json (the
refined point's certificate; `relucert check examples/showcase/certificate.json`), in this folder
or in --outdir.  The numpy trainer (no torch, or --numpy) writes final_numpy.json, final_numpy.npz
and certificate_numpy.json instead, so the committed torch results are never overwritten by a
not-bit-identical run.  --no-train reads final.npz (final_numpy.npz) from --outdir if it is there,
else the committed one, and writes final.json and certificate.json to --outdir.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from fractions import Fraction

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _showcase import (HERE, as_float, make_dataset, perturbation_check, save_npz,  # noqa: E402
                       train_numpy, train_torch, write_problem_json)

RUN = dict(data_seed=24, n=5, seed=3, width=10, mu=-5.0, lr=1e-2, max_iter=50_000, stop_loss=1e-5)
STEPS = (Fraction(1, 10), Fraction(1, 100), Fraction(1, 1000))


def have_torch() -> bool:
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def train(X, Y, use_numpy: bool, outdir: str = HERE) -> dict:
    init = os.path.join(outdir, "init.npz")
    if not use_numpy and have_torch():
        r = train_torch(X, Y, RUN["width"], RUN["mu"], RUN["lr"], RUN["seed"], RUN["max_iter"], RUN["stop_loss"])
        np.savez(init, W=r["W0"], A=r["A0"], **{k: np.asarray(v) for k, v in RUN.items()})
        return r
    if not os.path.exists(init):
        init = os.path.join(HERE, "init.npz")          # the committed torch initialisation
    if not os.path.exists(init):
        raise SystemExit("numpy trainer: init.npz (the torch initialisation) is missing; run once with torch")
    z = np.load(init)
    print("(torch not used: numpy float32 trainer from the torch initialisation in init.npz; "
          "not bit-identical to torch)")
    return train_numpy(X, Y, z["W"], z["A"], RUN["lr"], RUN["max_iter"], RUN["stop_loss"])


def flat_since(steps, losses) -> int:
    """First recorded step from which the recorded float32 loss never changes again."""
    last = losses[-1]
    k = len(losses) - 1
    while k > 0 and losses[k - 1] == last:
        k -= 1
    return int(steps[k])


def exact_loss(X, Y, W, A) -> Fraction:
    """mse of f(x) = sum_j a_j relu(w_j.x) in exact rationals (scalar output)."""
    tot = Fraction(0)
    for x, y in zip(X, Y):
        f = Fraction(0)
        for w, a in zip(W, A):
            z = sum((p * q for p, q in zip(w, x)), Fraction(0))
            if z > 0:
                f += a[0] * z
        tot += (f - y[0]) ** 2
    return tot / len(X)


def path_losses(cert: dict, steps=STEPS) -> list:
    """Loss change along the certificate's escape path, recomputed from the certificate alone."""
    X = [[Fraction(v) for v in r] for r in cert["problem"]["X"]]
    Y = [[Fraction(v) for v in r] for r in cert["problem"]["Y"]]
    W = [[Fraction(v) for v in r] for r in cert["point"]["W"]]
    A = [[Fraction(v) for v in r] for r in cert["point"]["A"]]
    ep = cert["evidence"]["escape_path"]
    j, r, D = ep["neuron"], [Fraction(v) for v in ep["r"]], [Fraction(v) for v in ep["D"]]
    L0 = exact_loss(X, Y, W, A)
    out = []
    for t in steps:
        W2 = [list(w) for w in W]
        A2 = [list(a) for a in A]
        W2[j] = [w + t * q for w, q in zip(W[j], r)]
        A2[j] = [-t * t * v for v in D]
        out.append((t, exact_loss(X, Y, W2, A2) - L0))
    return out


def kink_tolerance_below(rf: dict, j: int) -> float | None:
    """A kink tolerance one digit below neuron j's snap (its smallest snapped relative |w.x|), or None."""
    rels = [x["relative_z"] for x in rf["pattern_changes"]["snapped"] if x["neuron"] == j]
    return float(f"{min(rels) / 10:.0e}") if rels else None


def strictly_dead_reading(pb, pt, j: int, i: int, tol: float) -> dict:
    """The other reading of the near-tie: neuron j strictly dead (not snapped onto the kink of x_i).

    `relucert certify final.json --tol-kink TOL --fixed-kink-tol`: a fixed tolerance below the snap
    (without kink_auto=False the tolerance would be raised to a clear gap and snap again).  Then move
    w_j alone a hair across the kink, by 1e-9 x_i, and evaluate the exact loss change there: the local
    minimum of that reading holds only in a ball of radius ~|w_j.x_i|/|x_i| in that direction."""
    import relucert
    from relucert.refine import Tolerances
    rep = relucert.certify_checkpoint(pb, pt, tolerances=Tolerances(kink=tol, kink_auto=False))
    cert = rep.certificate
    X = [[Fraction(v) for v in row] for row in cert["problem"]["X"]]
    Y = [[Fraction(v) for v in row] for row in cert["problem"]["Y"]]
    W = [[Fraction(v) for v in row] for row in cert["point"]["W"]]
    A = [[Fraction(v) for v in row] for row in cert["point"]["A"]]
    z = sum((p * q for p, q in zip(W[j], X[i])), Fraction(0))
    xx = sum((q * q for q in X[i]), Fraction(0))
    s = Fraction(1, 10 ** 9)
    W2 = [list(w) for w in W]
    W2[j] = [p + s * q for p, q in zip(W[j], X[i])]
    dl = exact_loss(X, Y, W2, A) - exact_loss(X, Y, W, A)
    return {"verdict": rep.verdict, "about": rep.about, "z": z, "radius": float(-z) / float(xx) ** 0.5,
            "decrease": -dl, "tol": tol, "reading": rep.refined["reading"] if rep.refined else None,
            "kink_used": rep.refined["tolerances"]["kink_used"] if rep.refined else tol}


def fmt_vec(v) -> str:
    return "(" + ", ".join(f"{float(Fraction(s)):.4g}" for s in v) + ")"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--numpy", action="store_true", help="use the numpy float32 trainer even if torch is installed")
    p.add_argument("--no-train", action="store_true", help="reuse final.npz")
    p.add_argument("--trials", type=int, default=5000)
    p.add_argument("--outdir", default=HERE, help="folder for the files written (default: this folder)")
    a = p.parse_args(argv)
    t_all = time.perf_counter()
    outdir = os.path.abspath(a.outdir)
    if not os.path.isdir(outdir):
        raise SystemExit(f"--outdir {a.outdir}: no such folder")
    X, Y = make_dataset(RUN["data_seed"], RUN["n"])
    sfx = "_numpy" if (a.numpy or not have_torch()) else ""
    final_json, final_npz = os.path.join(outdir, f"final{sfx}.json"), os.path.join(outdir, f"final{sfx}.npz")
    cert_name = f"certificate{sfx}.json"

    print(f"data (seed {RUN['data_seed']}): x = {[tuple(float(v) for v in r[:2]) for r in X]} (+ bias 1), "
          f"y = {[float(r[0]) for r in Y]}")
    print(f"net: width {RUN['width']}, init width**{RUN['mu']:g} = {RUN['width'] ** RUN['mu']:.0e}, "
          f"seed {RUN['seed']}; full-batch SGD lr {RUN['lr']:g} on mse_loss, float32, {RUN['max_iter']} steps")
    if a.no_train:
        src = final_npz if os.path.exists(final_npz) else os.path.join(HERE, os.path.basename(final_npz))
        z = np.load(src)
        r = dict(W=z["W"], A=z["A"], curve_step=z["curve_step"], curve_loss=z["curve_loss"],
                 steps=int(z["steps"]), final_loss=float(z["final_loss"]), trainer=str(z["trainer"]), seconds=0.0)
        if not os.path.exists(final_json):
            write_problem_json(final_json, X, Y, r["W"], r["A"])
    else:
        r = train(X, Y, a.numpy, outdir)
        write_problem_json(final_json, X, Y, r["W"], r["A"])
        save_npz(final_npz, X, Y, r["W"], r["A"], curve_step=r["curve_step"], curve_loss=r["curve_loss"],
                 steps=np.int64(r["steps"]), final_loss=np.float64(r["final_loss"]), trainer=np.str_(r["trainer"]))
    cs, cl = r["curve_step"], r["curve_loss"]
    since = flat_since(cs, cl)
    marks = [0, 2000, 5000, 10000, 20000, r["steps"]]
    curve = " | ".join(f"{s}: {cl[list(cs).index(s)]:.6f}" for s in marks if s in list(cs))
    print(f"trained with {r['trainer']} in {r['seconds']:.1f} s{' (earlier run, --no-train)' if a.no_train else ''}; "
          f"final mse {r['final_loss']!r}")
    print(f"loss: {curve}")
    print(f"plateau: the float32 loss is constant from step {since} to {r['steps']} "
          f"(the last {100 * (r['steps'] - since) / r['steps']:.0f}% of training)")

    # 1. the authors' check --------------------------------------------------------------------
    pc = perturbation_check(X, Y, r["W"], r["A"], trials=a.trials)

    # 2. the certifier: exactly `relucert certify final.json` -------------------------------------
    import relucert
    t0 = time.perf_counter()
    pb, pt = relucert.load(final_json)
    report = relucert.certify_checkpoint(pb, pt)
    t_cert = time.perf_counter() - t0
    given, rf = report.given, report.refined
    if rf is None or not rf.get("certificate"):
        print(f"certifier: given point {given.verdict}; not refined (relative float gradient "
              f"{report.float_gradient_relative:.1e}); nothing to show")
        return 1
    cert = report.certificate
    with open(os.path.join(outdir, cert_name), "w") as fh:
        json.dump(cert, fh, indent=1)
    got = relucert.check_certificate(cert)                 # what `relucert check certificate.json` does
    checked = f"OK, proves '{got.verdict}'" if got.ok else "REJECTED: " + "; ".join(got.reasons)

    # refined point vs float point: the escape neurons
    esc = rf["escape_neurons"]
    W32, A32 = np.asarray(r["W"], np.float32), np.asarray(r["A"], np.float32)
    Xf, Yf = as_float(X), as_float(Y)
    e = np.maximum(Xf @ W32.T.astype(float), 0) @ A32.astype(float) - Yf

    # the same check at the certified saddle itself, dead neurons kept / every neuron perturbed
    Wr = np.array([[float(Fraction(v)) for v in row] for row in cert["point"]["W"]])
    Ar = np.array([[float(Fraction(v)) for v in row] for row in cert["point"]["A"]])
    pc_sad = perturbation_check(X, Y, Wr, Ar, trials=a.trials, amplitude=pc["amplitude"])
    pc_all = perturbation_check(X, Y, Wr, Ar, trials=a.trials, amplitude=pc["amplitude"], perturb_dead=True)

    # 3. escape path ------------------------------------------------------------------------------
    ep = cert["evidence"]["escape_path"] if rf["verdict"] == "saddle" else None

    left = {
        "point": "the float32 end point",
        "method": f"{pc['trials']} uniform perturbations, |dp| <= {pc['amplitude']:.2e}",
        "": f"dead neurons {pc['dead']} not perturbed",
        "conclusion": "LOCAL MINIMUM" if pc["min_change"] > 0 else "not a local minimum",
        "evidence": f"min loss change {pc['min_change']:+.3e} ({pc['negative']} < 0)",
        "time": f"{pc['seconds']:.3f} s",
    }
    right = {
        "point": f"refined exact point (moved {rf['distance']['max_abs']:.1e} max)",
        "method": "exact rational arithmetic + certificate",
        "": f"reading of tiny neurons: {rf['reading']}",
        "conclusion": rf["verdict"].upper() + (" (not a local minimum)" if rf["verdict"] == "saddle" else ""),
        "evidence": (f"escape neuron{'s' if len(esc) > 1 else ''} {', '.join(map(str, esc))}, exact escape path" if ep
                     else rf["reason"][:60]),
        "time": f"{t_cert:.2f} s (certify + refine + certify the readings + independent check)",
    }
    print()
    head = "authors' perturbation check"
    print(f"{'':<12}{head:<46}relucert certify")
    print("-" * 110)
    for key in left:
        print(f"{key:<12}{left[key]:<46}{right[key]}")
    print()
    if ep:
        j = ep["neuron"]
        poly = [Fraction(c) for c in ep["polynomial"]]
        q = pb.loss_factor()                   # the polynomial is in the half_mean convention
        lf = Fraction(int(q.p), int(q.q))
        terms = " ".join(f"{'+' if c * lf > 0 else '-'} {abs(float(c * lf)):.4e} t^{k}" for k, c in enumerate(poly) if c)
        zj = Xf @ W32[j].astype(float)
        kinks = sorted({x["data"] for x in rf["pattern_changes"]["snapped"] if x["neuron"] == j}
                       | {i for i in range(len(X)) if zj[i] == 0})
        print(f"escape neuron {j} at the float32 end point: |w| = {np.linalg.norm(W32[j]):.2e}, a = {A32[j, 0]:.2e}, "
              f"dead in float32 but on the kink of data point{'s' if len(kinks) > 1 else ''} {', '.join(map(str, kinks))} "
              f"(w.x/(|w||x|) = {', '.join(f'{zj[i] / np.linalg.norm(W32[j]) / np.linalg.norm(Xf[i]):.1e}' for i in kinks)}); "
              f"residual there {', '.join(f'{e[i, 0]:+.3f}' for i in kinks)}")
        print(f"escape path ({cert_name}, neuron {j}): w_{j} + t*r, a_{j} = -t^2*D with r = {fmt_vec(ep['r'])}, "
              f"D = {fmt_vec(ep['D'])}")
        tmax = "infinity" if ep["t_max"] is None else f"{float(Fraction(ep['t_max'])):.3g}"
        print(f"  L(t) - L = {terms}   (mse, exact rational coefficients; valid for 0 < t < {tmax})")
        for t, dl in path_losses(cert):
            print(f"  t = {float(t):<6g} L(t) - L = {float(dl):+.4e}   (exact: {'decrease' if dl < 0 else 'NO decrease'})")
    print("verdict under each reading (tiny neurons; snapped-but-dead neurons): " +
          "; ".join(f"{x['reading']}: {x['verdict']}" for x in rf["readings"]))
    for amb in rf["ambiguities"]:
        if "tiny neurons" not in amb["what"]:
            print(f"ambiguity reported: {amb['what']}")
    print(f"independent checker on {cert_name}: {checked}")
    tol_below = kink_tolerance_below(rf, ep["neuron"]) if ep else None
    if ep and kinks and tol_below:
        j, i = ep["neuron"], kinks[0]
        sd = strictly_dead_reading(pb, pt, j, i, tol_below)
        head = (f"the other reading, neuron {j} strictly dead (relucert certify {os.path.basename(final_json)} "
                f"--tol-kink {tol_below:g} --fixed-kink-tol): {sd['about']} {sd['verdict']}")
        if sd["verdict"] == "local_min" and sd["z"] < 0 and sd["decrease"] > 0:
            print(f"{head}, but w_{j}.x_{i} = {float(sd['z']):.2e} there, so moving w_{j} alone by 1e-9*x_{i} "
                  f"already lowers the exact loss by {float(sd['decrease']):.2e} (a local minimum only within "
                  f"~{sd['radius']:.0e})")
        else:
            print(f"{head}; w_{j}.x_{i} = {float(sd['z']):.2e} there, and moving w_{j} alone by 1e-9*x_{i} "
                  f"changes the exact loss by {-float(sd['decrease']):+.2e}")
    print(f"the authors' check at the certified saddle itself (same amplitude): min loss change "
          f"{pc_sad['min_change']:+.3e} ({pc_sad['negative']} of {pc_sad['trials']} < 0); perturbing every neuron, "
          f"dead ones too: {pc_all['min_change']:+.3e} ({pc_all['negative']} < 0)")
    print(f"total time {time.perf_counter() - t_all:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
