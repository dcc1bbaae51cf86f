"""Shared helpers for the paper-experiment scripts (no torch needed here).

Conventions used by every file written in this folder:
  X (n x d), Y (n x k)       data, float64 of the decimals in paper_experiments.json
  W (m x d) float32           input weights  (= input_layer.weight)
  A (m x k) float32           output weights (= output_layer.weight transposed)
  loss = "mse"                mean over the n*k entries of (f(x) - y)^2
  alpha_plus = 1, alpha_minus = 0   (ReLU)
"""
from __future__ import annotations

import json
import os
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = os.path.join(HERE, "paper_experiments.json")
NAMES = ("1d_input_with_bias", "3d_input", "2d_input_2d_output")


def load_spec(name: str, spec_path: str = SPEC) -> dict:
    """One experiment; numbers as floats, plus 'X_dec'/'Y_dec' with the decimal strings as written."""
    with open(spec_path) as fh:
        text = fh.read()
    exps = json.loads(text)["experiments"]
    if name not in exps:
        raise SystemExit(f"unknown experiment {name!r}; choose from {', '.join(exps)}")
    e = dict(exps[name])
    dec = json.loads(text, parse_float=str, parse_int=str)["experiments"][name]
    e["X_dec"], e["Y_dec"] = dec["X"], dec["Y"]
    e["name"] = name
    return e


def exact_str(v) -> str:
    """Exact decimal-free rendering of a binary float: 'p/q' (or 'p').  Never rounds."""
    return str(Fraction(float(v)))


def mse(W, A, X, Y) -> float:
    """Loss of a float32 point evaluated in float64 (for reporting only)."""
    H = np.maximum(np.asarray(X, float) @ np.asarray(W, float).T, 0.0)
    R = H @ np.asarray(A, float) - np.asarray(Y, float)
    return float(np.mean(R * R))


def point_arrays(e: dict, W, A, **extra) -> dict:
    X = np.asarray(e["X"], dtype=np.float64)
    Y = np.asarray(e["Y"], dtype=np.float64)
    d = dict(X=X, Y=Y,
             W=np.asarray(W, dtype=np.float32), A=np.asarray(A, dtype=np.float32),
             alpha_plus=np.float64(1.0), alpha_minus=np.float64(0.0),
             loss=np.str_("mse"), loss_convention=np.str_("mse"),
             # the data exactly as the network saw it during training (torch.FloatTensor)
             X_float32=X.astype(np.float32), Y_float32=Y.astype(np.float32))
    d.update(extra)
    return d


def save_point(prefix: str, e: dict, W, A, **extra) -> list[str]:
    """Write <prefix>.npz and <prefix>.json (exact fractions for W, A; decimal strings for X, Y)."""
    np.savez(prefix + ".npz", **point_arrays(e, W, A, **extra))
    write_problem_json(prefix + ".json", e, W, A)
    return [prefix + ".npz", prefix + ".json"]


def write_problem_json(path: str, e: dict, W, A) -> None:
    W = np.asarray(W, dtype=np.float32)
    A = np.asarray(A, dtype=np.float32)
    obj = {
        "activation": "relu",
        "loss": "mse",
        "X": e["X_dec"],
        "Y": e["Y_dec"],
        "W": [[exact_str(v) for v in row] for row in W],
        "A": [[exact_str(v) for v in row] for row in A],
    }
    # one matrix row per line keeps the file readable and diff-friendly
    lines = ["{", '  "activation": "relu",', '  "loss": "mse",']
    for key in ("X", "Y", "W", "A"):
        rows = [json.dumps(r) for r in obj[key]]
        lines.append(f'  "{key}": [\n    ' + ",\n    ".join(rows) + "\n  ]" + ("," if key != "A" else ""))
    lines.append("}")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    # self-check: the file reads back to the very same float32 values
    back = json.load(open(path))
    for key, M in (("W", W), ("A", A)):
        R = np.array([[np.float32(Fraction(s)) for s in row] for row in back[key]], dtype=np.float32)
        assert np.array_equal(R.view(np.uint32), M.view(np.uint32)), f"{path}: {key} does not round-trip"


def record_steps(max_iter: int, every: int) -> np.ndarray:
    """Checkpoint steps: 0, log-spaced up to `every`, then every `every` steps."""
    early = np.unique(np.round(np.logspace(0, np.log10(every), 25)).astype(np.int64))
    regular = np.arange(0, max_iter + 1, every, dtype=np.int64)
    return np.unique(np.concatenate([[0], early[early < every], regular]))
