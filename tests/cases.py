"""Hand-built unit cases with hand-computed expectations (see the comments for the arithmetic).

Each entry: name -> (problem+point dict in the input-file schema, expected verdict, expected
escape neurons, expected exact loss in the file's convention)."""

EPS = "1/1000000"

# Base geometry: x1 = (1,0), x2 = (0,1); neuron w = (1,0), a fits x1 exactly (e1 = 0), while
# x2 sits on its kink (z = 0).  G = (e1*1 + e2*0)/2 = 0.  D(r) = e2 relu(r2)/2, phi = a e2 relu(r2)/2.
KINK_MIN = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]], "W": [[1, 0]], "A": [[1]]}
# a = 1, e2 = 0 - (-1) = 1: a.e2 > 0 -> phi >= 0, scalar a != 0 -> local_min, loss (0 + 1)/4.
KINK_NOT_STAT = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [1]], "W": [[1, 0]], "A": [[1]]}
# e2 = -1: phi(0,1) = -1/2 < 0 -> not_stationary, loss 1/4.

# Dead neuron (z = (-1,-1) < 0) with a = 0: D = 0 -> not an escape neuron -> still local_min.
DEAD = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]],
        "W": [[1, 0], [-1, -1]], "A": [[1], [0]]}
# The same neuron at w = 0: D(r) = (e1 relu(r1) + e2 relu(r2))/2 = relu(r2)/2 != 0 -> saddle.
ZERO = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]],
        "W": [[1, 0], [0, 0]], "A": [[1], [0]]}

# Tiny neuron w = (-eps, 0): x1 strictly negative, x2 on its kink; it outputs 0 at both points.
# D(r) = e2 relu(r2)/2 = relu(r2)/2.  a2 > 0: phi >= 0 (local_min); a2 < 0: not_stationary;
# a2 = 0: escape neuron (saddle).  Three verdicts for three readings of one tiny neuron.
def _tiny(a2):
    return {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]],
            "W": [[1, 0], ["-" + EPS, 0]], "A": [[1], [a2]]}


TINY_POS, TINY_NEG, TINY_ZERO = _tiny(EPS), _tiny("-" + EPS), _tiny(0)

# Leaky ReLU (alpha_minus = 1/10), 1-D data x = +1, -1, one neuron at w = 0 with a = 1, f = 0.
# phi(r) = (1/2)[e1 sigma(r) + e2 sigma(-r)]: r > 0 gives r (e1 - e2/10)/2, r < 0 gives |r|(e2 - e1/10)/2.
LEAKY_MIN = {"activation": "leaky_relu:0.1", "X": [[1], [-1]], "Y": [[-1], [-1]], "W": [[0]], "A": [[1]]}
# e = (1, 1): both 9/20 > 0 -> local_min, loss (1 + 1)/4 = 1/2.
LEAKY_NOT = {"activation": "leaky_relu:0.1", "X": [[1], [-1]], "Y": [[1], [1]], "W": [[0]], "A": [[1]]}
# e = (-1, -1): phi(1) = -9/20 < 0 -> not_stationary.

# Absolute value: same geometry; phi(r) = |r| (e1 + e2)/2.
ABS_MIN = {"activation": "abs", "X": [[1], [-1]], "Y": [[-1], [-2]], "W": [[0]], "A": [[1]]}
# e = (1, 2): phi = 3|r|/2 >= 0 -> local_min, loss (1 + 4)/4 = 5/4.
ABS_NOT = {"activation": "abs", "X": [[1], [-1]], "Y": [[1], [1]], "W": [[0]], "A": [[1]]}
# e = (-1, -1): phi = -|r| < 0 -> not_stationary, loss 1/2.

# docs/theory.md §3 example: phi(r) = 5 relu(r1) + 5 relu(r2) - relu(r1 + r2) >= 0 with a concave kink.
# Zero-input neuron w = 0, a = 1: f = 0, e = -y, phi(r) = (1/3) sum_i e_i relu(x_i . r).
# e = (15, 15, -3) gives coefficients (5, 5, -1): stationary; scalar a != 0 -> local_min.
# loss = (225 + 225 + 9)/6 = 153/2.
DEGENERATE_MIN = {"activation": "relu", "X": [[1, 0], [0, 1], [1, 1]], "Y": [[-15], [-15], [3]],
                  "W": [[0, 0]], "A": [[1]]}
# Twin with coefficients (1/2, 1/2, -1): phi(1,1) = -1 < 0 -> not_stationary; loss (9/4+9/4+9)/6 = 9/4.
DEGENERATE_NOT = {"activation": "relu", "X": [[1, 0], [0, 1], [1, 1]], "Y": [["-3/2"], ["-3/2"], [3]],
                  "W": [[0, 0]], "A": [[1]]}

# Vector output (k = 2), base geometry, a = y1 = (1, 2), e1 = 0, e2 = (1, 1).
# phi = (a.e2) relu(r2)/2 = 3 relu(r2)/2 >= 0; flat set r2 <= 0 where D = 0: no escape -> local_min.
VEC_MIN = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1, 2], [-1, -1]], "W": [[1, 0]], "A": [[1, 2]]}
# loss = (0 + 1 + 1)/4 = 1/2.
# e2 = (2, -1) orthogonal to a: phi = 0 everywhere, D(0,1) = (1, -1/2) != 0, escape with a != 0 -> inconclusive.
VEC_INCONCLUSIVE = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1, 2], [-2, 1]], "W": [[1, 0]],
                    "A": [[1, 2]]}
# loss = (4 + 1)/4 = 5/4.
# VEC_MIN plus a zero neuron: D(r) = (1,1) relu(r2)/2 != 0 and a = 0 -> saddle via the escape path.
VEC_SADDLE = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1, 2], [-1, -1]], "W": [[1, 0], [0, 0]],
              "A": [[1, 2], [0, 0]]}

# Origin with zero neurons: f = 0, e = -y; D(r) = (1/2)(-1) relu(r1 + r2) != 0 -> saddle, loss 1/4.
ORIGIN = {"activation": "relu", "X": [[1, 1], [-1, 1]], "Y": [[1], [0]], "W": [[0, 0], [0, 0]], "A": [[0], [0]]}

# Exact interpolation: loss 0 -> global_min.
GLOBAL = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [0]], "W": [[1, 0]], "A": [[1]]}

# Differentiable non-stationary point: dL/da != 0.
GRAD = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[2], [0]], "W": [[1, 0]], "A": [[1]]}
# G = e1 * 1 / 2 = (1 - 2)/2 = -1/2 -> not_stationary, loss 1/4.

# mse convention: loss = (1/(n k)) sum ||e||^2 = 2 x half_mean for k = 1.
KINK_MIN_MSE = dict(KINK_MIN, loss="mse")

CASES = {
    "kink_min": (KINK_MIN, "local_min", [], "1/4"),
    "kink_not_stationary": (KINK_NOT_STAT, "not_stationary", [], "1/4"),
    "dead_a0": (DEAD, "local_min", [], "1/4"),
    "zero_a0": (ZERO, "saddle", [1], "1/4"),
    "tiny_pos": (TINY_POS, "local_min", [], "1/4"),
    "tiny_neg": (TINY_NEG, "not_stationary", [], "1/4"),
    "tiny_zero": (TINY_ZERO, "saddle", [1], "1/4"),
    "leaky_min": (LEAKY_MIN, "local_min", [], "1/2"),
    "leaky_not": (LEAKY_NOT, "not_stationary", [], "1/2"),
    "abs_min": (ABS_MIN, "local_min", [], "5/4"),
    "abs_not": (ABS_NOT, "not_stationary", [], "1/2"),
    "degenerate_min": (DEGENERATE_MIN, "local_min", [], "153/2"),
    "degenerate_not": (DEGENERATE_NOT, "not_stationary", [], "9/4"),
    "vec_min": (VEC_MIN, "local_min", [], "1/2"),
    "vec_inconclusive": (VEC_INCONCLUSIVE, "inconclusive", [0], "5/4"),
    "vec_saddle": (VEC_SADDLE, "saddle", [1], "1/2"),
    "origin": (ORIGIN, "saddle", [0, 1], "1/4"),
    "global": (GLOBAL, "global_min", [], "0"),
    "gradient": (GRAD, "not_stationary", [], "1/4"),
    "kink_min_mse": (KINK_MIN_MSE, "local_min", [], "1/2"),
}


def two_plateau_trajectory(path) -> None:
    """A synthetic training run with two plateaus, written as an .npz trajectory at ``path``: every
    neuron tiny (a saddle plateau), then neuron 0 grown to a fit of x1 (a local-minimum plateau)."""
    import numpy as np
    T = 300
    W = np.zeros((T, 2, 2))
    A = np.zeros((T, 2, 1))
    for t in range(T):
        s = 1e-7 * (1 + t / 100) if t < 100 else (2e-7 * (1e7 ** ((t - 100) / 50)) if t < 150 else 1.0)
        W[t, 0] = [s ** 0.5, 0]
        A[t, 0] = [s ** 0.5]
        W[t, 1] = [-1e-7, 1e-13]
        A[t, 1] = [1e-7]
    np.savez(path, X=np.array([[1.0, 0], [0, 1]]), Y=np.array([[1.0], [-1]]), W=W, A=A, step=np.arange(T) * 100)
