"""verifier: exact certificates for stationary points of one-hidden-layer ReLU-like networks."""
from .certify import Result, certify
from .errors import InputError, VerifierError
from .io import load
from .problem import Activation, Point, Problem, as_problem_point

__all__ = ["certify", "Result", "Problem", "Point", "Activation", "as_problem_point", "load",
           "VerifierError", "InputError"]
__version__ = "0.1.0"
