"""Shared helpers for the showcase (examples/showcase/): data, training, files, the authors' check.

Protocol (as in ../paper/paper_experiments.json and the authors' notebooks):
  f(x) = A^T relu(W x), no biases (the data carry a constant-1 column), float32;
  torch.manual_seed(seed); W.normal_(0) * width**mu (input layer first); A.normal_(0) * width**mu;
  full-batch torch.optim.SGD(lr) on F.mse_loss (mean over the n*k entries), stop when the loss is
  <= stop_loss or after max_iter steps.
"""
from __future__ import annotations

import json
import os
import time
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
f32, f64 = np.float32, np.float64


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------

def make_dataset(data_seed: int, n: int) -> tuple[list, list]:
    """n random 2-D points in [-1, 1]^2 (two decimals) with a bias column 1.0; targets in [-1, 1].

    Returned as decimal strings (exactly what the problem file stores)."""
    rng = np.random.default_rng(data_seed)
    P = rng.uniform(-1, 1, size=(n, 2))
    T = rng.uniform(-1, 1, size=n)
    X = [[f"{p[0]:.2f}", f"{p[1]:.2f}", "1.0"] for p in P]
    Y = [[f"{t:.2f}"] for t in T]
    X = [[s.replace("-0.00", "0.00") for s in row] for row in X]
    Y = [[s.replace("-0.00", "0.00") for s in row] for row in Y]
    return X, Y


def as_float(rows) -> np.ndarray:
    return np.array([[float(s) for s in r] for r in rows], dtype=f64)


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------

def torch_init(d: int, m: int, k: int, mu: float, seed: int):
    """The authors' initialisation, returned as float32 numpy arrays W (m x d), A (m x k)."""
    net = _torch_net(d, m, k, mu, seed)
    return (net.input_layer.weight.detach().numpy().copy(),
            net.output_layer.weight.detach().numpy().T.copy())


def _torch_net(d, m, k, mu, seed):
    import torch
    import torch.nn as nn

    class TwoLayerNet(nn.Module):             # the authors' two_layer_net, alpha = 1, ReLU
        def __init__(self):
            super().__init__()
            self.input_layer = nn.Linear(d, m, bias=False)
            self.activation = nn.ReLU(True)
            self.output_layer = nn.Linear(m, k, bias=False)
            torch.manual_seed(seed)
            beta = m ** mu
            for name, layer in dict(self.named_modules()).items():
                if name in ("input_layer", "output_layer"):   # input layer first
                    layer.weight.data.normal_(0)
                    layer.weight.data = layer.weight.data * beta

        def forward(self, x):
            return self.output_layer(self.activation(self.input_layer(x)))

    return TwoLayerNet()


def train_torch(X_dec, Y_dec, width, mu, lr, seed, max_iter, stop_loss=1e-5, curve_every=1000):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    X = torch.FloatTensor(as_float(X_dec))
    Y = torch.FloatTensor(as_float(Y_dec))
    n, d = X.shape
    k = Y.shape[1]
    net = _torch_net(d, width, k, mu, seed)
    W0 = net.input_layer.weight.detach().numpy().copy()
    A0 = net.output_layer.weight.detach().numpy().T.copy()
    opt = torch.optim.SGD(net.parameters(), lr)
    it, loss = 0, torch.tensor(100).float()
    cs, cl = [], []
    t0 = time.perf_counter()
    while loss > stop_loss and it < max_iter:
        out = net(X)
        loss = F.mse_loss(out, Y)
        if it % curve_every == 0:
            cs.append(it); cl.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
    secs = time.perf_counter() - t0
    W = net.input_layer.weight.detach().numpy().copy()
    A = net.output_layer.weight.detach().numpy().T.copy()
    with torch.no_grad():
        final = float(F.mse_loss(net(X), Y))
    cs.append(it); cl.append(final)
    return dict(W=W, A=A, W0=W0, A0=A0, steps=it, seconds=secs, final_loss=final,
                last_loop_loss=loss.item(), curve_step=np.array(cs), curve_loss=np.array(cl),
                trainer="torch " + torch.__version__)


def neuron_history(X_dec, Y_dec, width, mu, lr, seed, steps, j, i) -> dict:
    """Replay the first ``steps`` steps of train_torch (same protocol, same updates) and follow neuron j
    and data point i: the first step at which neuron j is dead (w_j.x <= 0 on every data point), the
    steps at which the residual e_i = f(x_i) - y_i changes sign, and e_i after the last step."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    X = torch.FloatTensor(as_float(X_dec))
    Y = torch.FloatTensor(as_float(Y_dec))
    n, d = X.shape
    net = _torch_net(d, width, Y.shape[1], mu, seed)
    opt = torch.optim.SGD(net.parameters(), lr)
    W0 = net.input_layer.weight.detach().numpy().copy()
    died, flips, prev, e_i = None, [], None, None
    for it in range(steps):
        out = net(X)
        loss = F.mse_loss(out, Y)
        with torch.no_grad():
            z = (X @ net.input_layer.weight[j]).numpy()
            e_i = float(out[i, 0] - Y[i, 0])
        if died is None and (z <= 0).all():
            died = it
        sign = e_i > 0
        if prev is not None and sign != prev:
            flips.append(it)
        prev = sign
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        e_i = float(net(X)[i, 0] - Y[i, 0])
    active0 = [q for q in range(n) if float(X[q] @ torch.from_numpy(W0[j])) > 0]
    return {"died": died, "sign_changes": flips, "residual": e_i, "active_at_init": active0}


def train_numpy(X_dec, Y_dec, W0, A0, lr, max_iter, stop_loss=1e-5, curve_every=1000):
    """float32 full-batch SGD on mse_loss without torch (starts from the given init)."""
    X32 = as_float(X_dec).astype(f32)
    Y32 = as_float(Y_dec).astype(f32)
    n, k = Y32.shape
    W, A = np.array(W0, f32), np.array(A0, f32)
    lr32, norm = f32(lr), f32(2.0 / (n * k))
    it, loss = 0, 100.0
    cs, cl = [], []
    t0 = time.perf_counter()
    while loss > stop_loss and it < max_iter:
        Z = X32 @ W.T
        H = np.maximum(Z, f32(0))
        R = H @ A - Y32
        loss = float(np.mean(R * R, dtype=f32))
        if it % curve_every == 0:
            cs.append(it); cl.append(loss)
        G = norm * R                                   # n x k
        gA = H.T @ G                                   # m x k
        gW = ((G @ A.T) * (Z > 0)).T @ X32             # m x d
        W = W - lr32 * gW
        A = A - lr32 * gA
        it += 1
    secs = time.perf_counter() - t0
    R = np.maximum(X32 @ W.T, f32(0)) @ A - Y32
    final = float(np.mean(R * R, dtype=f32))
    cs.append(it); cl.append(final)
    return dict(W=W, A=A, W0=np.array(W0, f32), A0=np.array(A0, f32), steps=it, seconds=secs,
                final_loss=final, last_loop_loss=loss, curve_step=np.array(cs),
                curve_loss=np.array(cl), trainer="numpy float32")


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------

def exact_str(v) -> str:
    """A binary float written exactly as 'p/q' (or 'p')."""
    return str(Fraction(float(v)))


def write_problem_json(path: str, X_dec, Y_dec, W, A) -> None:
    W = np.asarray(W, dtype=f32)
    A = np.asarray(A, dtype=f32)
    parts = {"X": X_dec, "Y": Y_dec,
             "W": [[exact_str(v) for v in row] for row in W],
             "A": [[exact_str(v) for v in row] for row in A]}
    lines = ["{", '  "activation": "relu",', '  "loss": "mse",']
    for key in ("X", "Y", "W", "A"):
        rows = [json.dumps(r) for r in parts[key]]
        lines.append(f'  "{key}": [\n    ' + ",\n    ".join(rows) + "\n  ]" + ("," if key != "A" else ""))
    lines.append("}")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    back = json.load(open(path))
    for key, M in (("W", W), ("A", A)):            # the file holds exactly the float32 values
        R = np.array([[np.float32(Fraction(s)) for s in row] for row in back[key]], dtype=f32)
        assert np.array_equal(R.view(np.uint32), M.view(np.uint32)), f"{path}: {key} does not round-trip"


def save_npz(path: str, X_dec, Y_dec, W, A, **extra) -> None:
    np.savez(path, X=as_float(X_dec), Y=as_float(Y_dec), W=np.asarray(W, f32), A=np.asarray(A, f32),
             alpha_plus=f64(1.0), alpha_minus=f64(0.0), loss=np.str_("mse"), **extra)


# ----------------------------------------------------------------------------------------------
# the authors' perturbation check, re-implemented in numpy
# ----------------------------------------------------------------------------------------------

def mse(X, Y, W, A) -> np.ndarray:
    """mse loss in float64; W (..., m, d), A (..., m, k) may carry leading batch axes."""
    H = np.maximum(np.einsum("nd,...md->...nm", X, W), 0.0)
    R = np.einsum("...nm,...mk->...nk", H, A) - Y
    return np.mean(R * R, axis=(-2, -1))


def dead_neurons(X_dec, W) -> list:
    """Neurons whose pre-activation is <= 0 on every data point (relu output 0 everywhere), computed
    in float32 for a float32 point (as the network sees it), in float64 otherwise.

    On the paper's 1-D run this reproduces the authors' hand-made list
    dead_ids = [1, 13, 15, 18, 25, 28, 33, 37, 39, 42, 47, 5, 9] exactly."""
    W = np.asarray(W)
    dt = f32 if W.dtype == f32 else f64
    Z = as_float(X_dec).astype(dt) @ W.astype(dt).T
    return [j for j in range(Z.shape[1]) if (Z[:, j] <= 0).all()]


def perturbation_check(X_dec, Y_dec, W, A, trials: int = 5000, seed: int = 0, batch: int = 1000,
                       perturb_dead: bool = False, amplitude: float | None = None) -> dict:
    """The authors' local-minimum check (perturbation_at_critical_point in their helpers.py):

    - dead neurons (relu output 0 on every data point) are left unperturbed;
    - amplitude = min(1, min |param| over the non-dead neurons' W and A entries) / 10;
    - `trials` independent perturbations, every non-dead parameter + U(-amp, amp);
    - report the minimum loss change; 'local minimum' iff it is > 0.

    Two deliberate departures from their notebook, both in the check's favour: the loss is
    evaluated in float64 (theirs: float32), and each trial starts again from the point (their
    get_perturbed_model adds the noise in place, so their 5000 trials form a random walk).

    Variants (not the authors'): perturb_dead=True perturbs every neuron, dead ones included;
    amplitude=... imposes the amplitude; W and A may be float64 (e.g. a refined exact point)."""
    X, Y = as_float(X_dec), as_float(Y_dec)
    W = np.asarray(W).astype(f64)
    A = np.asarray(A).astype(f64)
    m = W.shape[0]
    dead = dead_neurons(X_dec, W)
    alive = [j for j in range(m) if j not in dead]
    amp = min(1.0, float(min(np.abs(W[alive]).min(), np.abs(A[alive]).min()))) / 10
    if amplitude is not None:
        amp = amplitude
    mask = np.zeros((m, 1))
    mask[list(range(m)) if perturb_dead else alive] = 1.0
    L0 = float(mse(X, Y, W, A))
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    changes = []
    done = 0
    while done < trials:
        b = min(batch, trials - done)
        dW = rng.uniform(-amp, amp, size=(b,) + W.shape) * mask
        dA = rng.uniform(-amp, amp, size=(b,) + A.shape) * mask
        changes.append(mse(X, Y, W + dW, A + dA) - L0)
        done += b
    ch = np.concatenate(changes)
    secs = time.perf_counter() - t0
    return dict(loss=L0, amplitude=amp, dead=dead, trials=trials, min_change=float(ch.min()),
                negative=int((ch < 0).sum()), median_change=float(np.median(ch)), seconds=secs,
                verdict="local minimum" if ch.min() > 0 else "not a local minimum")
