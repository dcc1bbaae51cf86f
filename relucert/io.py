"""Loaders: JSON problem files (exact decimals), .npz (exact binary floats), trajectories, torch."""
from __future__ import annotations

import json
import os
import zipfile
from fractions import Fraction
from typing import Any

import numpy as np

from relucert.errors import InputError
from relucert.core.problem import Point, Problem

REQUIRED = ("X", "Y", "W", "A")


def _no_constant(name: str):
    raise InputError(f"JSON contains {name}; only finite numbers are allowed")


def read_json_exact(path: str) -> Any:
    """Parse JSON keeping every number exact: 0.1 is 1/10, never the float 0.1."""
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    try:
        return json.loads(text, parse_float=Fraction, parse_int=int, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def problem_point_from_dict(obj: Any, source: str = "input") -> tuple[Problem, Point]:
    if not isinstance(obj, dict):
        raise InputError(f"{source}: expected a JSON object with keys X, Y, W, A")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise InputError(f"{source}: missing key(s) {', '.join(missing)}")
    act = obj.get("activation", "relu")
    pb = Problem.make(obj["X"], obj["Y"], act, obj.get("loss", "half_mean"))
    pt = Point.make(obj["W"], obj["A"], pb)
    return pb, pt


def load_json(path: str) -> tuple[Problem, Point]:
    return problem_point_from_dict(read_json_exact(path), os.path.basename(path))


def _npz_scalar(z, key, default=None):
    if key not in z.files:
        return default
    v = z[key]
    if v.shape == ():
        v = v.item()
    elif v.size == 1:
        v = v.reshape(()).item()
    if isinstance(v, bytes):
        v = v.decode()
    return v


def _open_npz(path: str):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise InputError(f"cannot read {path} as .npz: {e}") from None


def activation_from_npz(z) -> Any:
    if "activation" in z.files:
        return str(_npz_scalar(z, "activation"))
    ap, am = _npz_scalar(z, "alpha_plus"), _npz_scalar(z, "alpha_minus")
    if ap is None and am is None:
        return "relu"
    return {"alpha_plus": 1 if ap is None else ap, "alpha_minus": 0 if am is None else am}


def load_npz(path: str, index: int | None = None) -> tuple[Problem, Point]:
    """Point file (W m x d, A m x k) or trajectory (W T x m x d, A T x m x k; pick ``index``)."""
    z = _open_npz(path)
    missing = [k for k in REQUIRED if k not in z.files]
    if missing:
        raise InputError(f"{os.path.basename(path)}: missing array(s) {', '.join(missing)} "
                         f"(has {', '.join(z.files) or 'nothing'})")
    loss = str(_npz_scalar(z, "loss_convention", None) or _loss_key(z))
    pb = Problem.make(z["X"], z["Y"], activation_from_npz(z), loss)
    W, A = z["W"], z["A"]
    if W.ndim == 3:
        T = W.shape[0]
        if A.ndim == 2 and pb.k == 1 and A.shape[0] == T:
            A = A[:, :, None]
        if A.ndim != 3 or A.shape[0] != T:
            raise InputError(f"{os.path.basename(path)}: trajectory W has {T} steps but A has shape {A.shape}")
        if index is None:
            index = T - 1
        if not -T <= index < T:
            raise InputError(f"--index {index} out of range: trajectory has {T} checkpoints")
        W, A = W[index], A[index]
    elif index is not None:
        raise InputError(f"{os.path.basename(path)} holds a single point; --index needs a trajectory")
    pt = Point.make(W, A, pb)
    return pb, pt


def _loss_key(z) -> str:
    v = _npz_scalar(z, "loss", "half_mean")
    if isinstance(v, str):
        return v
    return "half_mean"   # a numeric 'loss' array in a trajectory holds values, not a convention


def load(path: str, index: int | None = None) -> tuple[Problem, Point]:
    if not os.path.exists(path):
        raise InputError(f"no such file: {path}")
    low = path.lower()
    if low.endswith(".json"):
        if index is not None:
            raise InputError("--index applies to trajectory .npz files only")
        return load_json(path)
    if low.endswith(".npz"):
        return load_npz(path, index)
    raise InputError(f"{path}: unknown file type (expected .json or .npz)")


def load_problem(path: str) -> Problem:
    """Data only (X, Y, activation, loss) from a .json or .npz file; W and A are ignored."""
    if not os.path.exists(path):
        raise InputError(f"no such file: {path}")
    if path.lower().endswith(".json"):
        obj = read_json_exact(path)
        if not isinstance(obj, dict) or "X" not in obj or "Y" not in obj:
            raise InputError(f"{path}: a data file needs keys X and Y")
        return Problem.make(obj["X"], obj["Y"], obj.get("activation", "relu"), obj.get("loss", "half_mean"))
    if path.lower().endswith(".npz"):
        z = _open_npz(path)
        if "X" not in z.files or "Y" not in z.files:
            raise InputError(f"{path}: a data file needs arrays X and Y")
        return Problem.make(z["X"], z["Y"], activation_from_npz(z),
                            str(_npz_scalar(z, "loss_convention", None) or _loss_key(z)))
    raise InputError(f"{path}: unknown data file type (expected .json or .npz)")


def torch_state_dict(ckpt: str) -> dict:
    try:
        import torch
    except ImportError:
        raise InputError("reading PyTorch checkpoints needs torch, an optional extra: "
                         "pip install 'relucert[torch]'  (or: pip install torch==2.13.0)") from None
    if not os.path.exists(ckpt):
        raise InputError(f"no such file: {ckpt}")
    try:
        sd = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        raise InputError(f"cannot load {ckpt} as a PyTorch checkpoint (weights_only=True): "
                         f"{str(e).splitlines()[0][:200]}") from None
    if isinstance(sd, dict) and "model_state_dict" in sd:
        sd = sd["model_state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"{ckpt}: expected a state_dict (or a dict with 'model_state_dict'), got {type(sd).__name__}")
    return {k: v.detach().cpu().double().numpy() for k, v in sd.items() if hasattr(v, "detach")}


def weights_from_state_dict(sd: dict, d: int, keys: str | None = None, source: str = "checkpoint"):
    """(W m x d, A m x k) from a two-layer bias-free state_dict; keys 'input_key,output_key' to choose."""
    if keys:
        parts = [p.strip() for p in keys.split(",")]
        if len(parts) != 2:
            raise InputError("--keys needs two names: INPUT_WEIGHT,OUTPUT_WEIGHT")
        for p in parts:
            if p not in sd:
                raise InputError(f"{source}: no key {p!r} (has {', '.join(sd)})")
        Win, Wout = sd[parts[0]], sd[parts[1]]
    else:
        biases = [k for k, v in sd.items() if "bias" in k and getattr(v, "size", 0)]
        if biases:
            raise InputError(f"{source}: has bias parameters {biases}; relucert needs a bias-free "
                             "two-layer network (append a constant-1 column to X instead), or pass --keys")
        mats = [(k, v) for k, v in sd.items() if getattr(v, "ndim", 0) == 2]
        if len(mats) != 2:
            raise InputError(f"{source}: expected exactly two weight matrices, found {[k for k, _ in mats]}; "
                             "pass --keys INPUT_WEIGHT,OUTPUT_WEIGHT")
        (k1, v1), (k2, v2) = mats
        if v1.shape[1] == d and v2.shape[1] == v1.shape[0]:
            Win, Wout = v1, v2
        elif v2.shape[1] == d and v1.shape[1] == v2.shape[0]:
            Win, Wout = v2, v1
        else:
            raise InputError(f"{source}: weight shapes {v1.shape}, {v2.shape} do not fit inputs of dimension {d}")
    if Win.ndim != 2 or Wout.ndim != 2 or Win.shape[1] != d or Wout.shape[1] != Win.shape[0]:
        raise InputError(f"{source}: input weight {Win.shape} / output weight {Wout.shape} do not fit d = {d}")
    return Win, Wout.T


def load_torch(ckpt: str, data: str, keys: str | None = None) -> tuple[Problem, Point]:
    pb = load_problem(data)
    sd = torch_state_dict(ckpt)
    W, A = weights_from_state_dict(sd, pb.d, keys, os.path.basename(ckpt))
    return pb, Point.make(W, A, pb)
