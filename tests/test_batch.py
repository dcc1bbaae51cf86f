"""Batch certification (issue 15): every checkpoint of a folder or trajectory, one JSON line each,
on one process, a process pool or a Dask cluster, with the same lines every way."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from relucert import check
from relucert.errors import InputError
from relucert.tools.batch import Job, certify_many, jobs_for, trajectory_length

CLI = [sys.executable, "-m", "relucert.cli"]
HAND = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "hand")
PICK = ["kink_min.json", "origin.json", "tiny_zero.json", "vec_saddle.json"]
EXPECTED = {"kink_min.json": "local_min", "origin.json": "saddle", "tiny_zero.json": "saddle",
            "vec_saddle.json": "saddle"}


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "ckpts"
    d.mkdir()
    for f in PICK:
        shutil.copy(os.path.join(HAND, f), d / f)
    (d / "broken.json").write_text('{"X": [[1')
    (d / "notes.txt").write_text("ignored")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 3, 2))
    A = rng.standard_normal((5, 3, 1))
    np.savez(d / "run.npz", W=W, A=A, X=rng.standard_normal((4, 2)), Y=rng.standard_normal((4, 1)),
             activation="relu", loss_convention="half_mean")
    return d


def _plain(lines):
    return [{k: v for k, v in ln.items() if k not in ("seconds", "certificate")} for ln in lines]


def test_jobs_for_a_folder_and_a_trajectory(folder):
    jobs = jobs_for(str(folder))
    names = [os.path.basename(j.source) for j in jobs]
    assert names == (["broken.json", "kink_min.json", "origin.json"] + [f"run.npz#{i}" for i in range(5)]
                     + ["tiny_zero.json", "vec_saddle.json"])
    assert trajectory_length(str(folder / "run.npz")) == 5
    assert trajectory_length(str(folder / "kink_min.json")) is None
    assert [j.index for j in jobs_for(str(folder / "run.npz"), every=2)] == [0, 2, 4]
    assert [j.index for j in jobs_for(str(folder / "run.npz"), every=3)] == [0, 3, 4]
    with pytest.raises(InputError, match="no such file"):
        jobs_for(str(folder / "nothing"))
    (folder / "m.pt").write_bytes(b"")
    with pytest.raises(InputError, match="needs --data"):
        jobs_for(str(folder))


def test_lines_are_the_same_serial_pool_and_dask(folder):
    jobs = jobs_for(str(folder))
    serial = list(certify_many(jobs, {}))
    assert len(serial) == len(jobs)
    by = {os.path.basename(ln["source"]): ln for ln in serial}
    assert "error" in by["broken.json"] and "not valid JSON" in by["broken.json"]["error"]
    for name, verdict in EXPECTED.items():
        assert by[name]["verdict"] == verdict
        got = check.check_certificate(by[name]["certificate"])
        assert got.ok and got.verdict == verdict
    for i in range(5):
        assert by[f"run.npz#{i}"]["given_verdict"] == "not_stationary"
    pool = list(certify_many(jobs, {}, workers=2))
    assert _plain(pool) == _plain(serial)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        with distributed.Client(cl) as client:
            on_dask = list(certify_many(jobs, {}, dask=client))
    assert _plain(on_dask) == _plain(serial)


def test_progress_and_options_reach_the_pipeline(folder):
    seen = []
    lines = list(certify_many([Job("k", str(folder / "kink_min.json"))], {"refine_mode": "never"},
                              progress=lambda d, t, v: seen.append((d, t))))
    assert seen == [(1, 1)] and lines[0]["verdict"] == "local_min" and lines[0]["about"] == "given point"
    with pytest.raises(InputError, match="workers"):
        list(certify_many([], {}, workers=0))


def test_cli_all(folder, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    r = subprocess.run(CLI + ["certify", str(folder), "--all", "--workers", "2", "--certificates", str(certs)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1                    # one line is an error (broken.json)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 10 and sum("error" in ln for ln in lines) == 1
    for ln in lines:
        if "error" not in ln:
            cert = json.load(open(ln["certificate_file"]))
            assert check.check_certificate(cert).verdict == ln["verdict"]
    r = subprocess.run(CLI + ["certify", str(folder)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "add --all" in r.stderr
    # a folder with --workers is batch certification without --all too (the issue's `certify DIR/ --workers N`)
    r2 = subprocess.run(CLI + ["certify", str(folder) + "/", "--workers", "2"], capture_output=True, text=True,
                        timeout=300)
    assert r2.returncode == 1 and [json.loads(x)["source"] for x in r2.stdout.splitlines()] == \
        [ln["source"] for ln in lines]
    r = subprocess.run(CLI + ["certify", str(folder), "--all", "--certificate", "x.json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--certificates DIR" in r.stderr and "Traceback" not in r.stderr
