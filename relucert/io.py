"""Loaders: JSON problem files (exact decimals), .npz (exact binary floats), trajectories, torch."""
from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from relucert.check.limits import LimitError, Limits, read_text
from relucert.check.limits import load_json as parse_json_text
from relucert.errors import InputError
from relucert.core.problem import Point, Problem

REQUIRED = ("X", "Y", "W", "A")


def read_json(path: str, limits: Limits | None = None, *, exact_numbers: bool = True) -> Any:
    """Parse a JSON file under the input limits.  With ``exact_numbers`` every number is exact
    (0.1 is 1/10, never the float 0.1); else numbers are plain (certificates hold exact strings)."""
    try:
        text = read_text(path, limits)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    except LimitError as e:
        raise InputError(str(e)) from None
    try:
        return parse_json_text(text, path, limits, exact_numbers=exact_numbers)
    except LimitError as e:
        raise InputError(str(e)) from None


def read_json_exact(path: str, limits: Limits | None = None) -> Any:
    """Parse JSON keeping every number exact: 0.1 is 1/10, never the float 0.1."""
    return read_json(path, limits, exact_numbers=True)


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


class _SafeNpz:
    """An opened .npz whose arrays are read without pickle, with one-line errors naming the array."""

    def __init__(self, z, path: str):
        self._z, self.path, self.files = z, path, z.files

    def __getitem__(self, key: str):
        try:
            a = self._z[key]
        except ValueError as e:
            if "allow_pickle" in str(e) or "Object arrays" in str(e):
                raise InputError(f"{self.path}: array {key!r} holds Python objects (pickled data); only numeric "
                                 "arrays are read, never unpickled") from None
            raise InputError(f"{self.path}: array {key!r} cannot be read: {str(e).splitlines()[0][:200]}") from None
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            raise InputError(f"{self.path}: array {key!r} is damaged: {str(e).splitlines()[0][:200]}") from None
        if a.dtype.kind not in "fiubU" and not (a.dtype.kind == "S" and a.ndim == 0):
            raise InputError(f"{self.path}: array {key!r} has unsupported dtype {a.dtype} (numbers or text only)")
        return a


def _open_npz(path: str):
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: cannot read as .npz: not a zip archive of .npy arrays (as numpy.savez writes)")
    try:
        return _SafeNpz(np.load(path, allow_pickle=False), path)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: cannot read as .npz: {str(e).splitlines()[0][:200]}") from None


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


def _named(path: str, fn, *args):
    """Run a loader; every InputError it raises names the file (one line)."""
    try:
        return fn(*args)
    except InputError as e:
        msg = str(e)
        name = os.path.basename(path)
        if name not in msg and path not in msg:
            raise InputError(f"{path}: {msg}") from None
        raise


def load(path: str, index: int | None = None) -> tuple[Problem, Point]:
    """Problem and point from a .json or .npz file (or one checkpoint of a trajectory .npz)."""
    return _named(path, _load, path, index)


def _load(path: str, index: int | None = None) -> tuple[Problem, Point]:
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
    return _named(path, _load_problem, path)


def _load_problem(path: str) -> Problem:
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
