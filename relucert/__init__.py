"""relucert: exact certificates for stationary points of one-hidden-layer ReLU-like networks.

    problem, point = relucert.load("point.json")
    report = relucert.certify_checkpoint(problem, point)     # the whole job (what the CLI prints)
    result = relucert.certify(problem, point)                # the point exactly as given, no refinement
    relucert.check_certificate(report.certificate)           # independent re-check -> CheckResult
    problem, point = relucert.from_torch(model, X, Y)        # a live PyTorch model (relucert.torch)
"""
from relucert.check import CheckResult, check_certificate
from relucert.core.problem import Activation, Point, Problem, as_problem_point
from relucert.decide.certify import Result, certify
from relucert.errors import InputError, RelucertError
from relucert.io import load
from relucert.pipeline import CheckpointReport, certify_checkpoint
from relucert.torch import from_torch           # imports torch only when called
from relucert.tools import render as _render

_render.install()                                # notebooks: results render as markdown (Jupyter)

__all__ = ["certify_checkpoint", "CheckpointReport", "certify", "Result", "check_certificate", "CheckResult",
           "Problem", "Point", "Activation", "as_problem_point", "load", "from_torch", "RelucertError", "InputError"]
__version__ = "0.1.0"
