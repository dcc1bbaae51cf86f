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

4. The products with X (x_i . (B @ P)_i and B^T @ (e o X)) either in Python integers (n d object
   operations) or, when the estimate says cheaper (few neurons, many inputs), as float64 limb
   products of both factors with rows * 2^(L1 + L2) <= 2^52; for data read from binary floats
   (``Problem.make`` records them) the limbs of X come from the floats (``float_limbs``).
"""
from __future__ import annotations

import math

import numpy as np
from flint import fmpq

from relucert.core.linalg import derived, freeze

# ExactState uses this evaluation from n * m >= FAST_MIN_PAIRS (smaller problems: the generic
# formulas, which are fast there); tests lower it to exercise both paths on the same instances.
FAST_MIN_PAIRS = 50_000
# ... or from n * m * d * k >= FAST_MIN_WORK (few neurons, many inputs: the generic formulas' cost
# grows with every exact product x_iq * e_i, which this evaluation never forms)
FAST_MIN_WORK = 200_000
# the products with X: "objects" (Python integers, cost ~ n d), "limbs" (float64 limb products,
# cost ~ n m d flops), or None: the cheaper by the estimate in _limbs_cheaper (tests force each)
X_ROUTE: str | None = None
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


def use_fast(n: int, m: int, d: int, k: int) -> bool:
    """Whether ExactState tries this evaluation (else the generic formulas) for these sizes."""
    return n * m >= FAST_MIN_PAIRS or n * m * max(d, 1) * k >= FAST_MIN_WORK


def float_limbs(F: np.ndarray, s: int, L: int, T: int) -> np.ndarray:
    """Signed L-bit limbs of the integers N = F * 2^s (F float64, every F * 2^s an integer below
    2^1023), from the floats: N = sum_t 2^(L t) out[t], |out[t]| < 2^L, each limb carrying the sign
    of its entry (as ``split_limbs``).  Exact: q_t = floor(|N| 2^(-L t)) is the truncation of a
    float with at most 53 significant bits (or 0 where |N| 2^(-L t) < 1, whatever underflow does
    below 2^-1022), and out[t] = q_t - 2^L q_(t+1) is an integer below 2^L."""
    A = np.ldexp(np.abs(F), s)
    q = [np.floor(np.ldexp(A, -L * t)) for t in range(T + 1)]
    out = np.empty((T,) + F.shape, dtype=np.float64)
    for t in range(T):
        out[t] = q[t] - np.ldexp(q[t + 1], L)
    out *= np.sign(F)
    return out


def _lowest_bit_exponents(F: np.ndarray) -> np.ndarray:
    """e with F = p 2^e, p an odd integer, for the non-zero entries of a float64 array (flattened)."""
    f = F[F != 0]
    mant, ex = np.frexp(f)
    p = np.ldexp(mant, 53).astype(np.int64)            # exact: |p| < 2^53
    low = p & -p                                       # lowest set bit, a power of two <= 2^52
    return ex.astype(np.int64) - 53 + (np.frexp(low.astype(np.float64))[1].astype(np.int64) - 1)


class Ints:
    """An exact matrix M = N / D, N integer, D its common denominator, for the products with X.

    Either N is a Python-integer object array (``common_ints``), or M is exactly a float64 array F
    (data read from binary floats) and D = 2^s: then N = F 2^s is never formed as Python integers
    unless a caller asks for it; its limbs come from the floats (``float_limbs``)."""

    def __init__(self, N: np.ndarray | None, D: int, F: np.ndarray | None = None, s: int = 0):
        self._N, self.D, self._F, self.s = N, D, F, s
        self._limbs: dict = {}      # limbs per L, and the values _kept computes once
        self.shape = (N if N is not None else F).shape

    @classmethod
    def from_floats(cls, F: np.ndarray) -> "Ints | None":
        """The floats' integers, or None when F 2^s would leave the float range (then the caller
        uses ``common_ints``)."""
        F = np.asarray(F, dtype=np.float64)
        nz = F != 0
        if not nz.any():
            return cls(None, 1, F, 0)
        s = max(0, -int(_lowest_bit_exponents(F).min()))
        top = int(np.frexp(np.abs(F[nz]).max())[1])     # |F| < 2^top
        if top + s > 1020:
            return None
        return cls(None, 1 << s, F, s)

    @property
    def floats(self) -> bool:
        return self._F is not None

    @property
    def N(self) -> np.ndarray:
        """The integers as a Python-integer object array (formed on first use from the floats)."""
        if self._N is None:
            flat = np.ldexp(self._F, self.s).ravel().tolist()      # exact float integers
            out = np.empty(len(flat), dtype=object)
            out[:] = [int(v) for v in flat]
            self._N = out.reshape(self.shape)
        return self._N

    def row(self, i: int) -> list:
        if self._N is None:
            return [int(v) for v in np.ldexp(self._F[i], self.s).tolist()]
        return self._N[i].tolist()

    def _kept(self, name: str, make):
        """make(), computed once per Ints (an Ints of frozen data is itself kept per problem)."""
        if name not in self._limbs:
            self._limbs[name] = make()
        return self._limbs[name]

    def zero(self) -> np.ndarray:
        if self._F is not None:
            return self._F == 0
        return self._kept("zero", lambda: np.asarray(self._N == 0, dtype=bool))

    def nearest(self) -> np.ndarray:
        """Nearest float64 of N / D (F itself when the matrix is float data)."""
        return self._F if self._F is not None else self._kept("nearest", lambda: _to_float(self._N, self.D))

    def bits(self) -> int:
        """Bit length of max |N|."""
        if self._F is not None:
            nz = self._F != 0
            return int(np.frexp(np.abs(self._F[nz]).max())[1]) + self.s if nz.any() else 0
        return self._kept("bits", lambda: int(max(np.abs(self._N).ravel().tolist(), default=0)).bit_length())

    def limbs(self, L: int) -> np.ndarray:
        """Signed L-bit limbs of N (T x shape float64, T >= 1), kept per L."""
        if L not in self._limbs:
            if self._F is not None:
                self._limbs[L] = float_limbs(self._F, self.s, L, max(1, -(-self.bits() // L)))
            else:
                self._limbs[L] = split_limbs(self._N, L)
        return self._limbs[L]


def _join_terms(terms: list, shape: tuple) -> np.ndarray:
    """sum of 2^shift R over (shift, R) with R exact float64 integers, as Python integers."""
    acc = np.zeros(shape, dtype=object)
    for shift, R in terms:
        acc = acc + (R.astype(np.int64).astype(object) << shift)
    return acc


def _split_pair(budget: int) -> tuple[int, int]:
    """Two limb sizes summing to ``budget`` bits (the exactness budget of one product)."""
    a = max(1, budget // 2)
    return a, max(1, budget - a)


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


def _x_ints(X: np.ndarray) -> Ints | None:
    """X's integers: from the floats the data were read from (``Problem.make`` records them as
    ``derived(X, "float64")``, an array exactly equal to X), else from the rationals."""
    F = derived(X, "float64", lambda _: None)
    if F is not None:
        got = Ints.from_floats(F)
        if got is not None:
            return got
    got = _data_ints(X)
    return None if got is None else Ints(got[0], got[1])


def _limbs_cheaper(obj_ops: int, flops: int, join_ops: int) -> bool:
    """The limb route for a product with X (``flops`` float64 operations, ~0.25 ns each, and
    ``join_ops`` entries of limb products to recombine as Python integers) against the integer
    route (``obj_ops`` Python-integer operations)."""
    if X_ROUTE is not None:
        return X_ROUTE == "limbs"
    return flops * 0.25 + join_ops * 3 * 300 < obj_ops * 300     # (3: convert, shift, add per term)


def _pair_limbs(budget: int, bits_a: int, bits_b: int) -> tuple[int, int, int, int]:
    """Limb sizes (La, Lb), La + Lb = budget, and limb counts (Ta, Tb) for numbers of bits_a, bits_b bits."""
    La, Lb = _split_pair(budget)
    return La, Lb, max(1, -(-bits_a // La)), max(1, -(-bits_b // Lb))


def _rows_dot_limbs(xi: Ints, R: np.ndarray, L: int, rbits: int) -> np.ndarray:
    """sum_q N_iq V_iq (n integers) for V = sum_t 2^(L t) R[t] (R: T x n x d exact float integers,
    |R[t]| < 2^rbits), by float products: each R[t] is cut again into limbs of Lr bits and N into
    limbs of Lx bits with d 2^(Lr + Lx) <= 2^52, so each row sum of products is exact."""
    n, d = xi.shape
    Lr, Lx = _split_pair(52 - max(1, int(d).bit_length()))
    Xl = xi.limbs(Lx)
    Tr = max(1, -(-rbits // Lr))
    terms = []
    for t in range(R.shape[0]):
        Rl = float_limbs(R[t], 0, Lr, Tr)
        for r in range(Tr):
            for sx in range(Xl.shape[0]):
                terms.append((L * t + Lr * r + Lx * sx, np.einsum("iq,iq->i", Rl[r], Xl[sx])))
    return _join_terms(terms, (n,))


def _x_times_vector(xi: Ints, u: np.ndarray) -> np.ndarray:
    """N @ u (n integers) for a d-vector u of Python integers."""
    n, d = xi.shape
    if not xi.floats:
        return _rowdot(xi.N, np.broadcast_to(u, xi.shape))
    Lu, Lx = _split_pair(52 - max(1, int(d).bit_length()))
    Ul = split_limbs(u.reshape(1, d), Lu)[:, 0, :]
    Xl = xi.limbs(Lx)
    return _join_terms([(Lu * t + Lx * s, Xl[s] @ Ul[t]) for t in range(Ul.shape[0]) for s in range(Xl.shape[0])],
                       (n,))


def _bt_e_x(xi: Ints, packed: np.ndarray, m: int, e: np.ndarray, bs: int) -> tuple[np.ndarray, np.ndarray]:
    """(B^T @ (e o N), e^T N) for an n-vector e of Python integers: m x d and d integers, by float
    products (B 0/1 from the packed pattern): e cut into limbs of Le bits and N into limbs of Lx
    bits with n 2^(Le + Lx) <= 2^52, so every sum over the data points is exact."""
    n, d = xi.shape
    Le, Lx = _split_pair(52 - max(1, int(n).bit_length()))
    El = split_limbs(e.reshape(n, 1), Le)[:, :, 0]          # Te x n
    Xl = xi.limbs(Lx)                                       # Tx x n x d
    acc = {}
    for i0 in range(0, n, bs):
        i1 = min(n, i0 + bs)
        Bb = np.unpackbits(packed[i0:i1], axis=1, count=m).astype(np.float64)
        for t in range(El.shape[0]):
            BE = Bb * El[t, i0:i1, None]
            for s in range(Xl.shape[0]):
                part = BE.T @ Xl[s, i0:i1]
                key = (t, s)
                acc[key] = part if key not in acc else acc[key] + part
    # the block sums: each partial sum is still a sum over data points of products < 2^(Le + Lx)
    terms = [(Le * t + Lx * s, acc[(t, s)]) for (t, s) in acc]
    tot = [(Le * t + Lx * s, El[t] @ Xl[s]) for t in range(El.shape[0]) for s in range(Xl.shape[0])]
    return _join_terms(terms, (m, d)), _join_terms(tot, (d,))


def first_order(X, Y, W, A, c, ap, am) -> FastFirstOrder | None:
    """The exact first-order quantities by the filtered evaluation, or None when it does not apply."""
    n, d = X.shape
    m, k = W.shape[0], Y.shape[1]
    cv = np.empty((1, k), dtype=object)
    cv[0, :] = [fmpq(0)] * k if c is None else list(c)
    # the problem's data X, Y is frozen (core.linalg.freeze): its integers are computed once
    xi = derived(X, "exact_ints", _x_ints)
    parts = [derived(M, "common_ints", _data_ints) for M in (W, A, Y, cv)]
    if xi is None or any(p is None for p in parts):
        return None                      # (Y, c: they set the denominator of the residuals)
    Dx = xi.D
    (Wn, Dw), (An, Da) = parts[:2]
    Xf, Wf = xi.nearest(), _to_float(Wn, Dw)
    if not (_in_range(Xf) and _in_range(Wf)):
        return None
    if (not xi.floats and ((Xf == 0) != xi.zero()).any()) or ((Wf == 0) != np.asarray(Wn == 0, dtype=bool)).any():
        return None                      # a non-zero number below the float range (rounded to 0)
    st = FastFirstOrder(n, m, d, k, xi, Dx, Wn, Dw)
    st.zero_rows = xi.zero().all(axis=1) if d else np.ones(n, dtype=bool)
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
            z = sum(int(a) * int(b) for a, b in zip(xi.row(i), Wn[j].tolist()))
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

    # outputs and residuals (exact, n x k): the products with X as Python integers (n d object
    # operations) or, when cheaper, as float limb products (_rows_dot_limbs, _x_times_vector)
    pa, qa = int(am.p), int(am.q)
    dlt = ap - am
    pd, qd = int(dlt.p), int(dlt.q)
    F = np.empty((n, k), dtype=object)
    off = 0
    for cc in range(k):
        T, w = T1[cc], d
        R = BP[:, off:off + T * w].reshape(n, T, w).transpose(1, 0, 2)
        off += T * w
        u = P[cc].sum(axis=0) if m else np.zeros(d, dtype=object)
        _, _, Tr, Tx = _pair_limbs(52 - max(1, int(d).bit_length()), 52, xi.bits())
        if d == 0:
            num1 = num2 = np.zeros(n, dtype=object)
        elif _limbs_cheaper((3 if pa else 2) * n * d, 4 * n * d * T * Tr * Tx, n * T * Tr * Tx * (2 if pa else 1)):
            num2 = _rows_dot_limbs(xi, R, L1, 52)
            num1 = _x_times_vector(xi, u) if pa else np.zeros(n, dtype=object)
        else:
            V = join_limbs(R, L1)                                     # B @ P_c, n x d integers
            num1 = _rowdot(xi.N, np.broadcast_to(u, xi.shape)) if pa else np.zeros(n, dtype=object)
            num2 = _rowdot(xi.N, V)
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
    Lin = np.empty((m, k, d), dtype=object)
    G = np.empty((m, k), dtype=object)
    den = qa * qd * n * De * Dx
    Gden = den * Dw
    L2 = limb_bits(n)
    ebits = int(max(np.abs(En).ravel().tolist(), default=0)).bit_length()
    Tq = max(1, -(-(ebits + xi.bits()) // L2))                  # limbs of e_c o X on the integer route
    _, _, Te, Tx = _pair_limbs(52 - max(1, int(n).bit_length()), ebits, xi.bits())
    if d and _limbs_cheaper(k * (n * d * (1 + 2 * Tq) + m * d * Tq), k * 2 * m * n * d * Te * Tx, k * m * d * Te * Tx):
        cols = [_bt_e_x(xi, packed, m, En[:, cc], bs) for cc in range(k)]
    else:
        Q = [En[:, cc:cc + 1] * xi.N for cc in range(k)]
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
        cols, off = [], 0
        for cc in range(k):
            T = T2[cc]
            R = BQ[:, off:off + T * d].reshape(m, T, d).transpose(1, 0, 2)
            off += T * d
            cols.append((join_limbs(R, L2),                           # B^T @ Q_c, m x d integers
                         Q[cc].sum(axis=0) if n else np.zeros(d, dtype=object)))
    for cc in range(k):
        Rn, q = cols[cc]
        N = (pa * qd) * np.broadcast_to(q, (m, d)) + (pd * qa) * Rn   # numerators over den
        Lin[:, cc, :] = np.array([fmpq(int(v), den) for v in N.ravel().tolist()], dtype=object).reshape(m, d)
        gnum = _rowdot(N, Wn)
        G[:, cc] = [fmpq(int(v), Gden) for v in gnum.tolist()]
    st.Lin, st.G = Lin, G
    return st
