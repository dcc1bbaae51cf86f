#!/usr/bin/env python3
"""Train one experiment of Wu, Simsek & Ged (ICLR 2025) exactly as the authors did (needs torch).

    python examples/paper/train_torch.py 1d_input_with_bias     # or 3d_input, 2d_input_2d_output, all

Reproduction notes (torch 2.13.0+cpu, float32, 1 thread):
  The variant that reproduces the authors' numbers bit for bit is the plainest reading of their
  public code, with nothing changed:
    * data built as float32 tensors (torch.FloatTensor of the decimals; the bias column is 1.0);
    * model = nn.Module with `input_layer = nn.Linear(d, m, bias=False)`, `activation = nn.ReLU(True)`,
      `output_layer = nn.Linear(m, k, bias=False)`, forward = (1/alpha) * output_layer(relu(input_layer(x)))
      with alpha = 1 (the nn.Linear default init draws are made at construction, BEFORE the seed);
    * torch.manual_seed(seed) AFTER construction, then, walking named_modules() (input_layer comes first):
          weight.data.normal_(0); weight.data = weight.data * width**mu       (a python float, e.g. 8e-06)
      for the input layer (shape m x d) and then the output layer (shape k x m);
    * torch.optim.SGD(model.parameters(), lr), F.mse_loss (mean), loop
          while loss > stop_loss and it < max_iter: out = model(X); loss = mse(out, Y);
                                                    zero_grad(); backward(); step(); it += 1
  Results: 1d_input_with_bias ends (600000 steps) at float(loss) = 0.027885962277650833 and
  2d_input_2d_output (300000 steps) at 0.08500000834465027, both exactly as reported; in both
  runs the loss evaluated at the final weights is the same float32 number as the last loop loss.
  No other variant was needed.  The authors' checkpoint 'loss' is the loss of the last forward
  pass, i.e. at the weights after max_iter-1 updates; the saved point is after max_iter updates.

Writes into examples/paper/ (or --outdir):
  <name>_init.npz   initial W0 (m x d), A0 (m x k) float32 (read by train_numpy.py)
  <name>_final.npz  X, Y, W, A, alpha_plus, alpha_minus, loss="mse", final loss values
  <name>_final.pt   the torch state_dict
  <name>.json       problem file: decimal data, exact 'p/q' float32 weights
  <name>_traj.npz   W (T x m x d), A (T x m x k), step (T,), loss (T,) float64 mse at those weights,
                    curve_step / curve_loss (loss every 100 steps), plus X, Y, alpha_*, loss_convention
Plateau checkpoints are cut from the trajectory by plateaus.py (run automatically unless --no-plateaus).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, NAMES, SPEC, load_spec, point_arrays, record_steps, save_point  # noqa: E402


class TwoLayerNet(nn.Module):
    """The authors' `two_layer_net` (alpha = 1, ReLU) with the same module names and init order."""

    def __init__(self, d: int, m: int, k: int, beta_1: float, beta_2: float, seed: int | None):
        super().__init__()
        self.input_layer = nn.Linear(d, m, bias=False)
        self.activation = nn.ReLU(True)
        self.output_layer = nn.Linear(m, k, bias=False)
        self.alpha = 1
        if seed is not None:
            torch.manual_seed(seed)
        for name, layer in dict(self.named_modules()).items():
            if name == "input_layer":
                layer.weight.data.normal_(0)
                layer.weight.data = layer.weight.data * beta_2
            elif name == "output_layer":
                layer.weight.data.normal_(0)
                layer.weight.data = layer.weight.data * beta_1

    def forward(self, x):
        return (1 / self.alpha) * self.output_layer(self.activation(self.input_layer(x)))


def weights(net: TwoLayerNet) -> tuple[np.ndarray, np.ndarray]:
    W = net.input_layer.weight.detach().numpy().copy()            # m x d
    A = net.output_layer.weight.detach().numpy().T.copy()         # m x k
    return W, A


def train(name: str, outdir: str, every: int, curve_every: int, spec: str) -> dict:
    e = load_spec(name, spec)
    X = torch.FloatTensor(e["X"])
    Y = torch.FloatTensor(e["Y"])
    n, d = X.shape
    k = Y.shape[1]
    m = e["width"]
    beta = m ** e["mu"]                       # python float, as cal_betas(mu, mu, width)
    net = TwoLayerNet(d, m, k, beta, beta, e["seed"])
    W0, A0 = weights(net)
    np.savez(os.path.join(outdir, f"{name}_init.npz"), **point_arrays(e, W0, A0, seed=e["seed"],
             width=m, mu=e["mu"], lr=e["lr"], max_iter=e["max_iter"], stop_loss=e["stop_loss"]))

    opt = torch.optim.SGD(net.parameters(), e["lr"])
    max_iter = int(e["max_iter"])
    rec = set(record_steps(max_iter, every).tolist())
    tW, tA, tstep, tloss, cstep, closs = [], [], [], [], [], []
    it = 0
    loss = torch.tensor(100).float()
    t0 = time.perf_counter()
    while loss > e["stop_loss"] and it < max_iter:
        out = net(X)
        loss = F.mse_loss(out, Y)
        lv = loss.item()
        if it in rec:                          # weights after `it` updates, and their loss
            W, A = weights(net)
            tW.append(W); tA.append(A); tstep.append(it); tloss.append(lv)
        if it % curve_every == 0:
            cstep.append(it); closs.append(lv)
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
    seconds = time.perf_counter() - t0
    last_loop_loss = loss.item()               # what the authors' checkpoint stores as 'loss'
    with torch.no_grad():
        final_loss = float(F.mse_loss(net(X), Y))
    W, A = weights(net)
    if not tstep or tstep[-1] != it:
        tW.append(W); tA.append(A); tstep.append(it); tloss.append(final_loss)
    if cstep[-1] != it:
        cstep.append(it); closs.append(final_loss)

    base = os.path.join(outdir, name)
    files = [os.path.join(outdir, f"{name}_init.npz")]
    extra = dict(step=np.int64(it), final_loss=np.float64(final_loss),
                 last_loop_loss=np.float64(last_loop_loss))
    np.savez(base + "_final.npz", **point_arrays(e, W, A, **extra))
    save_point(base, e, W, A)                  # writes <name>.npz too; keep only the .json
    os.remove(base + ".npz")
    torch.save(net.state_dict(), base + "_final.pt")
    traj = point_arrays(e, np.stack(tW), np.stack(tA))
    traj.update(step=np.array(tstep, dtype=np.int64), loss=np.array(tloss, dtype=np.float64),
                curve_step=np.array(cstep, dtype=np.int64), curve_loss=np.array(closs, dtype=np.float64))
    np.savez_compressed(base + "_traj.npz", **traj)
    files += [base + "_final.npz", base + "_final.pt", base + ".json", base + "_traj.npz"]
    print(f"{name}: {it} steps in {seconds:.1f} s; last loop loss {last_loop_loss!r}; "
          f"loss at final weights {final_loss!r}")
    return dict(name=name, steps=it, seconds=seconds, final_loss=final_loss,
                last_loop_loss=last_loop_loss, files=files)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=NAMES + ("all",))
    p.add_argument("--outdir", default=HERE)
    p.add_argument("--every", type=int, default=500, help="trajectory checkpoint spacing (steps)")
    p.add_argument("--curve-every", type=int, default=100, help="loss-curve spacing (steps)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest here)")
    p.add_argument("--spec", default=SPEC)
    p.add_argument("--no-plateaus", action="store_true", help="do not cut plateau checkpoints")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    os.makedirs(a.outdir, exist_ok=True)
    for name in (NAMES if a.name == "all" else (a.name,)):
        train(name, a.outdir, a.every, a.curve_every, a.spec)
        if not a.no_plateaus:
            import plateaus
            plateaus.main([name, "--outdir", a.outdir, "--spec", a.spec])


if __name__ == "__main__":
    main()
