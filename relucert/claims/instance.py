"""An instance of a claim: a problem and a point (or other exact data), with how it was built."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from flint import fmpq

from relucert.core.problem import Point, Problem, to_fmpq


def jsonable(v: Any) -> Any:
    """Exact numbers become strings ('p/q'); containers are copied; other scalars kept."""
    if isinstance(v, (fmpq, Fraction)):
        return str(v)
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def q(v: Any) -> fmpq:
    """An exact number from a meta entry (string, int, fmpq)."""
    return to_fmpq(v, "meta value")


def qvec(v: list) -> list:
    return [q(x) for x in v]


def qmat(rows: list) -> np.ndarray:
    """2-D object array of fmpq from nested lists of exact strings."""
    out = np.empty((len(rows), len(rows[0]) if rows else 0), dtype=object)
    for i, r in enumerate(rows):
        for j, x in enumerate(r):
            out[i, j] = q(x)
    return out


@dataclass
class Instance:
    """``problem``/``point`` in relucert's exact types (None for instances of other kinds,
    e.g. deep networks); ``kind`` names the construction; ``meta`` holds everything else a claim
    needs, JSON-ready (exact numbers as strings)."""

    problem: Problem | None = None
    point: Point | None = None
    kind: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.meta = jsonable(self.meta)
        if self.problem is not None and self.point is not None:
            self.point.validate(self.problem)

    # ---- JSON (the input schema of `relucert certify`, plus kind and meta) ---------------------
    def to_json(self) -> dict:
        out: dict = {}
        if self.problem is not None:
            out.update(self.problem.to_json())
        if self.point is not None:
            out.update(self.point.to_json())
        out["kind"] = self.kind
        out["meta"] = jsonable(self.meta)
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "Instance":
        problem = point = None
        if "X" in obj and "Y" in obj:
            problem = Problem.make(obj["X"], obj["Y"], obj.get("activation", "relu"), obj.get("loss", "half_mean"))
            if "W" in obj and "A" in obj:
                point = Point.make(obj["W"], obj["A"], problem)
        return cls(problem, point, obj.get("kind", ""), dict(obj.get("meta", {})))

    # ---- size, for choosing the smallest counterexample -----------------------------------------
    def size(self) -> tuple:
        """(number of exact entries, total characters of their strings): smaller is simpler."""
        j = self.to_json()
        entries = 0
        chars = 0

        def walk(v):
            nonlocal entries, chars
            if isinstance(v, list):
                for x in v:
                    walk(x)
            elif isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, (str, int)):
                entries += 1
                chars += len(str(v))

        for key in ("X", "Y", "W", "A", "meta"):
            if key in j:
                walk(j[key])
        return entries, chars

    def summary(self) -> str:
        if self.problem is None:
            return f"{self.kind} instance"
        pb = self.problem
        m = self.point.m if self.point is not None else 0
        return f"{self.kind}: n={pb.n} d={pb.d} k={pb.k} m={m} activation={pb.activation.name}"

    def __repr__(self) -> str:
        return f"Instance({self.summary()})"
