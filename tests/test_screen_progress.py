"""Progress of plateau certification: ``certify_plateaus(..., progress=callback)`` reports every
plateau, and ``relucert screen`` draws it with ``commands.progress``'s bar on stderr only when stderr
is a terminal and --quiet is not given."""
import os
import pty
import subprocess
import sys

import numpy as np
import pytest

from relucert.tools.screen import certify_plateaus, detect_plateaus, load_trajectory

from cases import two_plateau_trajectory

CLI = [sys.executable, "-m", "relucert.cli"]


@pytest.fixture(scope="module")
def traj_file(tmp_path_factory):
    """Two plateaus (the synthetic run of tests/cases.py): every neuron tiny, then one grown."""
    p = tmp_path_factory.mktemp("progress") / "traj.npz"
    two_plateau_trajectory(p)
    return str(p)


@pytest.mark.parametrize("workers", [1, 2])
def test_certify_plateaus_reports_each_plateau(traj_file, workers):
    traj = load_trajectory(traj_file)
    from relucert.tools.screen import screen_arrays
    traj.loss = screen_arrays(traj.problem, traj.W, traj.A).loss
    plateaus = detect_plateaus(traj.step, traj.loss)
    assert len(plateaus) == 2
    calls = []
    rows = certify_plateaus(traj, plateaus, workers=workers, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 2), (1, 2), (2, 2)]
    assert [r.verdict for r in rows] == ["saddle", "local_min"]
    # without a callback the rows are the same
    assert [r.verdict for r in certify_plateaus(traj, plateaus, workers=1)] == ["saddle", "local_min"]


def _run_on_tty(args):
    """Run the CLI with stderr on a pseudo-terminal; returns (returncode, stdout, what reached the terminal)."""
    master, slave = pty.openpty()
    try:
        r = subprocess.run(CLI + args, stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120)
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:              # EIO: the terminal's other end is closed and drained
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return r.returncode, r.stdout, b"".join(chunks).decode(errors="replace")


def test_cli_progress_only_on_a_terminal_and_not_quiet(traj_file):
    rc, out, term = _run_on_tty(["screen", traj_file, "--workers", "1"])
    assert rc == 0
    assert "certifying plateaus [" in term and "2/2" in term
    assert "saddle" in out and "certifying plateaus" not in out
    rc, out, term = _run_on_tty(["screen", traj_file, "--workers", "1", "--quiet"])
    assert rc == 0 and term == "" and "saddle" in out
    r = subprocess.run(CLI + ["screen", traj_file, "--workers", "1"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "" and "saddle" in r.stdout


def test_screen_arrays_progress_callback_with_and_without_threads(monkeypatch):
    """``screen_arrays(progress=callback)``: called with (checkpoints done, T), ending at T, on one
    thread and on two (the thread rule forced open: ``THREAD_MIN_WORK`` 0, two free CPUs); the
    numbers are the same either way."""
    from relucert.core.problem import Problem
    from relucert.tools import screen
    from relucert.tools.screen import screen_arrays
    rng = np.random.default_rng(2)
    T, m, n, d = 240, 5, 6, 3
    pb = Problem.make(rng.normal(size=(n, d)), rng.normal(size=(n, 1)), "relu", "mse")
    W, A = rng.normal(size=(T, m, d)), rng.normal(size=(T, m, 1))
    monkeypatch.setattr(screen, "_KERNEL", False)              # the numpy path, whatever is installed
    calls1 = []
    one = screen_arrays(pb, W, A, per_neuron=True, chunk=8, progress=lambda done, total: calls1.append((done, total)))
    assert calls1[-1] == (T, T) and all(t == T for _, t in calls1)
    assert [c for c, _ in calls1] == sorted(c for c, _ in calls1) and len(calls1) == T // 8
    monkeypatch.setattr(screen, "THREAD_MIN_WORK", 0)
    monkeypatch.setattr(screen, "_idle_cpus", lambda: 2)
    monkeypatch.setattr(screen, "_usable_cpus", lambda: 2)
    used = []
    real = screen._run_threaded
    monkeypatch.setattr(screen, "_run_threaded", lambda *a, **k: (used.append(a[2]), real(*a, **k)))
    calls2 = []
    two = screen_arrays(pb, W, A, per_neuron=True, chunk=8, workers=2,
                        progress=lambda done, total: calls2.append((done, total)))
    assert used == [2] and calls2[-1] == (T, T)
    for name in ("loss", "grad_A", "grad_W", "near_kink", "tiny", "dead", "min_rel_z", "balance", "norms"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    # the thread rule itself: too little work, or no free CPU -> no thread pool
    used.clear()
    monkeypatch.setattr(screen, "THREAD_MIN_WORK", T * n * m + 1)
    screen_arrays(pb, W, A, chunk=8, workers=2)
    monkeypatch.setattr(screen, "THREAD_MIN_WORK", 0)
    monkeypatch.setattr(screen, "_idle_cpus", lambda: 1)
    screen_arrays(pb, W, A, chunk=8, workers=2)
    assert used == []


@pytest.mark.parametrize("load, cpus, free", [(0.2, 2, 2), (1.4, 2, 2), (1.6, 2, 1), (3.9, 2, 1), (2.0, 8, 7)])
def test_idle_cpus_rule(monkeypatch, load, cpus, free):
    """At most round(C - L) + 1 threads on C usable CPUs at load L (this process included), >= 1."""
    from relucert.tools import screen
    monkeypatch.setattr(screen, "_usable_cpus", lambda: cpus)
    monkeypatch.setattr(screen.os, "getloadavg", lambda: (load, load, load))
    assert screen._idle_cpus() == free


def test_idle_cpus_without_a_load_average(monkeypatch):
    from relucert.tools import screen
    monkeypatch.setattr(screen, "_usable_cpus", lambda: 2)

    def no_load():
        raise OSError("no load average")
    monkeypatch.setattr(screen.os, "getloadavg", no_load)
    assert screen._idle_cpus() == 2
