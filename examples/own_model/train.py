"""Train an ordinary small PyTorch model and save it the usual way, for `relucert certify --torch`.

    python examples/own_model/train.py [--outputs K] [--out DIR] [--seed S]

nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, k, bias=False)) with PyTorch's default
initialisation, on 24 points of a random teacher network plus noise; Adam for 2000 steps on
mse_loss, then L-BFGS until the gradient is tiny (as one does before asking what the end point is).
Writes DIR/ckpt.pt (torch.save(model.state_dict())) and DIR/data.json (X, Y, activation, loss).
The hidden layer keeps its bias (relucert folds it exactly into a constant input column); the
output layer has none here, to keep the README walk-through short. examples/torch/ trains PyTorch's
default model, with biases in both layers (the output bias becomes relucert's c).
"""
from __future__ import annotations

import argparse
import json
import os

import torch
from torch import nn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outputs", type=int, default=1, help="output dimension k (default 1)")
    ap.add_argument("--out", default="out/own_model", help="folder for ckpt.pt and data.json")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)          # the same float64 arithmetic on every machine: reproducible runs
    n, d, m, k = 24, 2, 6, args.outputs
    X = torch.randn(n, d, dtype=torch.float64)
    teacher = nn.Sequential(nn.Linear(d, 3), nn.ReLU(), nn.Linear(3, k, bias=False)).double()
    with torch.no_grad():
        Y = teacher(X) + 0.1 * torch.randn(n, k, dtype=torch.float64)
    model = nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, k, bias=False)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2000):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(X), Y)
        loss.backward()
        opt.step()
    lbfgs = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=5000, tolerance_grad=1e-14,
                              tolerance_change=1e-16, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        value = nn.functional.mse_loss(model(X), Y)
        value.backward()
        return value
    lbfgs.step(closure)
    os.makedirs(args.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.out, "ckpt.pt"))
    # X and Y as float64 JSON numbers: json writes the shortest decimal that reads back as the same
    # double, and relucert reads JSON decimals exactly, so the data are the doubles' decimal values
    with open(os.path.join(args.out, "data.json"), "w") as fh:
        json.dump({"X": X.tolist(), "Y": Y.tolist(), "activation": "relu", "loss": "mse"}, fh)
    print(f"trained: mse {nn.functional.mse_loss(model(X), Y).item():.6g}; wrote {args.out}/ckpt.pt and "
          f"{args.out}/data.json")


if __name__ == "__main__":
    main()
