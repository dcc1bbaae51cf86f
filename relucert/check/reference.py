# Deliberate independent copy of the network formulas (independent of relucert.core): the checker's trusted base.
"""The checker's reference formulas of the one-hidden-layer network, on lists of ``Fraction``.

Standard library only.  The checker (:mod:`relucert.check.kernel`) computes every network quantity
with these functions, and the claims harness (:mod:`relucert.claims`) uses them as its exact
reference, so that the harness checks the decision code against the trusted base, not a third copy.

The network is f(x) = sum_j a_j sigma(w_j . x) (+ c) with sigma(z) = alpha_plus z for z > 0 and
alpha_minus z otherwise (the slope convention sigma'(0) = alpha_minus); data X (n x d), targets Y
(n x k), input weights W (m x d), output weights A (m x k), all row lists, and an optional output
bias c (k; None: the network has none).  The loss is the half_mean convention
L = (1/2n) sum_i ||e_i||^2 with residuals e_i = f(x_i) - y_i (c included).

- :func:`preactivations`  Z[i][j] = w_j . x_i
- :func:`outputs`, :func:`residuals`, :func:`half_mean_loss`, :func:`loss`
- :func:`mean_residual`  e_bar = (1/n) sum_i e_i = dL/dc (over every data point, x_i = 0 included)
- :func:`output_grad`  G_j = (1/n) sum_i e_i sigma(z_ij) = dL/da_j
- :func:`D`  the map D_j(r) = (1/n)[sum_{z_ij != 0} e_i sigma'(z_ij) (x_i . r) + sum_{z_ij = 0} e_i sigma(x_i . r)]
- :func:`weight_grad`, :func:`gradient`  dL/dw_j, (dL/dW, dL/dA) where L is differentiable
- :func:`hessian`  the exact Hessian where L is smooth, as the checker computes it (joint in (W, A, c)
  with ``output_bias=True``)
"""
from __future__ import annotations

from fractions import Fraction as Q
from math import lcm
from operator import mul

__all__ = ["dot", "sigma", "dsigma", "preactivations", "outputs", "residuals", "half_mean_loss", "loss",
           "mean_residual", "output_grad", "D", "weight_grad", "gradient", "hessian", "jacobian"]


def dot(u, v) -> Q:
    return sum((a * b for a, b in zip(u, v) if a and b), Q(0))     # (zero terms skipped: exact)


def sigma(z: Q, ap: Q, am: Q) -> Q:
    """sigma(z) = alpha_plus z for z > 0, alpha_minus z otherwise."""
    return ap * z if z > 0 else am * z


def dsigma(z: Q, ap: Q, am: Q) -> Q:
    """sigma'(z), with sigma'(0) = alpha_minus."""
    return ap if z > 0 else am


# Speed: the n x m sums below run on Python integers over one common denominator per matrix (a
# Fraction operation costs a gcd; an integer product does not), which is exact and gives the same
# Fractions.  A common denominator above COMMON_DEN_BITS (hostile input: many distinct denominators)
# falls back to the plain Fraction loops, whose cost does not depend on it.
COMMON_DEN_BITS = 4096


def _over_common(rows):
    """(integer rows N, D) with rows = N / D exactly, D the lcm of the denominators; None if D has
    more than COMMON_DEN_BITS bits."""
    D = 1
    for row in rows:
        for v in row:
            if v.denominator != 1 and D % v.denominator:
                D = lcm(D, v.denominator)
                if D.bit_length() > COMMON_DEN_BITS:
                    return None
    return [[v.numerator * (D // v.denominator) for v in row] for row in rows], D


def _int_preactivations(X, W, cx=None):
    """(integer n x m matrix N, D) with w_j . x_i = N[i][j] / D, or None (see _over_common); ``cx``:
    ``_over_common(X)`` if the caller has it already."""
    cx, cw = (_over_common(X) if cx is None else cx), _over_common(W)
    if cx is None or cw is None:
        return None
    (Xi, Dx), (Wi, Dw) = cx, cw
    return [[sum(map(mul, w, x)) for w in Wi] for x in Xi], Dx * Dw


def preactivations(X, W) -> list[list[Q]]:
    """Z[i][j] = w_j . x_i (n x m)."""
    zi = _int_preactivations(X, W)
    if zi is None:
        return [[dot(w, x) for w in W] for x in X]
    Zi, D = zi
    return [[Q(z, D) for z in row] for row in Zi]


def outputs(X, W, A, ap: Q, am: Q, k: int, c=None, zi=None) -> list[list[Q]]:
    """f(x_i) = sum_j a_j sigma(w_j . x_i) + c (n x k; c None: no output bias).  ``zi``: the value of
    ``_int_preactivations(X, W)`` if the caller has it already."""
    zi, ca = (_int_preactivations(X, W) if zi is None else zi), _over_common(A)
    if zi is None or ca is None:
        out = []
        for x in X:
            h = [sigma(dot(w, x), ap, am) for w in W]
            out.append([sum((h[j] * A[j][o] for j in range(len(W))), Q(0) if c is None else c[o])
                        for o in range(k)])
        return out
    (Zi, Dz), (Ai, Da) = zi, ca
    ap, am = Q(ap), Q(am)            # exact even if given as int
    cols = [[row[o] for row in Ai] for o in range(k)]
    den = Dz * Da
    out = []
    for zs in Zi:                    # sigma(z) = alpha_plus z (z > 0), alpha_minus z (z <= 0)
        pos = [z if z > 0 else 0 for z in zs]
        neg = [z if z <= 0 else 0 for z in zs]
        out.append([(ap * sum(map(mul, pos, cols[o])) + am * sum(map(mul, neg, cols[o]))) / den
                    + (0 if c is None else c[o]) for o in range(k)])
    return out


def residuals(X, Y, W, A, ap: Q, am: Q, c=None, zi=None) -> list[list[Q]]:
    """e_i = f(x_i) - y_i (n x k), the output bias c (None: none) included in f (``zi``: as outputs)."""
    F = outputs(X, W, A, ap, am, len(Y[0]) if Y else 0, c, zi)
    return [[f - y for f, y in zip(Fi, Yi)] for Fi, Yi in zip(F, Y)]


def mean_residual(E) -> list[Q]:
    """e_bar = (1/n) sum_i e_i over every data point (k): the gradient of the half_mean loss in c."""
    n = len(E)
    k = len(E[0]) if E else 0
    return [sum((row[o] for row in E), Q(0)) / n for o in range(k)]


def half_mean_loss(E) -> Q:
    """(1/2n) sum_i ||e_i||^2 for residuals E (n rows)."""
    return sum((e * e for row in E for e in row), Q(0)) / (2 * len(E))


def loss(X, Y, W, A, ap: Q, am: Q, c=None) -> Q:
    """The half_mean loss of the point (W, A) (with the output bias c, if not None)."""
    return half_mean_loss(residuals(X, Y, W, A, ap, am, c))


def output_grad(Z, E, ap: Q, am: Q) -> list[list[Q]]:
    """G_j = (1/n) sum_i e_i sigma(z_ij) = dL/da_j (m x k), from Z (n x m) and E (n x k)."""
    n = len(E)
    m = len(Z[0]) if Z else 0
    k = len(E[0]) if E else 0
    cz, ce = _over_common(Z), _over_common(E)
    if cz is None or ce is None:
        return [[sum((E[i][c] * sigma(Z[i][j], ap, am) for i in range(n)), Q(0)) / n for c in range(k)]
                for j in range(m)]
    return _int_output_grad(cz, ce, n, m, k, ap, am)


def output_grad_from_ints(zi, E, ap: Q, am: Q) -> list[list[Q]] | None:
    """``output_grad`` from zi = ``_int_preactivations(X, W)`` (None if E has no common denominator
    of at most COMMON_DEN_BITS bits: then call output_grad)."""
    ce = _over_common(E)
    if ce is None:
        return None
    n, k = len(E), len(E[0]) if E else 0
    return _int_output_grad(zi, ce, n, len(zi[0][0]) if zi[0] else 0, k, ap, am)


def _int_output_grad(cz, ce, n: int, m: int, k: int, ap: Q, am: Q) -> list[list[Q]]:
    (Zi, Dz), (Ei, De) = cz, ce
    ap, am = Q(ap), Q(am)
    ecols = [[row[c] for row in Ei] for c in range(k)]
    den = Dz * De * n
    out = []
    for j in range(m):
        col = [row[j] for row in Zi]
        pos = [z if z > 0 else 0 for z in col]
        neg = [z if z <= 0 else 0 for z in col]
        out.append([(ap * sum(map(mul, pos, ecols[c])) + am * sum(map(mul, neg, ecols[c]))) / den
                    for c in range(k)])
    return out


def D(X, z, E, r, ap: Q, am: Q) -> list[Q]:
    """D_j(r) straight from its definition (no merging), for the pre-activations z[i] = w_j . x_i of
    neuron j: (1/n)[sum_{z_i != 0} e_i sigma'(z_i) (x_i . r) + sum_{z_i = 0} e_i sigma(x_i . r)]."""
    out = [Q(0)] * (len(E[0]) if E else 0)
    for i, x in enumerate(X):
        zi = z[i]
        xr = dot(x, r)
        f = dsigma(zi, ap, am) * xr if zi != 0 else sigma(xr, ap, am)
        if f != 0:
            out = [o + f * e for o, e in zip(out, E[i])]
    return [o / len(X) for o in out]


def weight_grad(X, Z, E, A, ap: Q, am: Q) -> list[list[Q]]:
    """dL/dw_j = (1/n) sum_i (a_j . e_i) sigma'(z_ij) x_i (m x d) where L is differentiable in w_j
    (elsewhere: the same formula with sigma'(0) = alpha_minus)."""
    n = len(X)
    d = len(X[0]) if X else 0
    out = []
    for j in range(len(A)):
        coef = [dot(A[j], E[i]) * dsigma(Z[i][j], ap, am) for i in range(n)]
        out.append([sum((coef[i] * X[i][q] for i in range(n)), Q(0)) / n for q in range(d)])
    return out


def gradient(X, Y, W, A, ap: Q, am: Q, c=None) -> tuple[list[list[Q]], list[list[Q]]]:
    """(dL/dW, dL/dA) of the half_mean loss where L is differentiable (sigma'(0) = alpha_minus); with an
    output bias c, dL/dc is mean_residual of the residuals."""
    Z = preactivations(X, W)
    E = residuals(X, Y, W, A, ap, am, c)
    return weight_grad(X, Z, E, A, ap, am), output_grad(Z, E, ap, am)


def hessian(X, Z, E, A, ap: Q, am: Q, output_bias: bool = False, kink_slopes: dict | None = None) -> list[list[Q]]:
    """Exact Hessian of the half_mean loss in (W row-major, A row-major) at a smooth point, from
    f_c(x_i) = sum_j a_jc s_ij (w_j . x_i) (+ c_c) with the slopes s_ij fixed near theta:
    H = (1/n) sum_i [J_i^T J_i + sum_c e_ic d^2 f_c(x_i)], d^2 f_c / da_jc dw_jq = s_ij x_iq.
    With ``output_bias`` the parameters are (W, A, c), c last: df_c / dc_c = 1, f is linear in c.
    ``kink_slopes`` {(i, j): s_ij} fixes the slope of every kink pair (z_ij = 0, x_i != 0): then this
    is the Hessian at 0 of the loss polynomial on the piece where those pairs move to that side."""
    n, d, m = len(X), len(X[0]), len(A)
    k = len(A[0])
    P = m * (d + k) + (k if output_bias else 0)

    def wi(j, q):
        return j * d + q

    def ai(j, c):
        return m * d + j * k + c
    H = [[Q(0)] * P for _ in range(P)]
    for i, x in enumerate(X):
        for c in range(k):
            J = {m * (d + k) + c: Q(1)} if output_bias else {}
            for j in range(m):
                z = Z[i][j]
                s = kink_slopes[(i, j)] if kink_slopes is not None and (i, j) in kink_slopes else dsigma(z, ap, am)
                if z != 0:
                    J[ai(j, c)] = s * z
                for q in range(d):
                    if x[q] != 0 and A[j][c] != 0:
                        J[wi(j, q)] = A[j][c] * s * x[q]
            for p1, v1 in J.items():
                for p2, v2 in J.items():
                    H[p1][p2] += v1 * v2 / n
            e = E[i][c]
            if e != 0:
                for j in range(m):
                    s = (kink_slopes[(i, j)] if kink_slopes is not None and (i, j) in kink_slopes
                         else dsigma(Z[i][j], ap, am))
                    for q in range(d):
                        if x[q] != 0:
                            H[ai(j, c)][wi(j, q)] += e * s * x[q] / n
                            H[wi(j, q)][ai(j, c)] += e * s * x[q] / n
    return H


def jacobian(X, Z, A, ap: Q, am: Q, output_bias: bool = False, kink_slopes: dict | None = None) -> list[list[Q]]:
    """J (row i k + c, columns as in :func:`hessian`): df_c(x_i)/dtheta with the slopes s_ij fixed
    (``kink_slopes`` on the kink pairs): df_c/da_jc = s_ij z_ij, df_c/dw_jq = a_jc s_ij x_iq, df_c/dc_c = 1."""
    d, m = len(X[0]), len(A)
    k = len(A[0])
    P = m * (d + k) + (k if output_bias else 0)
    J = []
    for i, x in enumerate(X):
        for c in range(k):
            row = [Q(0)] * P
            if output_bias:
                row[m * (d + k) + c] = Q(1)
            for j in range(m):
                z = Z[i][j]
                s = kink_slopes[(i, j)] if kink_slopes is not None and (i, j) in kink_slopes else dsigma(z, ap, am)
                row[m * d + j * k + c] = s * z
                for q in range(d):
                    row[j * d + q] = A[j][c] * s * x[q]
            J.append(row)
    return J
