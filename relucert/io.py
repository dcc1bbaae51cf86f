"""Loaders: JSON problem files (exact decimals), .npz (exact binary floats), trajectories, torch.

Every loader reads an optional output bias ``c`` (k numbers) into ``Point.c`` exactly, like the weights:
absent means the network has no output bias, present (even zero) a free parameter (docs/biases.md)."""
from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from relucert.check import BALL_FORMAT, FORMAT
from relucert.check.limits import LimitError, Limits, read_text
from relucert.check.limits import load_json as parse_json_text
from relucert.errors import InputError, short_message
from relucert.core.problem import Activation, Point, Problem

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
    """A problem file's object (X, Y, W, A, activation, loss), or a certificate's (its exact problem
    and point: every command can read the point a certificate is about)."""
    if not isinstance(obj, dict):
        raise InputError(f"{source}: expected a JSON object with keys X, Y, W, A")
    if obj.get("format") == BALL_FORMAT:
        raise InputError(f"{source}: a ball certificate proves an exact stationary point inside a box around its "
                         "'point', not that point itself; 'relucert certify --save-refined OUT.json' writes the "
                         "box's centre as a problem file, to be read knowing that")
    if "format" in obj:
        if obj["format"] != FORMAT:
            raise InputError(f"{source}: field 'format': unknown certificate format {short_message(str(obj['format']))!r} "
                             f"(expected {FORMAT!r})")
        pj, ptj = obj.get("problem"), obj.get("point")
        if not isinstance(pj, dict) or not isinstance(ptj, dict):
            raise InputError(f"{source}: a certificate needs objects 'problem' and 'point'")
        obj = {**pj, **ptj}
        missing = [k for k in ("activation", "loss") + REQUIRED if k not in obj]
        if missing:
            raise InputError(f"{source}: certificate lacks {', '.join(missing)}")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise InputError(f"{source}: missing key(s) {', '.join(missing)}")
    act = obj.get("activation", "relu")
    pb = Problem.make(obj["X"], obj["Y"], act, obj.get("loss", "half_mean"))
    pb.defaulted = tuple(key for key in ("activation", "loss") if key not in obj)
    pt = Point.make(obj["W"], obj["A"], pb, c=obj.get("c"))
    return pb, pt


def point_file(problem: Problem, point: Point, **extra: Any) -> dict:
    """A problem file (the input format of every command) holding ``point``, every number exact."""
    out = problem.to_json()
    out.update(point.to_json())
    out.update(extra)
    return out


def write_point(path: str, problem: Problem, point: Point, **extra: Any) -> None:
    """Write ``point_file(problem, point, **extra)`` to ``path`` as JSON."""
    import json
    try:
        with open(path, "w") as fh:
            json.dump(point_file(problem, point, **extra), fh, indent=1)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from None


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
    """Point file (W m x d, A m x k, optional output bias c of length k) or trajectory (W T x m x d,
    A T x m x k, optional c T x k; pick ``index``)."""
    z = _open_npz(path)
    missing = [k for k in REQUIRED if k not in z.files]
    if missing:
        raise InputError(f"{os.path.basename(path)}: missing array(s) {', '.join(missing)} "
                         f"(has {', '.join(z.files) or 'nothing'})")
    loss = str(_npz_scalar(z, "loss_convention", None) or _loss_key(z))
    pb = Problem.make(z["X"], z["Y"], activation_from_npz(z), loss)
    W, A = z["W"], z["A"]
    c = z["c"] if "c" in z.files else None
    if W.ndim == 3:
        T = W.shape[0]
        if A.ndim == 2 and pb.k == 1 and A.shape[0] == T:
            A = A[:, :, None]
        if A.ndim != 3 or A.shape[0] != T:
            raise InputError(f"{os.path.basename(path)}: trajectory W has {T} steps but A has shape {A.shape}")
        if c is not None:
            if c.ndim == 1 and pb.k == 1 and c.shape[0] == T:
                c = c[:, None]
            if c.ndim != 2 or c.shape != (T, pb.k):
                raise InputError(f"{os.path.basename(path)}: trajectory W has {T} steps and Y has {pb.k} columns, "
                                 f"so the output bias c must be {T} x {pb.k}, but it has shape {c.shape}")
        if index is None:
            index = T - 1
        if not -T <= index < T:
            raise InputError(f"--index {index} out of range: trajectory has {T} checkpoints")
        W, A = W[index], A[index]
        c = None if c is None else c[index]
    elif index is not None:
        raise InputError(f"{os.path.basename(path)} holds a single point; --index needs a trajectory")
    pt = Point.make(W, A, pb, c=c)
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
            msg = f"{path}: {msg}"
        raise InputError(short_message(msg)) from None


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


DATA_FILE_TYPES = ".json, .npz, .pt/.pth (a dict of tensors X, Y) or .csv (a header row; y* columns are Y)"


def load_problem(path: str, activation: Any = None) -> Problem:
    """Data only (X, Y, activation, loss) from a .json, .npz, .pt/.pth or .csv file; W and A are
    ignored.  ``activation`` (a spec as for ``Activation.parse``) is for files that do not carry one; a
    file that does and disagrees is an error (never silently one or the other)."""
    pb = _named(path, _load_problem, path)
    if activation is None:
        return pb
    act = _named(path, Activation.parse, activation)
    if "activation" not in pb.defaulted:
        if act != pb.activation:
            raise InputError(f"{path}: field 'activation': the file says {pb.activation.name}, --activation says "
                             f"{act.name}; drop one of them")
        return pb
    return Problem(pb.X, pb.Y, act, pb.loss, defaulted=tuple(k for k in pb.defaulted if k != "activation"))


def _load_problem(path: str) -> Problem:
    if not os.path.exists(path):
        raise InputError(f"no such file: {path}")
    low = path.lower()
    if low.endswith((".pt", ".pth")):
        return _torch_data(path)
    if low.endswith(".csv"):
        return _csv_data(path)
    if path.lower().endswith(".json"):
        obj = read_json_exact(path)
        if not isinstance(obj, dict) or "X" not in obj or "Y" not in obj:
            raise InputError(f"{path}: a data file needs keys X and Y")
        pb = Problem.make(obj["X"], obj["Y"], obj.get("activation", "relu"), obj.get("loss", "half_mean"))
        pb.defaulted = tuple(key for key in ("activation", "loss") if key not in obj)
        return pb
    if path.lower().endswith(".npz"):
        z = _open_npz(path)
        if "X" not in z.files or "Y" not in z.files:
            raise InputError(f"{path}: a data file needs arrays X and Y")
        return Problem.make(z["X"], z["Y"], activation_from_npz(z),
                            str(_npz_scalar(z, "loss_convention", None) or _loss_key(z)))
    raise InputError(f"{path}: unknown data file type (expected {DATA_FILE_TYPES})")


def _data_problem(path: str, X: Any, Y: Any, obj: dict) -> Problem:
    pb = Problem.make(X, Y, obj.get("activation", "relu"), obj.get("loss", "half_mean"))
    pb.defaulted = tuple(key for key in ("activation", "loss") if key not in obj)
    return pb


def _torch_data(path: str) -> Problem:
    """A .pt/.pth data file: ``torch.save({"X": X, "Y": Y[, "activation": .., "loss": ..]})`` (or a
    tuple (X, Y)), read with weights_only=True; float tensors are read as their exact binary values."""
    torch = _import_torch("read a .pt data file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any failure of the safe unpickler is an input error
        raise _torch_load_error(path, e) from None
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        obj = {"X": obj[0], "Y": obj[1]}
    if not isinstance(obj, dict) or "X" not in obj or "Y" not in obj:
        raise InputError(f"{path}: a .pt data file holds a dict with tensors X and Y (or a tuple (X, Y))")
    arrays = {}
    for key in ("X", "Y"):
        v = obj[key]
        if not _is_tensor(v):
            raise InputError(f"{path}: field '{key}': expected a tensor, found {type(v).__name__}")
        if v.dtype.is_floating_point:
            arrays[key] = _exact_float64(key, v, path)
        elif v.dtype.is_complex or v.dtype == torch.bool:
            raise InputError(f"{path}: field '{key}': dtype {_dtype_name(v)} is not a real number type")
        else:
            arrays[key] = [[int(x) for x in row] for row in v.reshape(v.shape[0], -1).tolist()] \
                if v.dim() > 1 else [int(x) for x in v.tolist()]
    meta = {}
    for key in ("activation", "loss"):
        if key in obj:
            if not isinstance(obj[key], str):
                raise InputError(f"{path}: field '{key}': expected a string, found {type(obj[key]).__name__}")
            meta[key] = obj[key]
    return _data_problem(path, arrays["X"], arrays["Y"], meta)


def _csv_data(path: str) -> Problem:
    """A .csv data file: a header row, then one data point per row; columns whose name starts with 'y'
    are the outputs Y (in order), the others the inputs X.  Every value is read exactly as written in
    decimal (0.1 is 1/10), as JSON strings are.  A CSV carries no activation: --activation gives it."""
    import csv
    with open(path, newline="", encoding="utf-8") as fh:
        try:
            rows = list(csv.reader(fh))
        except (csv.Error, UnicodeDecodeError) as e:
            raise InputError(f"{path}: not a readable CSV file ({e})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise InputError(f"{path}: a CSV data file needs a header row and at least one data row")
    head = [h.strip() for h in rows[0]]
    ycols = [i for i, h in enumerate(head) if h.lower().startswith("y")]
    xcols = [i for i, h in enumerate(head) if i not in ycols]
    if not ycols or not xcols:
        raise InputError(f"{path}: header {head}: needs input columns and output columns (names starting with 'y')")
    X, Y = [], []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(head):
            raise InputError(f"{path}: row {r}: {len(row)} values, the header has {len(head)} columns")
        X.append([row[i].strip() for i in xcols])
        Y.append([row[i].strip() for i in ycols])
    try:
        return _data_problem(path, X, Y, {})
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


# ---------------------------------------------------------------------------------------------
# PyTorch / safetensors checkpoints of a one-hidden-layer MLP
#
# f(x) = sum_j a_j sigma(w_j . x + b_j) with hidden biases b_j is exactly the bias-free network on the
# augmented input x' = (x, 1) with w'_j = (w_j, b_j): the same function, and w'_j ranges over all of
# R^{d+1}, so the parameter space and the loss landscape are the same and every verdict and certificate
# maps one to one.  The loader folds a hidden bias that way.  An output bias c (f(x) + c) is a free
# parameter of its own (it adds the stationarity condition sum_i e_i = 0, docs/biases.md): it is read
# exactly into Point.c (load_torch_info), never dropped.  Readers that do not carry c (map_state_dict /
# torch_weights without output_bias=True) refuse it, and every tensor the mapping does not use is refused.
# ---------------------------------------------------------------------------------------------

import re as _re
from dataclasses import dataclass as _dataclass

# a checkpoint dict holding the state_dict under one of these keys (one level of nesting)
CHECKPOINT_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "module")
# key prefixes removed when every key has them: nn.DataParallel / DistributedDataParallel, torch.compile
KEY_PREFIXES = ("module.", "_orig_mod.")
# floating dtypes read exactly: every value of each is a float64 value (at most 24 significand bits,
# exponents inside float64's normal range), so the conversion to float64 below never rounds
EXACT_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e4m3fnuz",
                      "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")
_ANSI = _re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@_dataclass(frozen=True)
class TorchLoadInfo:
    """Where every tensor of a loaded checkpoint went (all of them are used, or the load is refused).

    W (m x d', d' = d or d + 1) holds ``input_weight`` and, with a hidden bias, ``hidden_bias`` as its
    last column ``bias_column = d``, where X gets a constant-1 column; A (m x k) is ``output_weight``
    transposed."""

    source: str                       # the checkpoint file
    container: str                    # where its state_dict was: 'state_dict', "checkpoint['model']", ...
    prefix: str                       # key prefix removed from every key ('module.'), or ''
    input_weight: str                 # key of the m x d input weight     -> W[:, :d]
    hidden_bias: str | None           # key of the length-m hidden bias   -> W[:, d], X[:, d] = 1
    output_weight: str                # key of the k x m output weight    -> A = (output weight)^T
    d: int                            # input dimension of the data file (before the constant column)
    m: int
    k: int
    dtypes: tuple[str, ...]           # dtypes of the used tensors (all converted exactly)
    ignored: tuple[str, ...] = ()     # other entries of a checkpoint dict (optimizer, epoch, ...): not the model
    output_bias: str | None = None    # key of the length-k output bias -> Point.c, or None
    c: tuple[str, ...] | None = None  # its exact values (the Point's c), or None

    @property
    def bias_column(self) -> int | None:
        """Index of the constant-1 column appended to X (and of the bias column of W), or None."""
        return self.d if self.hidden_bias is not None else None

    def lines(self) -> list[str]:
        p = self.prefix
        out = [f"loaded {self.source} ({self.container}"
               + (f", key prefix {p!r} removed" if p else "")
               + f", {'/'.join(self.dtypes)} read exactly): W[:, :{self.d}] = {self.input_weight} "
               f"({self.m} x {self.d}), A = {self.output_weight}^T ({self.m} x {self.k})"]
        if self.hidden_bias is not None:
            out.append(f"hidden bias {self.hidden_bias} folded exactly: W[:, {self.d}] = {self.hidden_bias} and X "
                       f"gets a constant-1 column at index {self.d} (x' = (x, 1), w'_j = (w_j, b_j)); the verdict and "
                       "certificate are about this bias-free network on x', the same function and loss landscape")
        if self.output_bias is not None:
            vals = ", ".join(self.c[:6]) + (f", ... {len(self.c) - 6} more" if len(self.c) > 6 else "")
            out.append(f"output bias {self.output_bias} read exactly as the output bias c = [{vals}] "
                       f"(f(x) = sum_j a_j sigma(w_j . x) + c): a free parameter, so the verdict also needs "
                       "(S0) sum_i e_i = 0")
        if self.ignored:
            out.append(f"checkpoint entries beside the model, not read: {', '.join(self.ignored)}")
        return out

    def to_json(self) -> dict:
        return {"source": self.source, "container": self.container, "key_prefix_removed": self.prefix,
                "input_weight": self.input_weight, "hidden_bias": self.hidden_bias,
                "output_weight": self.output_weight, "output_bias": self.output_bias,
                "c": None if self.c is None else list(self.c), "d": self.d, "m": self.m, "k": self.k,
                "constant_column": self.bias_column, "dtypes": list(self.dtypes), "ignored": list(self.ignored)}


def _import_torch(what: str):
    try:
        import torch
    except ImportError:
        raise InputError(f"{what} needs torch, an optional extra: "
                         "pip install 'relucert[torch]'  (or: pip install torch==2.13.0)") from None
    return torch


def _clean(text: str) -> str:
    """One line of an exception message: terminal colour codes removed, whitespace collapsed."""
    return " ".join(_ANSI.sub("", text).split())


def _torch_load_error(path: str, e: Exception) -> InputError:
    msg = _clean(str(e))
    glob_ = _re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
    if glob_:
        cls = glob_.group(1)
        if cls.startswith("torch.nn.") or cls.startswith("torch.jit."):
            return InputError(f"{path}: holds a pickled torch module ({cls}, as torch.save(model) writes), which "
                              "is never unpickled (torch.load with weights_only=True); save the weights instead: "
                              "torch.save(model.state_dict(), PATH)")
        return InputError(f"{path}: cannot load as a PyTorch checkpoint with weights_only=True: it holds a pickled "
                          f"object of class {cls}, which is never unpickled; save tensors only, e.g. "
                          "torch.save(model.state_dict(), PATH)")
    why = _re.search(r"WeightsUnpickler error: (.*?)(?: Please use| Check the documentation|$)", msg)
    detail = why.group(1) if why else msg
    return InputError(f"cannot load {path} as a PyTorch checkpoint (weights_only=True): {detail[:200]}")


def _is_tensor(v) -> bool:
    return hasattr(v, "detach") and hasattr(v, "shape") or isinstance(v, np.ndarray)


def _dtype_name(v) -> str:
    return str(v.dtype).replace("torch.", "")


def _exact_float64(key: str, v, source: str) -> np.ndarray:
    """A float tensor as a float64 array, exactly; complex, integer and boolean tensors are refused."""
    name = _dtype_name(v)
    if name not in EXACT_FLOAT_DTYPES:
        kind = ("complex" if "complex" in name else "integer" if "int" in name else
                "boolean" if "bool" in name else "unsupported")
        raise InputError(f"{source}: tensor {key!r} has {kind} dtype {name}; weights must be real floating point "
                         f"({', '.join(EXACT_FLOAT_DTYPES[:4])})")
    if isinstance(v, np.ndarray):
        a = v.astype(np.float64)          # float16/32 -> float64: exact
    else:
        if getattr(v, "is_quantized", False) or str(getattr(v, "layout", "torch.strided")) != "torch.strided":
            raise InputError(f"{source}: tensor {key!r} is not a dense tensor ({v.layout}); save dense weights")
        # .double() widens float16 / bfloat16 / float32 / float8 to float64 exactly (a wider format with
        # more significand and exponent bits represents every value of the narrower one: no rounding)
        a = v.detach().cpu().double().numpy()
    bad = ~np.isfinite(a)
    if bad.any():
        idx = [int(i) for i in np.argwhere(bad)[0]]
        raise InputError(f"{source}: tensor {key!r} contains {'NaN' if np.isnan(a[tuple(idx)]) else 'inf'} "
                         f"at index {idx}")
    return a


def _select_state_dict(obj, path: str) -> tuple[dict, str, tuple[str, ...]]:
    """(state_dict, where it was, other checkpoint entries) from what torch.load returned."""
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a state_dict (or a checkpoint dict holding one under "
                         f"{', '.join(map(repr, CHECKPOINT_WRAPPERS))}), got {type(obj).__name__}")
    if obj and all(_is_tensor(v) for v in obj.values()):
        return obj, "state_dict", ()
    found = [w for w in CHECKPOINT_WRAPPERS if isinstance(obj.get(w), dict)]
    if len(found) > 1:
        raise InputError(f"{path}: the checkpoint holds several state_dicts ({', '.join(map(repr, found))}); "
                         "save the one to certify on its own: torch.save(model.state_dict(), PATH)")
    if not found:
        keys = [str(k) for k in obj][:12]
        tensors = [k for k, v in obj.items() if _is_tensor(v)]
        if tensors:
            others = [str(k) for k, v in obj.items() if not _is_tensor(v)][:8]
            raise InputError(f"{path}: a state_dict holds tensors only, but entries {', '.join(map(repr, others))} "
                             "are not tensors; save the model under one key, e.g. torch.save({'model': "
                             "model.state_dict(), ...}, PATH)")
        raise InputError(f"{path}: no state_dict found: the checkpoint has keys {keys or 'none'} (a state_dict is "
                         f"read at the top level or under {', '.join(map(repr, CHECKPOINT_WRAPPERS))})")
    w = found[0]
    sd = obj[w]
    beside = [k for k, v in obj.items() if k != w and _is_tensor(v)]
    if beside:
        raise InputError(f"{path}: tensors {', '.join(map(repr, beside[:8]))} beside checkpoint[{w!r}]: a parameter "
                         "is never dropped, so the checkpoint is refused; save the model's state_dict alone")
    bad = [k for k, v in sd.items() if not _is_tensor(v)]
    if bad:
        raise InputError(f"{path}: checkpoint[{w!r}] entry {bad[0]!r} is a {type(sd[bad[0]]).__name__}, not a tensor "
                         "(expected a state_dict)")
    if not sd:
        raise InputError(f"{path}: checkpoint[{w!r}] is empty")
    return sd, f"checkpoint[{w!r}]", tuple(str(k) for k in obj if k != w)


def _strip_prefix(sd: dict) -> tuple[dict, str]:
    prefix = ""
    while sd:
        p = next((p for p in KEY_PREFIXES if all(str(k).startswith(p) for k in sd)), None)
        if p is None or any(str(k) == p for k in sd):
            break
        sd = {str(k)[len(p):]: v for k, v in sd.items()}
        prefix += p
    return sd, prefix


def _read_safetensors(path: str) -> dict:
    try:
        from safetensors import safe_open
    except ImportError:
        raise InputError(f"{path}: reading .safetensors files needs the safetensors package, an optional extra: "
                         "pip install safetensors") from None
    import importlib.util
    # with torch every dtype (bfloat16 included) is readable; without it, numpy's
    framework = "pt" if importlib.util.find_spec("torch") is not None else "numpy"
    try:
        with safe_open(path, framework=framework) as fh:
            return {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged files
        hint = " (bfloat16 tensors need torch)" if framework == "numpy" and "bf16" in str(e).lower() else ""
        raise InputError(f"cannot read {path} as a .safetensors file: {_clean(str(e))[:200]}{hint}") from None


def read_checkpoint(ckpt: str) -> tuple[dict, str, str, tuple[str, ...]]:
    """(state_dict of raw tensors, container, removed key prefix, ignored checkpoint entries) of a .pt/.pth
    (torch.load with weights_only=True, never unpickling objects) or .safetensors file."""
    if not os.path.exists(ckpt):
        raise InputError(f"no such file: {ckpt}")
    if os.path.isdir(ckpt):
        raise InputError(f"{ckpt}: is a directory, not a checkpoint file")
    if ckpt.lower().endswith(".safetensors"):
        sd, container, ignored = _read_safetensors(ckpt), "safetensors", ()
        if not sd:
            raise InputError(f"{ckpt}: the .safetensors file holds no tensors")
    else:
        torch = _import_torch("reading PyTorch checkpoints")
        try:
            obj = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for bad files
            raise _torch_load_error(ckpt, e) from None
        sd, container, ignored = _select_state_dict(obj, ckpt)
    sd, prefix = _strip_prefix({str(k): v for k, v in sd.items()})
    return sd, container, prefix, ignored


def torch_state_dict(ckpt: str) -> dict:
    """Every tensor of the checkpoint's state_dict as an exact float64 array (see read_checkpoint)."""
    sd = read_checkpoint(ckpt)[0]
    return {k: _exact_float64(k, v, ckpt) for k, v in sd.items()}


def _shape(v) -> tuple[int, ...]:
    return tuple(int(s) for s in v.shape)


def _bias_of(weight_key: str) -> str | None:
    """The bias key of the layer whose weight is ``weight_key`` ('0.weight' -> '0.bias')."""
    return weight_key[: -len("weight")] + "bias" if weight_key.endswith("weight") else None


def _layer_number(key: str) -> tuple[str, int] | None:
    """('fc', 1) for 'fc1.weight', ('layers.', 2) for 'layers.2.weight': to order two layers by name."""
    found = list(_re.finditer(r"\d+", key))
    return (key[: found[-1].start()] + "#" + key[found[-1].end():], int(found[-1].group())) if found else None


def _list(sd: dict, keys) -> str:
    keys = list(keys)
    shown = ", ".join(f"{k!r} {_shape(sd[k])}" for k in keys[:8])
    return shown + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


def _resolve(sd: dict, name: str, prefix: str, source: str) -> str:
    if name in sd:
        return name
    if prefix and name.startswith(prefix) and name[len(prefix):] in sd:
        return name[len(prefix):]
    raise InputError(f"{source}: --keys: no key {name!r} (has {', '.join(list(sd)[:16])})")


def _order_by_shape(sd: dict, d: int, k: int | None, source: str) -> tuple[str, str]:
    mats = [key for key, v in sd.items() if len(_shape(v)) == 2]
    if len(mats) != 2:
        what = "no" if not mats else f"{len(mats)}"
        raise InputError(f"{source}: found {what} weight matrices (2-D tensors){': ' + _list(sd, mats) if mats else ''}; "
                         "relucert certifies one-hidden-layer networks (two Linear layers); pass "
                         "--keys IN_W,OUT_W or IN_W,IN_B,OUT_W if the layers are stored otherwise")

    def fits(a, b):
        sa, sb = _shape(sd[a]), _shape(sd[b])
        return sa[1] == d and sb[1] == sa[0] and (k is None or sb[0] == k)

    k1, k2 = mats
    orders = [(a, b) for a, b in ((k1, k2), (k2, k1)) if fits(a, b)]
    if not orders:
        kk = "k" if k is None else k
        raise InputError(f"{source}: weight shapes {_list(sd, mats)} do not fit a network with {d} inputs "
                         f"(columns of X) and {kk} outputs (columns of Y): expected m x {d} and {kk} x m")
    if len(orders) == 2:
        n1, n2 = _layer_number(k1), _layer_number(k2)
        if n1 is None or n2 is None or n1[0] != n2[0] or n1[1] == n2[1]:
            raise InputError(f"{source}: both {k1!r} and {k2!r} fit as the input layer (square shapes) and their "
                             "names do not tell the order; pass --keys IN_W,OUT_W (or IN_W,IN_B,OUT_W)")
        return (k1, k2) if n1[1] < n2[1] else (k2, k1)
    return orders[0]


def map_state_dict(sd: dict, d: int, k: int | None, keys: str | None = None, source: str = "checkpoint",
                   prefix: str = "", output_bias: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """(W, A, roles) of a one-hidden-layer state_dict, exactly: W is m x d, or m x (d + 1) with the hidden
    bias as its last column; A is m x k.  Every tensor is used or the state_dict is refused (InputError):
    an unused tensor, a wrong shape or a non-float dtype, and an output bias unless ``output_bias``: then
    it is read exactly as roles["c"] (length-k float64 array, the output layer's bias found by name;
    roles["output_bias"] is its key).  ``keys`` is 'IN_W,OUT_W' or 'IN_W,IN_B,OUT_W'; without it the two
    Linear layers are found by shape, and each one's bias by name.  ``k`` (columns of Y) None: any number
    of outputs."""
    if keys is not None:
        parts = [p.strip() for p in keys.split(",")]
        if len(parts) not in (2, 3) or not all(parts):
            raise InputError(f"--keys {keys!r}: expected IN_W,OUT_W or IN_W,IN_B,OUT_W (input weight, hidden bias, "
                             "output weight)")
        parts = [_resolve(sd, p, prefix, source) for p in parts]
        if len(set(parts)) != len(parts):
            raise InputError(f"--keys {keys!r}: a key is named twice")
        w_in, w_out = parts[0], parts[-1]
        b_in = parts[1] if len(parts) == 3 else None
    else:
        w_in, w_out = _order_by_shape(sd, d, k, source)
        b_in = _bias_of(w_in) if _bias_of(w_in) in sd else None
    s_in, s_out = _shape(sd[w_in]), _shape(sd[w_out])
    if len(s_in) != 2 or s_in[1] != d:
        raise InputError(f"{source}: input weight {w_in!r} has shape {s_in}, expected m x {d} (X has {d} columns)")
    m = s_in[0]
    if m == 0:
        raise InputError(f"{source}: input weight {w_in!r} has no rows: the network has no neurons")
    if len(s_out) != 2 or s_out[1] != m or (k is not None and s_out[0] != k):
        raise InputError(f"{source}: output weight {w_out!r} has shape {s_out}, expected {'k' if k is None else k} "
                         f"x {m} ({'' if k is None else f'Y has {k} columns, '}{w_in!r} has {m} neurons)")
    b_out = _bias_of(w_out)
    if b_in is not None and b_in == b_out:
        raise InputError(f"{source}: --keys: {b_in!r} is the output layer's bias, not the hidden bias")
    if b_out in sd and not output_bias:
        raise InputError(f"{source}: output bias {b_out!r} {_shape(sd[b_out])} refused by this reader: it is a free "
                         "parameter of the model (it adds the stationarity condition sum_i e_i = 0) that this reader "
                         "does not carry, and a parameter is never dropped, even if zero; 'relucert certify --torch' "
                         "reads it as the output bias c")
    if b_out not in sd:
        b_out = None
    if b_out is not None and _shape(sd[b_out]) != (s_out[0],):
        raise InputError(f"{source}: output bias {b_out!r} has shape {_shape(sd[b_out])}, expected ({s_out[0]},) "
                         f"(one per output of {w_out!r})")
    if b_in is not None and _shape(sd[b_in]) != (m,):
        raise InputError(f"{source}: hidden bias {b_in!r} has shape {_shape(sd[b_in])}, expected ({m},)")
    used = [w_in] + ([b_in] if b_in else []) + [w_out] + ([b_out] if b_out else [])
    unused = [key for key in sd if key not in used]
    if unused:
        hint = ""
        sib = _bias_of(w_in)
        if sib in unused and keys is not None:
            hint = f"; to fold the hidden bias pass --keys {w_in},{sib},{w_out}"
        raise InputError(f"{source}: tensor(s) not used by the network (W = {w_in}"
                         + (f" with bias {b_in}" if b_in else "") + f", A = {w_out}^T): {_list(sd, unused)}; a "
                         f"parameter is never dropped, so the checkpoint is refused{hint}")
    W, A, c = assemble_weights(sd, w_in, b_in, w_out, b_out, source)
    roles = {"input_weight": w_in, "hidden_bias": b_in, "output_weight": w_out, "m": m,
             "dtypes": tuple(dict.fromkeys(_dtype_name(sd[key]) for key in used)),
             "output_bias": b_out, "c": c}
    return W, A, roles


def assemble_weights(sd: dict, w_in: str, b_in: str | None, w_out: str, b_out: str | None,
                     source: str = "checkpoint") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(W, A, c) as fresh float64 arrays (never views of the tensors), exactly, from the tensors of an
    already checked mapping (``map_state_dict``'s roles): W = (input weight | hidden bias), A = output
    weight^T, c = output bias or None."""
    W = _exact_float64(w_in, sd[w_in], source)
    W = np.concatenate([W, _exact_float64(b_in, sd[b_in], source)[:, None]], axis=1) if b_in is not None \
        else W.copy()
    A = _exact_float64(w_out, sd[w_out], source).T.copy()
    c = None if b_out is None else _exact_float64(b_out, sd[b_out], source).copy()
    return W, A, c


def weights_from_state_dict(sd: dict, d: int, keys: str | None = None, source: str = "checkpoint",
                            k: int | None = None):
    """(W m x d, A m x k) of a bias-free two-layer state_dict (every tensor used).  A hidden bias changes
    the input dimension (X needs a constant-1 column): use map_state_dict / load_torch_info for that."""
    W, A, roles = map_state_dict(sd, d, k, keys, source)
    if roles["hidden_bias"] is not None:
        raise InputError(f"{source}: has a hidden bias {roles['hidden_bias']!r}: it is folded into a constant-1 "
                         "column of X by load_torch_info / map_state_dict, not by weights_from_state_dict")
    return W, A


def with_constant_column(pb: Problem) -> Problem:
    """The problem on x' = (x, 1): X gets a constant-1 column at index d (the folded hidden bias)."""
    from flint import fmpq
    X = np.empty((pb.n, pb.d + 1), dtype=object)
    X[:, : pb.d] = pb.X
    X[:, pb.d] = fmpq(1)
    return Problem(X, pb.Y.copy(), pb.activation, pb.loss, defaulted=pb.defaulted)


def torch_weights(ckpt: str, pb: Problem, keys: str | None = None, output_bias: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, TorchLoadInfo]:
    """(W, A, info) of a checkpoint for the data of ``pb`` (W has d + 1 columns with a hidden bias).
    An output bias is refused unless ``output_bias`` (then ``info.output_bias`` / ``info.c`` hold it and
    the caller must carry it: ``torch_output_bias``)."""
    sd, container, prefix, ignored = read_checkpoint(ckpt)
    W, A, roles = map_state_dict(sd, pb.d, pb.k, keys, ckpt, prefix, output_bias=output_bias)
    c = roles["c"]
    info = TorchLoadInfo(ckpt, container, prefix, roles["input_weight"], roles["hidden_bias"],
                         roles["output_weight"], pb.d, roles["m"], pb.k, roles["dtypes"], ignored,
                         roles["output_bias"], None if c is None else tuple(str(v) for v in _exact_values(c)))
    return W, A, info


def _exact_values(a: np.ndarray) -> list:
    """The exact rationals of a float64 array (its binary values)."""
    from relucert.core.problem import to_fmpq
    return [to_fmpq(v, "c") for v in a.tolist()]


def torch_output_bias(info: TorchLoadInfo):
    """The output bias of a loaded checkpoint as exact numbers for ``Point.make(..., c=...)``, or None."""
    if info.c is None:
        return None
    from fractions import Fraction
    return [Fraction(v) for v in info.c]


def state_dict_point(sd: dict, pb: Problem, *, keys: str | None = None, source: str = "state_dict",
                     prefix: str = "", container: str = "state_dict", ignored: tuple[str, ...] = ()
                     ) -> tuple[Problem, Point, TorchLoadInfo]:
    """Problem, point and mapping of a one-hidden-layer state_dict (raw tensors or arrays) for the data
    of ``pb``, exactly (``map_state_dict``): a hidden bias is folded into a constant-1 column appended
    to X (``with_constant_column``), an output bias becomes the point's c.  The one place where a
    state_dict becomes a point: the file loader and ``relucert.from_torch`` (a live model) both use it."""
    W, A, roles = map_state_dict(sd, pb.d, pb.k, keys, source, prefix, output_bias=True)
    c = roles["c"]
    info = TorchLoadInfo(source, container, prefix, roles["input_weight"], roles["hidden_bias"],
                         roles["output_weight"], pb.d, roles["m"], pb.k, roles["dtypes"], ignored,
                         roles["output_bias"], None if c is None else tuple(str(v) for v in _exact_values(c)))
    if info.hidden_bias is not None:
        pb = with_constant_column(pb)
    return pb, Point.make(W, A, pb, c=c), info      # floats -> exact binary values (core.problem.to_fmpq)


def load_torch_info(ckpt: str, data: str, keys: str | None = None, activation: Any = None
                    ) -> tuple[Problem, Point, TorchLoadInfo]:
    """Problem, point and the parameter mapping of a checkpoint (.pt/.pth/.safetensors) with a data file.
    With a hidden bias the problem's X has a constant-1 column appended (``info.bias_column``); an output
    bias becomes the point's c, exactly (``info.output_bias``); ``activation`` as for ``load_problem``."""
    pb = load_problem(data, activation)
    sd, container, prefix, ignored = read_checkpoint(ckpt)
    return state_dict_point(sd, pb, keys=keys, source=ckpt, prefix=prefix, container=container, ignored=ignored)


def load_torch(ckpt: str, data: str, keys: str | None = None) -> tuple[Problem, Point]:
    pb, pt, _ = load_torch_info(ckpt, data, keys)
    return pb, pt
