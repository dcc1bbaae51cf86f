"""Default-bias PyTorch MLPs from the command line, before and after refinement carried the output bias c.

    python benchmarks/bench_bias_models.py [--seeds 8] [--converge]

Each run: nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, k)) with PyTorch's default
initialisation and biases in both layers, float64, on n points of a random teacher network plus
noise; Adam (lr 1e-2, 2000 steps) on mse_loss, then L-BFGS (strong Wolfe) until the gradient is tiny;
saved with torch.save(model.state_dict()) and the data as JSON.  Then, through the CLI:

- "before": ``relucert certify --torch ckpt.pt --data data.json --json --exact-only``: what the tool
  answered before issue 14's refinement work, when a point with an output bias was certified only
  exactly as given (refinement and --converge refused it);
- "after": the same command without --exact-only (refinement runs when the checkpoint is
  near-stationary), and with ``--converge`` if asked;

and every certificate printed is re-checked with ``relucert check``.  Prints one row per run and the
count of definite verdicts (local_min, saddle, global_min) before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

DEFINITE = ("local_min", "saddle", "global_min")
# (d, m, k, n): varied sizes, scalar and vector output
SETUPS = [(2, 6, 1, 24), (3, 5, 1, 30), (1, 8, 1, 20), (2, 10, 1, 40),
          (2, 6, 2, 24), (3, 4, 2, 30), (2, 8, 2, 32), (1, 6, 2, 20)]


def train(seed: int, d: int, m: int, k: int, n: int, folder: str) -> tuple[str, str, float]:
    import torch
    from torch import nn
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    X = torch.randn(n, d, dtype=torch.float64)
    teacher = nn.Sequential(nn.Linear(d, 3), nn.ReLU(), nn.Linear(3, k)).double()
    with torch.no_grad():
        Y = teacher(X) + 0.1 * torch.randn(n, k, dtype=torch.float64)
    model = nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, k)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2000):
        opt.zero_grad()
        nn.functional.mse_loss(model(X), Y).backward()
        opt.step()
    lbfgs = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=5000, tolerance_grad=1e-14,
                              tolerance_change=1e-16, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        v = nn.functional.mse_loss(model(X), Y)
        v.backward()
        return v
    lbfgs.step(closure)
    ck, data = os.path.join(folder, "ckpt.pt"), os.path.join(folder, "data.json")
    torch.save(model.state_dict(), ck)
    with open(data, "w") as fh:
        json.dump({"X": X.tolist(), "Y": Y.tolist(), "activation": "relu", "loss": "mse"}, fh)
    with torch.no_grad():
        mse = float(nn.functional.mse_loss(model(X), Y))
    return ck, data, mse


def run_cli(args: list, folder: str, tag: str) -> dict:
    t0 = time.perf_counter()
    cert = os.path.join(folder, f"{tag}.cert.json")
    r = subprocess.run([sys.executable, "-m", "relucert.cli", "certify", "--json", "--certificate", cert] + args,
                       capture_output=True, text=True, timeout=900)
    secs = time.perf_counter() - t0
    if r.returncode != 0:
        return {"verdict": "error", "why": r.stderr.strip().splitlines()[-1:] or ["?"], "seconds": secs,
                "checked": False}
    out = json.loads(r.stdout)
    ok = subprocess.run([sys.executable, "-m", "relucert.cli", "check", cert], capture_output=True, text=True,
                        timeout=900).returncode == 0
    return {"verdict": out["verdict"], "about": out.get("about"), "seconds": secs, "checked": ok,
            "grad": out.get("float_gradient_relative"), "reason": out.get("reason", "")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=len(SETUPS))
    ap.add_argument("--converge", action="store_true", help="also run with --converge")
    args = ap.parse_args()
    rows = []
    hdr = f"{'seed':>4} {'d':>2} {'m':>3} {'k':>2} {'n':>3} {'mse':>9} {'grad':>8}  {'before':<15} {'after':<15}"
    if args.converge:
        hdr += f" {'converge':<15}"
    print(hdr + "  after s   checked")
    for seed in range(args.seeds):
        d, m, k, n = SETUPS[seed % len(SETUPS)]
        with tempfile.TemporaryDirectory() as folder:
            ck, data, mse = train(seed, d, m, k, n, folder)
            base = ["--torch", ck, "--data", data]
            before = run_cli(base + ["--exact-only"], folder, "before")
            after = run_cli(base, folder, "after")
            conv = run_cli(base + ["--converge"], folder, "conv") if args.converge else None
        rows.append((before, after, conv))
        g = after.get("grad")
        line = (f"{seed:>4} {d:>2} {m:>3} {k:>2} {n:>3} {mse:9.3e} {g if g is None else format(g, '8.1e'):>8}  "
                f"{before['verdict']:<15} {after['verdict']:<15}")
        if conv is not None:
            line += f" {conv['verdict']:<15}"
        checked = all(r["checked"] for r in (before, after, conv) if r is not None)
        print(line + f"  {after['seconds']:7.1f}   {'all OK' if checked else 'NOT all'}", flush=True)
        if after["verdict"] not in DEFINITE:
            print(f"       after: {after.get('reason', after.get('why'))!s:.300}")
    nb = sum(r[0]["verdict"] in DEFINITE for r in rows)
    na = sum(r[1]["verdict"] in DEFINITE for r in rows)
    print(f"definite verdicts: before {nb}/{len(rows)}, after {na}/{len(rows)}", end="")
    if args.converge:
        print(f", with --converge {sum(r[2]['verdict'] in DEFINITE for r in rows)}/{len(rows)}", end="")
    print()


if __name__ == "__main__":
    main()
