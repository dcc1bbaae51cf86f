"""The exact first-order quantities of a large problem without any n x m exact array (issue 15).

The values are the ones of ``formulas.forward`` / ``output_grad`` / ``linear_part`` (docs/theory.md
§1-§3), exactly; only the evaluation differs.  It applies when the entries of each of X, W, A, Y
and c have a common denominator of at most MAX_DEN_BITS bits (float checkpoints: a power of two)
and the non-zero entries of X and W lie between 2^-480 and 2^480 (none rounds to the float 0);
otherwise ``first_order`` returns None and the caller uses the generic exact formulas.

1. Signs of z_ij = w_j . x_i (a filter in the sense of filtered exact predicates).  With xf, wf the
   nearest float64 of x, w (relative error <= u = 2^-53: no underflow in that range) and zf the
   float64 dot product computed in ANY summation order (BLAS, FMA or not),

       |z - zf| <= (gamma_d + 3u) / (1 - gamma_d) * fl(|xf| . |wf|),   gamma_d = d u / (1 - d u),

   so zf > bound proves z > 0 and zf < -bound proves z < 0.  Every pair the bound cannot decide is
   computed exactly (integers); rows x_i = 0 and neurons w_j = 0 are exact zeros.  This runs in row
   blocks and keeps only the 0/1 pattern B_ij = [z_ij > 0], bit-packed, and the exact kink set.

2. With s_ij = am + (ap - am) B_ij (am = sigma'(0) on kinks, as ``slopes``), for each output c:

       f_ic = c_c + am x_i . (sum_j a_jc w_j) + (ap - am) x_i . (B @ (a_c o W))_i
       n Lin_jc = am sum_i e_ic x_i + (ap - am) (B^T @ (e_c o X))_j
       G_jc = Lin_jc . w_j                      (h_ij = s_ij z_ij, also where z_ij = 0)

3. B @ P for an integer matrix P (the rationals over their common denominator)
   exactly with float64 BLAS: P is cut into signed limbs of L bits with rows * 2^L <= 2^52, so every
   partial sum of B @ limb is an integer below 2^53 and exact whatever the order; the limbs are
   recombined with Python integers on the small (n x d or m x d) results only.
"""
from __future__ import annotations

import math

import numpy as np
from flint import fmpq

from relucert.core.linalg import derived, freeze

# ExactState uses this evaluation from n * m >= FAST_MIN_PAIRS (smaller problems: the generic
# formulas, which are fast there); tests lower it to exercise both paths on the same instances.
FAST_MIN_PAIRS = 50_000
BLOCK_ENTRIES = 1 << 22          # float64 entries of one row block of the n x m filter arrays
MAX_DEN_BITS = 4096              # beyond this common denominator of X, W, A, Y or c: the generic formulas
RANGE_EXP = 480                  # non-zero |x|, |w| must lie in [2^-RANGE_EXP, 2^RANGE_EXP]
_U = 2.0 ** -53


def common_ints(M: np.ndarray, max_bits: int | None = None) -> tuple[np.ndarray, int] | None:
    """(integer object array N, D) with M = N / D exactly, D the lcm of the denominators; None when
    D has more than ``max_bits`` bits (then the generic formulas are the better route)."""
    flat = M.ravel().tolist()
    qs = [int(v.q) for v in flat]
    D = math.lcm(*set(qs)) if qs else 1
    if max_bits is not None and D.bit_length() > max_bits:
        return None
    mult = {q: D // q for q in set(qs)}
    out = np.empty(len(flat), dtype=object)
    out[:] = [int(v.p) * mult[q] for v, q in zip(flat, qs)]
    return out.reshape(M.shape), D


def _data_ints(M: np.ndarray) -> tuple[np.ndarray, int] | None:
    """common_ints(M, MAX_DEN_BITS), its integer array read-only (it may be cached and shared)."""
    got = common_ints(M, MAX_DEN_BITS)
    return None if got is None else (freeze(got[0]), got[1])


def _to_float(N: np.ndarray, D: int) -> np.ndarray:
    """Nearest float64 of N / D (Python's int / int is correctly rounded)."""
    return np.array([v / D for v in N.ravel().tolist()], dtype=np.float64).reshape(N.shape)


def _in_range(F: np.ndarray) -> bool:
    a = np.abs(F[F != 0])
    return bool(np.all(np.isfinite(a)) and (a.size == 0 or (a.min() >= 2.0 ** -RANGE_EXP
                                                             and a.max() <= 2.0 ** RANGE_EXP)))


def limb_bits(rows: int) -> int:
    """L with rows * 2^L <= 2^52: sums of ``rows`` products of a 0/1 entry with an L-bit limb are exact."""
    return 52 - max(1, int(rows).bit_length())


def split_limbs(P: np.ndarray, L: int) -> np.ndarray:
    """Signed L-bit limbs of an integer object array: P = sum_t 2^(L t) out[t], |out[t]| < 2^L."""
    absP = np.abs(P)
    bits = int(max(absP.ravel().tolist(), default=0)).bit_length()
    T = max(1, -(-bits // L))
    mask = (1 << L) - 1
    neg = np.asarray(P < 0, dtype=bool)
    out = np.empty((T,) + P.shape, dtype=np.float64)
    for t in range(T):
        out[t] = ((absP >> (L * t)) & mask).astype(np.float64)
    out[:, neg] *= -1.0
    return out


def join_limbs(R: np.ndarray, L: int) -> np.ndarray:
    """Inverse of split_limbs on exact float64 integer results: sum_t 2^(L t) R[t] as Python ints."""
    acc = R[0].astype(np.int64).astype(object)
    for t in range(1, R.shape[0]):
        acc = acc + (R[t].astype(np.int64).astype(object) << (L * t))
    return acc


def _rowdot(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two integer object arrays (Python ints, exact)."""
    return (U * V).sum(axis=1) if U.shape[1] else np.zeros(U.shape[0], dtype=object)


class FastFirstOrder:
    """Exact F, E (n x k), Lin (m x k x d), G (m x k), the sign pattern and the kink sets of a point."""

    def __init__(self, n, m, d, k, Xn, Dx, Wn, Dw):
        self.n, self.m, self.d, self.k = n, m, d, k
        self.Xn, self.Dx, self.Wn, self.Dw = Xn, Dx, Wn, Dw      # X = Xn / Dx, W = Wn / Dw
        self.packed: np.ndarray | None = None      # n x ceil(m/8) bits of B = [z > 0]
        self.poscount = np.zeros(m, dtype=np.int64)  # positives per neuron over non-zero rows
        self.extra_kinks: dict[int, list[int]] = {}  # z_ij = 0 with x_i != 0, w_j != 0
        self.zero_rows = np.zeros(n, dtype=bool)
        self.zero_cols = np.zeros(m, dtype=bool)
        self.undecided = 0                          # pairs the float filter left to exact arithmetic
        self.E = self.F = self.G = self.Lin = None

    # ---- per-neuron queries (the sign pattern is exact) ----------------------------------
    def positive(self, j: int) -> np.ndarray:
        """B[:, j] = [z_ij > 0] as a bool vector."""
        byte, bit = divmod(j, 8)
        return ((self.packed[:, byte] >> (7 - bit)) & 1).astype(bool)

    def kinks(self, j: int) -> list[int]:
        """Data indices with z_ij = 0, increasing."""
        if self.zero_cols[j]:
            return list(range(self.n))
        ks = set(np.nonzero(self.zero_rows)[0].tolist()) | set(self.extra_kinks.get(j, ()))
        return sorted(ks)

    def dead_signs(self, j: int) -> bool:
        """z_ij < 0 for every data point x_i != 0 (w_j != 0 assumed)."""
        return self.poscount[j] == 0 and not self.extra_kinks.get(j)


def first_order(X, Y, W, A, c, ap, am) -> FastFirstOrder | None:
    """The exact first-order quantities by the filtered evaluation, or None when it does not apply."""
    n, d = X.shape
    m, k = W.shape[0], Y.shape[1]
    cv = np.empty((1, k), dtype=object)
    cv[0, :] = [fmpq(0)] * k if c is None else list(c)
    # the problem's data X, Y is frozen (core.linalg.freeze): its integers are computed once
    parts = [derived(M, "common_ints", _data_ints) for M in (X, W, A, Y, cv)]
    if any(p is None for p in parts):
        return None                      # (Y, c: they set the denominator of the residuals)
    (Xn, Dx), (Wn, Dw), (An, Da) = parts[:3]
    Xf, Wf = derived(X, "common_ints_float", lambda _: freeze(_to_float(Xn, Dx))), _to_float(Wn, Dw)
    if not (_in_range(Xf) and _in_range(Wf)):
        return None
    if any(((F == 0) != np.asarray(N == 0, dtype=bool)).any() for F, N in ((Xf, Xn), (Wf, Wn))):
        return None                      # a non-zero number below the float range (rounded to 0)
    st = FastFirstOrder(n, m, d, k, Xn, Dx, Wn, Dw)
    st.zero_rows = np.asarray((Xn == 0).all(axis=1), dtype=bool) if d else np.ones(n, dtype=bool)
    st.zero_cols = np.asarray((Wn == 0).all(axis=1), dtype=bool) if d else np.ones(m, dtype=bool)

    # P_c = a_c o W (denominator Da Dw), all outputs' limbs side by side: m x (k T d)
    L1 = limb_bits(m)
    P = [An[:, cc:cc + 1] * Wn for cc in range(k)]
    limbs1 = [split_limbs(Pc, L1) for Pc in P]
    T1 = [lb.shape[0] for lb in limbs1]
    Pstack = np.concatenate([lb.transpose(1, 0, 2).reshape(m, -1) for lb in limbs1], axis=1)

    g = d * _U / (1 - d * _U)
    cst = (g + 3 * _U) / (1 - g) * 1.01
    absX, absW = np.abs(Xf), np.abs(Wf)
    bs = max(1, BLOCK_ENTRIES // max(1, m))
    packed = np.empty((n, (m + 7) // 8), dtype=np.uint8)
    BP = np.empty((n, Pstack.shape[1]), dtype=np.float64)
    rows_ok = ~st.zero_rows
    for i0 in range(0, n, bs):
        i1 = min(n, i0 + bs)
        Zf = Xf[i0:i1] @ Wf.T
        bound = absX[i0:i1] @ absW.T
        bound *= cst
        pos = Zf > bound
        und = ~(pos | (Zf < -bound))
        und[st.zero_rows[i0:i1], :] = False       # exact zeros: kinks, not positive
        und[:, st.zero_cols] = False
        del Zf, bound
        for bi, j in zip(*np.nonzero(und)):
            i = i0 + int(bi)
            z = sum(int(a) * int(b) for a, b in zip(Xn[i].tolist(), Wn[j].tolist()))
            st.undecided += 1
            if z > 0:
                pos[bi, j] = True
            elif z == 0:
                st.extra_kinks.setdefault(int(j), []).append(i)
        packed[i0:i1] = np.packbits(pos, axis=1)
        st.poscount += pos[rows_ok[i0:i1]].sum(axis=0)
        BP[i0:i1] = pos.astype(np.float64) @ Pstack
        del pos, und
    st.packed = packed

    # outputs and residuals (exact, n x k)
    pa, qa = int(am.p), int(am.q)
    dlt = ap - am
    pd, qd = int(dlt.p), int(dlt.q)
    F = np.empty((n, k), dtype=object)
    off = 0
    for cc in range(k):
        T, w = T1[cc], d
        R = BP[:, off:off + T * w].reshape(n, T, w).transpose(1, 0, 2)
        off += T * w
        V = join_limbs(R, L1)                                     # B @ P_c, n x d integers
        u = P[cc].sum(axis=0) if m else np.zeros(d, dtype=object)
        num1 = _rowdot(Xn, np.broadcast_to(u, Xn.shape))
        num2 = _rowdot(Xn, V)
        den = qa * qd * Dx * Da * Dw
        col = [fmpq(pa * qd * int(a) + pd * qa * int(b), den) for a, b in zip(num1.tolist(), num2.tolist())]
        if c is not None:
            cval = c[cc]
            col = [v + cval for v in col]
        F[:, cc] = col
    E = F - Y
    st.F, st.E = F, E

    # Lin (m x k x d) and G (m x k): B^T @ (e_c o X), accumulated over the same row blocks
    En, De = common_ints(E)
    L2 = limb_bits(n)
    Q = [En[:, cc:cc + 1] * Xn for cc in range(k)]
    limbs2 = [split_limbs(Qc, L2) for Qc in Q]
    T2 = [lb.shape[0] for lb in limbs2]
    Qstack = np.concatenate([lb.transpose(1, 0, 2).reshape(n, -1) for lb in limbs2], axis=1)
    del limbs2
    BQ = np.zeros((m, Qstack.shape[1]), dtype=np.float64)
    for i0 in range(0, n, bs):
        i1 = min(n, i0 + bs)
        Bb = np.unpackbits(packed[i0:i1], axis=1, count=m).astype(np.float64)
        BQ += Bb.T @ Qstack[i0:i1]
        del Bb
    Lin = np.empty((m, k, d), dtype=object)
    G = np.empty((m, k), dtype=object)
    den = qa * qd * n * De * Dx
    Gden = den * Dw
    off = 0
    for cc in range(k):
        T = T2[cc]
        R = BQ[:, off:off + T * d].reshape(m, T, d).transpose(1, 0, 2)
        off += T * d
        Rn = join_limbs(R, L2)                                    # B^T @ Q_c, m x d integers
        q = Q[cc].sum(axis=0) if n else np.zeros(d, dtype=object)
        N = (pa * qd) * np.broadcast_to(q, (m, d)) + (pd * qa) * Rn   # numerators over den
        Lin[:, cc, :] = np.array([fmpq(int(v), den) for v in N.ravel().tolist()], dtype=object).reshape(m, d)
        gnum = _rowdot(N, Wn)
        G[:, cc] = [fmpq(int(v), Gden) for v in gnum.tolist()]
    st.Lin, st.G = Lin, G
    return st
