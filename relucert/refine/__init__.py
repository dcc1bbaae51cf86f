"""Refinement: from a float checkpoint to a nearby exact point that can be certified."""
from relucert.refine.driver import (DECISIVE, READINGS, Refinement, Tolerances, classify, effective_kink_tol,
                                    float_gradient_norm, refine, refined_report)

__all__ = ["DECISIVE", "READINGS", "Refinement", "Tolerances", "classify", "effective_kink_tol",
           "float_gradient_norm", "refine", "refined_report"]
