"""The screening kernel (``screen_arrays``) against a brute-force oracle, on both of its paths: the
fused numba kernel (when numba is installed) and the numpy fallback, forced with monkeypatch.

The oracle below is this test's own: a plain per-checkpoint numpy loop written from the
definitions (docs/theory.md §1-§3), sharing no code with relucert.tools.screen."""
import numpy as np
import pytest

from relucert.core.problem import Problem
from relucert.tools import screen
from relucert.tools.screen import screen_arrays

ACTS = {"relu": (1.0, 0.0), "leaky_relu:0.1": (1.0, 0.1), "abs": (1.0, -1.0)}
COUNTS = ("near_kink", "tiny", "dead")
FLOATS = ("loss", "grad_A", "grad_W")
PER_NEURON = ("min_rel_z", "balance", "norms")


def oracle(X, Y, act, loss, W, A, tol_kink=1e-4, tol_tiny=1e-6):
    """The tests' brute-force oracle: every checkpoint on its own, straight from the definitions."""
    ap, am = ACTS[act]
    n, k = Y.shape
    T, m, _ = W.shape
    factor = 1.0 if loss == "half_mean" else 2.0 / k
    xnorm = np.sqrt((X ** 2).sum(axis=1))
    nonzero = xnorm > 0
    xscale, yscale = xnorm.max(), max(np.abs(Y).max(), 1e-300)
    res = {name: [] for name in COUNTS + FLOATS + PER_NEURON}
    for t in range(T):
        w, a = W[t], A[t]
        wnorm = np.sqrt((w ** 2).sum(axis=1))
        anorm = np.sqrt((a ** 2).sum(axis=1))
        Z = X @ w.T                                          # z_ij = w_j . x_i
        S = np.where(Z > 0, ap, am)                          # sigma'(z), alpha_minus at 0
        E = (S * Z) @ a - Y                                  # residuals
        rel = np.full((n, m), np.inf)                        # |z_ij| / |x_i|, inf for x_i = 0
        rel[nonzero] = np.abs(Z[nonzero]) / xnorm[nonzero, None]
        near = rel < tol_kink * wnorm[None, :]
        dLdA = (S * Z).T @ E / n
        dLdW = np.zeros_like(w)
        for j in range(m):
            for i in range(n):
                if not near[i, j]:
                    dLdW[j] += S[i, j] * (E[i] @ a[j]) * X[i] / n
        res["loss"].append(factor * (E ** 2).sum() / (2 * n))
        res["grad_A"].append(np.sqrt((dLdA ** 2).sum()))
        res["grad_W"].append(np.sqrt((dLdW ** 2).sum()))
        res["near_kink"].append(int(near.sum()))
        res["tiny"].append(int((anorm * wnorm * xscale / yscale < tol_tiny).sum()))
        res["dead"].append(int((Z[nonzero] < 0).all(axis=0).sum()) if am == 0 else 0)
        res["min_rel_z"].append(rel.min(axis=0) / np.maximum(wnorm, 1e-300))
        res["balance"].append(wnorm ** 2 - anorm ** 2)
        res["norms"].append(np.sqrt(wnorm ** 2 + anorm ** 2))
    return {name: np.array(v) for name, v in res.items()}


def trajectory(n, m, d, k, T, seed, special=True):
    """Random data and checkpoints, with (``special``) a zero data row, a bias column of ones, and
    neurons exactly on a kink, near one, dead, and tiny, in some checkpoints."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = rng.normal(size=(n, k))
    W = rng.normal(size=(T, m, d))
    A = rng.normal(size=(T, m, k))
    if special and d >= 2 and n >= 3 and m >= 3:
        X[:, -1] = 1.0                                   # bias column
        X[1, :-1] = np.round(4 * X[1, :-1]) / 4          # a data point with dyadic entries
        X[2] = 0.0                                       # a zero data row
        W[:, 0, :-1] = (np.round(8 * np.abs(W[:, 0, :-1])) + 1) / 8
        W[:, 0, -1] = -(X[1, :-1] @ W[:, 0, :-1].T)      # neuron 0 exactly on the kink of x_1 (exact sums),
        W[1::2, 0] += 1e-9 * rng.normal(size=(len(W[1::2]), d))   # or near it
        W[::3, 1, :-1] *= 1e-3                           # neuron 1 dead (every z < 0) in every third checkpoint
        W[::3, 1, -1] = -5.0
        W[1::4, 2] *= 1e-5                               # neuron 2 tiny in every fourth checkpoint
        A[1::4, 2] *= 1e-5
    return X, Y, W, A


@pytest.fixture(params=["numba", "numpy"])
def path(request, monkeypatch):
    """Force one path of screen_arrays: the fused kernel at any size, or the numpy fallback."""
    if request.param == "numba":
        pytest.importorskip("numba")
        if screen._fused_kernel() is None:
            pytest.skip("the numba kernel did not build")
        monkeypatch.setattr(screen, "_NUMBA_MIN_WORK", 0)
    else:
        monkeypatch.setattr(screen, "_KERNEL", False)
    return request.param


def _check(sc, ref, rtol=1e-11, per_neuron=True):
    for name in COUNTS:
        assert np.array_equal(getattr(sc, name), ref[name]), (name, getattr(sc, name), ref[name])
    for name in FLOATS:
        got = getattr(sc, name)
        scale = np.abs(ref[name]).max() + 1e-300
        assert np.allclose(got, ref[name], rtol=rtol, atol=rtol * scale), (name, np.abs(got - ref[name]).max())
    for name in PER_NEURON if per_neuron else ():
        got = getattr(sc, name)
        assert got is not None and got.dtype == np.float32 and got.shape == ref[name].shape
        want = ref[name].astype(np.float32)
        finite = np.isfinite(want)
        assert np.array_equal(np.isfinite(got), finite), name
        assert np.allclose(got[finite], want[finite], rtol=3e-7, atol=1e-30), name


SHAPES = [  # n, m, d, k, T, activation, loss
    (7, 50, 3, 1, 40, "relu", "mse"),
    (5, 3, 2, 1, 30, "relu", "half_mean"),
    (1, 1, 1, 1, 9, "relu", "mse"),
    (9, 13, 5, 2, 25, "leaky_relu:0.1", "mse"),
    (6, 8, 4, 3, 20, "abs", "half_mean"),
    (33, 17, 9, 1, 12, "relu", "mse"),
    (40, 30, 10, 2, 6, "leaky_relu:0.1", "half_mean"),
    (4, 6, 8, 1, 15, "relu", "mse"),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "n{}-m{}-d{}-k{}-T{}-{}".format(*s[:6]))
def test_screen_matches_the_brute_force_oracle(path, shape):
    n, m, d, k, T, act, loss = shape
    X, Y, W, A = trajectory(n, m, d, k, T, seed=n * 1000 + m * 10 + d)
    pb = Problem.make(X, Y, act, loss)
    sc = screen_arrays(pb, W, A, per_neuron=True)
    _check(sc, oracle(pb.Xf, pb.Yf, act, loss, W, A))
    # the special neurons are there (so the counts are tested, not just zeros)
    if d >= 2 and n >= 3 and m >= 3:
        assert sc.near_kink.min() >= 1 and sc.tiny.max() >= 1
        if act == "relu":
            assert sc.dead.max() >= 1


def test_screen_other_tolerances(path):
    X, Y, W, A = trajectory(8, 20, 3, 1, 30, seed=5)
    pb = Problem.make(X, Y, "relu", "mse")
    for tk, tt in ((1e-2, 1e-3), (0.0, 0.0), (0.5, 10.0)):
        _check(screen_arrays(pb, W, A, tol_kink=tk, tol_tiny=tt, per_neuron=True),
               oracle(pb.Xf, pb.Yf, "relu", "mse", W, A, tol_kink=tk, tol_tiny=tt))


def test_chunks_threads_and_dtypes_do_not_change_results(path, monkeypatch):
    # threads really run here: below THREAD_MIN_WORK (or on a busy machine) the rule picks one
    monkeypatch.setattr(screen, "THREAD_MIN_WORK", 0)
    monkeypatch.setattr(screen, "_idle_cpus", lambda: 2)
    X, Y, W, A = trajectory(7, 12, 3, 1, 103, seed=11)
    pb = Problem.make(X, Y, "relu", "mse")
    ref = screen_arrays(pb, W, A, per_neuron=True, chunk=8)
    runs = [screen_arrays(pb, W, A, per_neuron=True, chunk=8, workers=2)]
    if path == "numba":           # the kernel does every checkpoint on its own: any chunking gives the same bits
        runs += [screen_arrays(pb, W, A, per_neuron=True, chunk=c, workers=w) for c, w in ((1, 1), (None, 1), (5, 2))]
    for sc in runs:
        for name in COUNTS + FLOATS + PER_NEURON:
            assert np.array_equal(getattr(sc, name), getattr(ref, name)), name
    # float32 input (a memory-mapped trajectory, say) is read as float64; read-only input is fine
    W32, A32 = W.astype(np.float32), A.astype(np.float32)
    W32.flags.writeable = False
    sc = screen_arrays(pb, W32, A32, per_neuron=False, chunk=8)
    assert sc.min_rel_z is None
    _check(sc, oracle(pb.Xf, pb.Yf, "relu", "mse", W32.astype(float), A32.astype(float)), per_neuron=False)


def _kernel_and_fallback(pb, W, A):
    """The screen with the fused kernel (at any size) and with the numpy fallback."""
    saved = screen._KERNEL, screen._NUMBA_MIN_WORK
    try:
        screen._NUMBA_MIN_WORK = 0
        fast = screen_arrays(pb, W, A, per_neuron=True)
        screen._KERNEL = False
        slow = screen_arrays(pb, W, A, per_neuron=True)
    finally:
        screen._KERNEL, screen._NUMBA_MIN_WORK = saved
    return fast, slow


def test_both_paths_agree():
    pytest.importorskip("numba")
    if screen._fused_kernel() is None:
        pytest.skip("the numba kernel did not build")
    X, Y, W, A = trajectory(11, 40, 6, 2, 50, seed=3)
    pb = Problem.make(X, Y, "leaky_relu:0.1", "mse")
    fast, slow = _kernel_and_fallback(pb, W, A)
    for name in COUNTS + PER_NEURON:
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    for name in FLOATS:
        assert np.allclose(getattr(fast, name), getattr(slow, name), rtol=1e-13, atol=0), name


def test_fallback_without_numba(monkeypatch):
    """No numba (or RELUCERT_NO_NUMBA=1): no kernel, and the screen still works."""
    import sys
    monkeypatch.setattr(screen, "_KERNEL", None)
    monkeypatch.setitem(sys.modules, "numba", None)          # import numba raises ImportError
    assert screen._fused_kernel() is None and screen._KERNEL is False
    monkeypatch.setattr(screen, "_KERNEL", None)
    monkeypatch.delitem(sys.modules, "numba")
    monkeypatch.setenv("RELUCERT_NO_NUMBA", "1")
    assert screen._fused_kernel() is None
    monkeypatch.setattr(screen, "_KERNEL", None)
    assert screen._fused_kernel(load=False) is None and screen._KERNEL is None   # not looked for
    monkeypatch.setattr(screen, "_NUMBA_MIN_WORK", 0)
    X, Y, W, A = trajectory(5, 4, 3, 1, 10, seed=2)
    pb = Problem.make(X, Y, "relu", "mse")
    _check(screen_arrays(pb, W, A, per_neuron=True), oracle(pb.Xf, pb.Yf, "relu", "mse", W, A))


@pytest.mark.parametrize("chunks, workers", [(1, 2), (5, 2), (6, 2), (7, 2), (100, 2), (333, 3)])
def test_thread_runner_does_every_chunk_once(chunks, workers, monkeypatch):
    monkeypatch.setattr(screen, "PROBE_EVERY", 4)
    seen = []
    screen._run_threaded(seen.append, list(range(chunks)), workers)
    assert sorted(seen) == list(range(chunks))


def test_workers_capped_by_usable_cpus(monkeypatch):
    monkeypatch.setattr(screen, "_usable_cpus", lambda: 1)
    called = []
    monkeypatch.setattr(screen, "_run_threaded", lambda *a, **k: called.append(a))
    X, Y, W, A = trajectory(5, 4, 3, 1, 200, seed=4)
    pb = Problem.make(X, Y, "relu", "mse")
    screen_arrays(pb, W, A, chunk=2, workers=8)
    assert called == []                                      # one CPU: no thread pool at all


def _fma_dot(x, w):
    """sum_q x_q w_q in the order of q with fused multiply-adds from 0 (exact arithmetic, rounded once a step)."""
    from fractions import Fraction
    acc = 0.0
    for a, b in zip(x, w):
        acc = float(Fraction(a) * Fraction(b) + Fraction(acc))
    return acc


def test_counts_agree_where_z_is_only_a_rounding_error():
    """Data points exactly on a kink except for rounding: z = w_0 + 0.7 w_1 with w_0 = -fl(0.7 w_1)
    is 0 summed without fused multiply-adds and the rounding error of 0.7 w_1 (of either sign) with
    them.  The other points are on the negative side, so whether the neuron is dead hangs on that
    sign: the kernel must decide it as numpy's path does (as the old screen did).  Where this
    machine's BLAS does not sum as the kernel does (in order, with fused multiply-adds) there is
    nothing to compare."""
    pytest.importorskip("numba")
    if screen._fused_kernel() is None:
        pytest.skip("the numba kernel did not build")
    rng = np.random.default_rng(8)
    m, T = 64, 6
    X = np.array([[1.0, 0.7], [1.0, 0.5], [1.0, -0.3], [1.0, 0.0], [0.0, 0.0]])   # bias first
    Y = rng.normal(size=(5, 1))
    W = np.empty((T, m, 2))
    W[:, :, 1] = rng.uniform(0.5, 2.0, size=(T, m))
    W[:, :, 0] = -(0.7 * W[:, :, 1])
    A = rng.normal(size=(T, m, 1))
    Z = X @ W[0].T
    if not np.array_equal(Z, [[_fma_dot(x, w) for w in W[0]] for x in X]):
        pytest.skip("this BLAS does not sum X @ W.T in order with fused multiply-adds")
    assert (Z[0] < 0).sum() > 10 and (Z[0] > 0).sum() > 10 and (Z[1:4] < 0).all()
    pb = Problem.make(X, Y, "relu", "mse")
    fast, slow = _kernel_and_fallback(pb, W, A)
    ref = oracle(pb.Xf, pb.Yf, "relu", "mse", W, A)
    assert 10 < ref["dead"].min() and ref["dead"].max() < m - 10       # the signs decide
    for name in COUNTS:
        assert np.array_equal(getattr(fast, name), ref[name]), name
        assert np.array_equal(getattr(slow, name), ref[name]), name
    assert np.array_equal(fast.min_rel_z, slow.min_rel_z)


def test_one_output_square_is_einsum():
    """screen_arrays takes |a_j|^2 as a_j^2 for one output: einsum's sum of one product, bit for bit."""
    A = np.random.default_rng(1).normal(size=(50, 7, 1)) * np.logspace(-200, 150, 50)[:, None, None]
    assert np.array_equal(np.square(A[:, :, 0]), np.einsum("bmk,bmk->bm", A, A))


class _FakeClock:
    """perf_counter for _run_threaded: a chunk on a worker thread costs ``thread_cost``, on the
    calling thread 1 (deterministic: no real timing)."""

    def __init__(self, thread_cost):
        import threading
        self.now, self.cost, self.lock, self.main = 0.0, thread_cost, threading.Lock(), threading.get_ident()
        self.on_threads = 0

    def perf_counter(self):
        return self.now

    def chunk(self, _s):
        import threading
        with self.lock:
            threaded = threading.get_ident() != self.main
            self.on_threads += threaded
            self.now += self.cost if threaded else 1.0


@pytest.mark.parametrize("thread_cost, most_on_threads", [(2.0, False), (0.3, True)])
def test_thread_runner_probes_losing_threads_less_often(thread_cost, most_on_threads, monkeypatch):
    # threads twice as slow: after the first probes they are re-timed ever less often (PROBE_BACKOFF),
    # so almost every chunk runs on one thread; threads 3x faster: almost every chunk runs on them
    clock = _FakeClock(thread_cost)
    monkeypatch.setattr(screen, "time", clock)
    chunks = 6000
    seen = []

    def one(s):
        clock.chunk(s)
        seen.append(s)
    screen._run_threaded(one, list(range(chunks)), 2)
    assert sorted(seen) == list(range(chunks))
    if most_on_threads:
        assert clock.on_threads > 0.9 * chunks
    else:
        # without the back-off: 4 of every 68 chunks (6 %) on the losing threads
        assert clock.on_threads < 0.015 * chunks


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_small_d_paths_agree_with_numpy(d):
    """The kernel's one-pass paths for d <= 3 (and the general one): counts and the per-neuron
    smallest |z| equal to the numpy pass's, with points near the kinks."""
    pytest.importorskip("numba")
    if screen._fused_kernel() is None:
        pytest.skip("the numba kernel did not build")
    X, Y, W, A = trajectory(7, 50, d, 1, 40, seed=20 + d)
    pb = Problem.make(X, Y, "relu", "mse")
    fast, slow = _kernel_and_fallback(pb, W, A)
    for name in COUNTS:
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    if np.array_equal(X @ W[0].T, [[_fma_dot(x, w) for w in W[0]] for x in X]):   # BLAS sums as the kernel
        assert np.array_equal(fast.min_rel_z, slow.min_rel_z)


@pytest.mark.parametrize("d,k", [(1, 1), (3, 1), (2, 3), (7, 2), (10, 1)])
def test_kernel_set_up_is_the_numpy_norms_bit_for_bit(d, k):
    """The kernel's per-checkpoint set-up (_fk_norms): W[b], A[b] transposed, the squared norms
    summed as _sq_norms sums them (no fused multiply-add: entries chosen so that one would show),
    |w_j|, the kink thresholds, and the accumulators reset."""
    pytest.importorskip("numba")
    if screen._fused_kernel() is None:
        pytest.skip("the numba kernel did not build")
    rng = np.random.default_rng(40 + d)
    B, m = 3, 37
    W = rng.normal(size=(B, m, d)) * (1 + 2.0 ** -30)
    A = rng.normal(size=(B, m, k)) * (1 + 2.0 ** -29)
    wn2_ref, an2_ref = screen._sq_norms(W), screen._sq_norms(A)
    for b in range(B):
        Wt, At = np.full((d, m), np.nan), np.full((k, m), np.nan)
        wn2, an2, wn, thr, mr = (np.full(m, np.nan) for _ in range(5))
        alive = np.full(m, 7, dtype=np.int64)
        G, GWt = np.full((k, m), np.nan), np.full((d, m), np.nan)
        screen._fk_norms_jit(W, A, b, Wt, At, wn2, an2, wn, thr, mr, alive, G, GWt, 1e-4)
        assert np.array_equal(Wt, W[b].T) and np.array_equal(At, A[b].T)
        assert np.array_equal(wn2, wn2_ref[b]) and np.array_equal(an2, an2_ref[b])
        assert np.array_equal(wn, np.sqrt(wn2_ref[b])) and np.array_equal(thr, 1e-4 * np.sqrt(wn2_ref[b]))
        assert np.all(mr == np.inf) and not alive.any() and not G.any() and not GWt.any()
