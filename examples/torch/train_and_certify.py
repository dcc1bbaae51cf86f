"""Train an ordinary PyTorch MLP (default biases), save it, and certify what its end point is.

    python examples/torch/train_and_certify.py [OUT_DIR]          (default: out/torch)

The same from the command line, on the files this script saves:
    relucert certify --torch OUT_DIR/ckpt.pt --data OUT_DIR/data.npz
"""
import os
import sys

import numpy as np
import torch
from torch import nn

import relucert

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("out", "torch")
os.makedirs(out, exist_ok=True)
torch.manual_seed(1)
torch.set_num_threads(1)                      # the same float64 arithmetic on every machine
X = torch.randn(40, 2, dtype=torch.float64)
Y = torch.relu(X @ torch.tensor([[1.0], [-1.0]], dtype=torch.float64)) + 0.1 * torch.randn(40, 1, dtype=torch.float64)

model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)).double()   # biases in both layers
adam = torch.optim.Adam(model.parameters(), lr=1e-2)
for _ in range(1000):
    adam.zero_grad()
    nn.functional.mse_loss(model(X), Y).backward()
    adam.step()
lbfgs = torch.optim.LBFGS(model.parameters(), max_iter=2000, tolerance_grad=1e-15, tolerance_change=1e-18,
                          history_size=50, line_search_fn="strong_wolfe")


def closure():
    lbfgs.zero_grad()
    loss = nn.functional.mse_loss(model(X), Y)
    loss.backward()
    return loss


lbfgs.step(closure)
torch.save(model.state_dict(), os.path.join(out, "ckpt.pt"))
np.savez(os.path.join(out, "data.npz"), X=X.numpy(), Y=Y.numpy(), activation="relu", loss_convention="mse")

problem, point = relucert.from_torch(model, X, Y)      # exact: every float64 weight is a dyadic rational
report = relucert.certify_checkpoint(problem, point)
print(report.text())
