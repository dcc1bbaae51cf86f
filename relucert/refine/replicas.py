"""Vector output: near-parallel alive neurons of one activation pattern read as exact replicas
(THEORY §6.3, §7.2): merge each cluster, refine the narrower point, split back exactly."""
from __future__ import annotations

import math

import numpy as np
from flint import fmpq

from relucert.core.problem import Point, Problem, fmpq_to_float
from relucert.refine.classify import Pattern, Tolerances
from relucert.refine.exact import PatternUpdate, updated_pattern
from relucert.refine.scalar import refine_grouped
from relucert.refine.vector import refine_vector


def replica_clusters(point: Point, pat: Pattern, angle: float) -> list:
    """Clusters (>= 2 neurons) of alive neurons with the same activation pattern whose input
    directions are chained by angles below ``angle`` (single linkage)."""
    Wf = point.Wf
    out = []
    for js in pat.alive_groups().values():
        dirs = {j: Wf[j] / np.linalg.norm(Wf[j]) for j in js}
        left = list(js)
        while left:
            cl = [left.pop(0)]
            todo = [cl[0]]
            while todo:
                i = todo.pop()
                near = [j for j in left if math.acos(max(-1.0, min(1.0, float(dirs[i] @ dirs[j])))) < angle]
                for j in near:
                    left.remove(j)
                cl += near
                todo += near
            if len(cl) > 1:
                out.append(sorted(cl))
    return out


def refine_replicas(problem: Problem, start: Point, pat: Pattern, reading: str, tol: Tolerances,
                    pattern_out: list | None = None):
    """Vector output: read near-parallel neurons of one activation pattern as exact replicas.

    Each cluster C is merged into one neuron (u, c) with the cluster's function when its members are
    exactly parallel: u along the contribution-weighted mean direction, c = sum_l |w_l| a_l
    (positive homogeneity); the narrower point is refined exactly (grouped least squares, else
    high-precision Newton); then the cluster is split back into copies (gamma_l u*, beta_l c* / gamma_l)
    with gamma_l = |w_l| / |u*| and beta_l from the projections of the original a_l on c* (sum 1),
    which reproduces the refined narrow network exactly (THEORY §6.3, §7.2).
    With ``pattern_out`` (a list) the Newton on the narrow point may update its pattern
    (``refine_vector``); the wide pattern of the returned point (every copy with its merged neuron's
    signs) is then appended to it as an ``exact.PatternUpdate``.
    Returns (point or None, note), or None when there is nothing to merge."""
    clusters = replica_clusters(start, pat, tol.replica_angle)
    if not clusters:
        return None
    rep = {cl[0]: cl for cl in clusters}
    drop = {j for cl in clusters for j in cl[1:]}
    keep = [j for j in range(start.m) if j not in drop]
    Wf, Af = start.Wf, start.Af
    Wn = np.empty((len(keep), problem.d), dtype=object)
    An = np.empty((len(keep), problem.k), dtype=object)
    for t, j in enumerate(keep):
        if j in rep:
            cl = rep[j]
            wn = [float(np.linalg.norm(Wf[l])) for l in cl]
            om = [wn[i] * float(np.linalg.norm(Af[l])) for i, l in enumerate(cl)]
            if sum(om) <= 0:
                om = [1.0] * len(cl)
            u = sum(om[i] * Wf[l] / wn[i] for i, l in enumerate(cl))
            u = u / np.linalg.norm(u)
            c = sum(wn[i] * Af[l] for i, l in enumerate(cl))
            sc = math.sqrt(max(float(np.linalg.norm(c)), 1e-300))
            Wn[t] = [fmpq(*float(v * sc).as_integer_ratio()) for v in u]
            An[t] = [fmpq(*float(v / sc).as_integer_ratio()) for v in c]
        else:
            Wn[t], An[t] = start.W[j], start.A[j]
    narrow_index = {j: t for t, j in enumerate(keep)}      # snapped pairs name the narrow neurons
    narrow = Point(Wn, An, None if start.c is None else start.c.copy())   # the output bias is carried as it is
    npat = Pattern([pat.status[j] for j in keep], [pat.kinks[j] for j in keep],
                   [(narrow_index[x[0]],) + tuple(x[1:]) for x in pat.snapped if x[0] not in drop],
                   pat.signs[:, keep],
                   [pat.sizes[j] for j in keep], pat.kink_tol)
    names = ", ".join("{" + ",".join(map(str, cl)) + "}" for cl in clusters)
    label = f"{len(clusters)} replica clusters merged ({names}; angle < {tol.replica_angle:g} rad)"
    narrow_out: list = []
    try:
        new, note = refine_grouped(problem, narrow, npat, reading)
        if new is None:
            new, note2 = refine_vector(problem, narrow, npat, reading, pattern_out=narrow_out)
            note = f"{note}; {note2}"
    except (ZeroDivisionError, ValueError, ArithmeticError) as e:
        return None, f"{label}: refinement failed: {e}"
    if new is None:
        return None, f"{label}: {note}"
    W, A = start.W.copy(), start.A.copy()
    for t, j in enumerate(keep):
        if j not in rep:
            W[j], A[j] = new.W[t], new.A[t]
            continue
        u, c = new.W[t].tolist(), new.A[t].tolist()
        un = math.sqrt(sum(fmpq_to_float(v) ** 2 for v in u))
        cc = sum((v * v for v in c), fmpq(0))
        if un == 0 or cc == 0:
            return None, f"{label}: a merged neuron refined to zero"
        gam, raw = {}, {}
        for l in rep[j]:
            g = float(np.linalg.norm(Wf[l])) / un
            gam[l] = fmpq(*g.as_integer_ratio())
            raw[l] = gam[l] * sum((a * b for a, b in zip(start.A[l].tolist(), c)), fmpq(0)) / cc
        if any(v <= 0 for v in raw.values()):
            raw = {l: gam[l] * fmpq(*float(np.linalg.norm(Af[l]) + 1e-300).as_integer_ratio()) for l in rep[j]}
        tot = sum(raw.values(), fmpq(0))
        for l in rep[j]:
            beta = raw[l] / tot
            W[l] = [gam[l] * v for v in u]
            A[l] = [beta * v / gam[l] for v in c]
    if pattern_out is not None:
        # the wide pattern: neuron j keeps its own signs unless the narrow solve updated its column
        signs = pat.signs.copy()
        rounds = []
        if narrow_out:
            nsigns = narrow_out[-1].pattern.signs
            for t, j in enumerate(keep):
                for l in rep.get(j, [j]):
                    signs[:, l] = nsigns[:, t]
            # rounds in wide neuron numbers (a merged neuron by its first member)
            for r in narrow_out[-1].rounds:
                rounds.append(dict(r, pairs=[[keep[p[0]]] + list(p[1:]) for p in r["pairs"]]))
        pattern_out.append(PatternUpdate(updated_pattern(pat, signs), rounds))
    numbers = "; neuron numbers of the narrower point" if narrow_out and narrow_out[-1].rounds else ""
    return Point(W, A, None if new.c is None else new.c.copy()), f"{label}, the narrower point refined ({note}{numbers}), and split back exactly"
