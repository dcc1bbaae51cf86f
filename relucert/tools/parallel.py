"""Where independent jobs run: in this process, in a local process pool, or on a Dask cluster;
used by claim campaigns and batch certification.  ``backend(workers, dask)`` returns an object
with ``submit(fn, *args) -> future`` (``future.result()``) and ``close()``."""
from __future__ import annotations

from typing import Any

from relucert.errors import InputError


class Serial:
    """Runs each job at submission, in this process."""

    def submit(self, fn, *args):
        class _Done:
            def __init__(self, v):
                self.v = v

            def result(self):
                return self.v
        return _Done(fn(*args))

    def close(self):
        pass


class Pool:
    """A local process pool (fork where available: the package is imported once)."""

    def __init__(self, workers: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        self.ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)

    def submit(self, fn, *args):
        return self.ex.submit(fn, *args)

    def close(self):
        self.ex.shutdown(wait=True, cancel_futures=True)


class Dask:
    """A Dask cluster: a scheduler address (connected and closed here) or an existing Client."""

    def __init__(self, address: Any):
        try:
            from distributed import Client
        except ImportError:
            raise InputError("--dask needs dask.distributed: pip install 'dask[distributed]'") from None
        self.own = False
        if isinstance(address, str):
            self.client = Client(address, timeout="20s")
            self.own = True
        else:
            self.client = address          # an existing Client
        self.ex = self.client

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def close(self):
        if self.own:
            self.client.close()


def backend(workers: int, dask: Any = None):
    """Dask when ``dask`` is given, else a pool of ``workers`` processes, else this process."""
    if dask is not None:
        return Dask(dask)
    if workers <= 1:
        return Serial()
    return Pool(workers)
