"""The optional torch screening path (``screen_arrays(..., backend="torch")``, ``relucert screen
--backend torch``) against the numpy path: the same per-checkpoint quantities to 1e-12 relative and
the same counts, with and without an output bias c; torch stays an optional, lazily imported
dependency."""
import json
import subprocess
import sys

import numpy as np
import pytest

from relucert.core.problem import Problem
from relucert.errors import InputError
from relucert.tools import screen
from relucert.tools.screen import screen_arrays

CLI = [sys.executable, "-m", "relucert.cli"]
FLOATS = ("loss", "grad_A", "grad_W", "grad_c", "min_rel_z", "balance", "norms")
COUNTS = ("near_kink", "tiny", "dead")


def _trajectory(seed, T, m, n, d, k):
    """Random checkpoints with every count non-trivial: the data's first coordinate is positive and
    a third of the neurons have a clearly negative first weight and small others (dead under relu),
    a quarter are scaled down by 1e-3 (tiny for tol_tiny = 1e-2), and tol_kink = 0.2 makes a fair
    share of the random pairs near-kink without any cancellation near the threshold."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, 0] = 1.0 + np.abs(X[:, 0])
    X[n // 2] = 0.0                                   # a zero data row: on no kink, never decides dead
    Y = rng.normal(size=(n, k))
    W = rng.normal(size=(T, m, d))
    A = rng.normal(size=(T, m, k))
    dead = np.arange(m) % 3 == 0
    W[:, dead, 0] = -5.0 - np.abs(W[:, dead, 0])
    W[:, dead, 1:] *= 0.1
    tiny = np.arange(m) % 4 == 1
    W[:, tiny] *= 1e-3
    A[:, tiny] *= 1e-3
    return X, Y, W, A, rng.normal(size=(T, k))


def _same(a, b):
    for name in FLOATS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None, name
            continue
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        assert x.shape == y.shape, name
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=0, err_msg=name)
    for name in COUNTS:
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)


@pytest.mark.parametrize("act, k", [("relu", 1), ("relu", 2), ("leaky_relu:1/10", 1)])
@pytest.mark.parametrize("with_c", [False, True])
def test_torch_backend_matches_numpy(act, k, with_c):
    pytest.importorskip("torch")
    X, Y, W, A, C = _trajectory(3, 40, 9, 11, 3, k)
    pb = Problem.make(X, Y, act, "mse")
    c = C if with_c else None
    ref = screen_arrays(pb, W, A, c=c, tol_kink=0.2, tol_tiny=1e-2, per_neuron=True)
    got = screen_arrays(pb, W, A, c=c, tol_kink=0.2, tol_tiny=1e-2, per_neuron=True, backend="torch")
    _same(ref, got)
    # the counts are not all trivial (else the comparison would say little)
    assert ref.near_kink.min() > 0 and ref.tiny.min() > 0
    assert (ref.dead.min() > 0) == (act == "relu")
    assert (got.grad_c is not None) == with_c


def test_torch_backend_in_chunks_and_float32_input():
    pytest.importorskip("torch")
    X, Y, W, A, C = _trajectory(5, 57, 6, 8, 2, 1)
    pb = Problem.make(X, Y, "relu", "half_mean")
    W32, A32 = W.astype(np.float32), A.astype(np.float32)
    ref = screen_arrays(pb, W32, A32, c=C, tol_kink=0.2, tol_tiny=1e-2, per_neuron=True, chunk=57)
    got = screen_arrays(pb, W32, A32, c=C, tol_kink=0.2, tol_tiny=1e-2, per_neuron=True, chunk=5,
                        backend="torch")
    _same(ref, got)


def test_torch_backend_errors(monkeypatch):
    X, Y, W, A, _ = _trajectory(1, 3, 2, 4, 2, 1)
    pb = Problem.make(X, Y, "relu", "mse")
    with pytest.raises(InputError, match="unknown screening backend 'jax'"):
        screen_arrays(pb, W, A, backend="jax")
    monkeypatch.setitem(sys.modules, "torch", None)       # torch not installed: import fails
    with pytest.raises(InputError) as e:
        screen_arrays(pb, W, A, backend="torch")
    assert "needs PyTorch" in str(e.value) and "\n" not in str(e.value)


def test_torch_is_imported_lazily():
    code = ("import sys, relucert, relucert.tools.screen, relucert.commands.screen_cmd; "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    assert screen.BACKENDS == ("numpy", "torch")


def test_cli_backend_torch(tmp_path):
    pytest.importorskip("torch")
    X, Y, W, A, _ = _trajectory(7, 30, 5, 6, 2, 1)
    p = tmp_path / "traj.npz"
    np.savez(p, X=X, Y=Y, W=W, A=A, step=np.arange(30))
    outs = {}
    for backend in ("numpy", "torch"):
        r = subprocess.run(CLI + ["screen", str(p), "--json", "--no-certify", "--backend", backend],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs[backend] = json.loads(r.stdout)["per_checkpoint"]
    for name in ("loss", "grad_A", "grad_W"):
        np.testing.assert_allclose(outs["torch"][name], outs["numpy"][name], rtol=1e-12, atol=0)
    for name in COUNTS:
        assert outs["torch"][name] == outs["numpy"][name]
    r = subprocess.run(CLI + ["screen", str(p), "--backend", "cupy"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
