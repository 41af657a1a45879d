"""The frozen evaluator: classification metrics, operating points, confounder reliance and dependence,
bootstrap intervals and calibration.

Importing this package does not import torch; AUROC loads ``torchmetrics`` on first use.
"""

from .bootstrap import BootstrapCI, bootstrap_ci, resample_indices
from .compare import paired_difference_ci, patient_ids
from .calibration import (
    ReliabilityCurve,
    calibration_slope_intercept,
    expected_calibration_error,
    reliability_curve,
)
from .confounders import confounder_association, confounder_metrics
from .dependence import conditional_hsic, conditional_mutual_information, partial_correlation
from .evaluate import EVALUATOR_VERSION, evaluate_predictions, evaluator_hash
from .metrics import PRIMARY_METRICS, auroc, binary_metrics, classification_metrics
from .operating_point import (
    THRESHOLD_RULES,
    choose_threshold,
    roc_points,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)

__all__ = [
    "BootstrapCI",
    "EVALUATOR_VERSION",
    "PRIMARY_METRICS",
    "ReliabilityCurve",
    "THRESHOLD_RULES",
    "auroc",
    "binary_metrics",
    "bootstrap_ci",
    "calibration_slope_intercept",
    "choose_threshold",
    "classification_metrics",
    "conditional_hsic",
    "conditional_mutual_information",
    "confounder_association",
    "confounder_metrics",
    "evaluate_predictions",
    "evaluator_hash",
    "expected_calibration_error",
    "paired_difference_ci",
    "partial_correlation",
    "patient_ids",
    "reliability_curve",
    "resample_indices",
    "roc_points",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
]
