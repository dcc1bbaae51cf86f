"""Refinement: from a float checkpoint to a nearby exact point that can be certified.

Modules, bottom-up: ``exact`` (exact rational helpers), ``classify`` (tolerances, the activation
pattern, snapping, the float gradient), ``scalar`` (exact least squares on a fixed pattern),
``vector`` (high-precision Newton for vector output), ``replicas`` (near-parallel neurons read as
exact replicas), ``driver`` (the readings, certification of each refined point, the report)."""
from relucert.refine.converge import Converged, converge
from relucert.refine.classify import Tolerances, classify, effective_kink_tol, float_gradient_norm
from relucert.refine.driver import (DECISIVE, READINGS, RefinedReport, Refinement, refine, refine_point,
                                    refined_report)

__all__ = ["Converged", "converge", "DECISIVE", "READINGS", "RefinedReport", "Refinement", "Tolerances", "classify", "effective_kink_tol",
           "float_gradient_norm", "refine", "refine_point", "refined_report"]
