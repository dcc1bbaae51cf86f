"""relucert: exact certificates for stationary points of one-hidden-layer ReLU-like networks."""
from relucert.decide.certify import Result, certify
from relucert.errors import InputError, RelucertError
from relucert.io import load
from relucert.core.problem import Activation, Point, Problem, as_problem_point

__all__ = ["certify", "Result", "Problem", "Point", "Activation", "as_problem_point", "load",
           "RelucertError", "InputError"]
__version__ = "0.1.0"
