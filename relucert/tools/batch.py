"""Batch certification: every checkpoint of a folder or of a trajectory, on a process pool or a
Dask cluster, one JSON-able summary per checkpoint (``relucert certify DIR/ --workers N``).

A job is (source label, path, trajectory index or None, torch data file or None); each worker
loads its own input with the ordinary loaders (so nothing but paths crosses a process boundary)
and runs ``pipeline.certify_checkpoint`` on it, certificates re-checked as usual.  A bad file is a
line with an ``error`` (the one-line message), never the end of the batch."""
from __future__ import annotations

import os
import time
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from relucert.errors import InputError, RelucertError, short_message
from relucert.io import load, load_torch_info
from relucert.pipeline import certify_checkpoint
from relucert.tools.parallel import backend

POINT_SUFFIXES = (".json", ".npz")
TORCH_SUFFIXES = (".pt", ".pth", ".safetensors")


@dataclass(frozen=True)
class Job:
    source: str                 # what the line names: the file, and "#index" for a trajectory
    path: str
    index: int | None = None
    data: str | None = None     # data file for a torch checkpoint
    keys: str | None = None
    activation: str | None = None   # --activation for a data file that does not carry one


def trajectory_length(path: str) -> int | None:
    """The number of checkpoints of a trajectory .npz (W of shape T x m x d), read from the array
    header only; None for a single-point .npz or a file that is not one (the loader then says why)."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open("W.npy") as fh:
            version = np.lib.format.read_magic(fh)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape = reader(fh)[0]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return int(shape[0]) if len(shape) == 3 else None


def jobs_for(path: str, *, data: str | None = None, keys: str | None = None, every: int = 1,
             activation: str | None = None) -> list[Job]:
    """The checkpoints under ``path``: a folder (its .json / .npz point files and certificates, every
    checkpoint of its trajectory .npz files, and its torch checkpoints when ``data`` is given), or
    one trajectory .npz (its checkpoints, every ``every``-th and the last)."""
    if every < 1:
        raise InputError(f"--every must be >= 1, got {every}")
    if os.path.isdir(path):
        names = sorted(os.listdir(path))
        files = [os.path.join(path, f) for f in names if f.lower().endswith(POINT_SUFFIXES + TORCH_SUFFIXES)]
        if not files:
            raise InputError(f"{path}: no .json, .npz, .pt, .pth or .safetensors files in this folder")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise InputError(f"no such file or folder: {path}")
    jobs = []
    for f in files:
        low = f.lower()
        if low.endswith(TORCH_SUFFIXES):
            if data is None:
                raise InputError(f"{f}: a torch checkpoint needs --data DATA (X, Y, activation)")
            jobs.append(Job(f, f, None, data, keys, activation))
        elif low.endswith(".npz") and (T := trajectory_length(f)) is not None:
            idx = sorted(set(range(0, T, every)) | {T - 1})
            jobs += [Job(f"{f}#{i}", f, i) for i in idx]
        else:
            jobs.append(Job(f, f))
    return jobs


def summary(report, seconds: float) -> dict:
    """The line for one checkpoint: the answer first, then where it came from."""
    j = report.to_json()
    out = {"verdict": j["verdict"], "about": j["about"], "reason": j["reason"],
           "escape_neurons": j["escape_neurons"], "loss": j["loss"], "moved": j["moved"],
           "pattern_margin": j.get("pattern_margin"), "given_verdict": j["given"]["verdict"],
           "n": j["n"], "d": j["d"], "k": j["k"], "m": j["m"], "activation": j["activation"],
           "float_gradient_relative": j["float_gradient_relative"],
           "converged": None, "seconds": round(seconds, 3), "certificate": report.certificate}
    if report.converged is not None:
        c = j["converged"]
        out["converged"] = {k: c[k] for k in ("method", "stopped", "steps", "start_loss", "end_loss",
                                              "loss_change", "distance", "verdict")}
    return out


def certify_job(job: Job, options: dict) -> dict:
    """Load and certify one checkpoint; an input problem becomes an ``error`` line."""
    t0 = time.perf_counter()
    try:
        if job.data is not None:
            problem, point, _ = load_torch_info(job.path, job.data, job.keys, job.activation)
        else:
            problem, point = load(job.path, job.index)
        report = certify_checkpoint(problem, point, **options)
    except (InputError, RelucertError) as e:
        return {"source": job.source, "error": short_message(str(e)), "seconds": round(time.perf_counter() - t0, 3)}
    return {"source": job.source, **summary(report, time.perf_counter() - t0)}


def certify_many(jobs: list[Job], options: dict | None = None, *, workers: int = 1, dask: Any = None,
                 progress: Callable[[int, int, Any], None] | None = None) -> Iterator[dict]:
    """Certify every job (``options`` are ``certify_checkpoint``'s keyword arguments; a progress
    callback cannot cross processes and is not passed on), yielding one line per job in job order
    as results arrive in order; ``progress(done, total, None)`` after each."""
    options = dict(options or {})
    options.pop("progress", None)
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if dask is None and (workers == 1 or len(jobs) <= 1):
        for i, job in enumerate(jobs):
            line = certify_job(job, options)
            if progress is not None:
                progress(i + 1, len(jobs), None)
            yield line
        return
    be = backend(workers, dask)
    try:
        futures = [be.submit(certify_job, job, options) for job in jobs]
        for i, fut in enumerate(futures):
            line = fut.result()
            if progress is not None:
                progress(i + 1, len(jobs), None)
            yield line
    finally:
        be.close()


__all__ = ["Job", "jobs_for", "certify_job", "certify_many", "summary", "trajectory_length"]
