"""Automatic feedback for the exercises: each ``check_*`` compares a student's function with
the course's reference and explains the first mismatch.

Checks never raise on a wrong answer: they return a :class:`CheckResult` whose text says what
is right or what to fix, so a notebook cell shows the feedback directly. One module per part of
the course; every check is importable from here.
"""

from course_utils.checks._base import CheckResult
from course_utils.checks.basics import check_accuracy, check_train_step
from course_utils.checks.data import check_accumulated_step, check_mean_std, check_mixup
from course_utils.checks.hardware import check_amp_step, check_shard_indices
from course_utils.checks.layers import check_batchnorm
from course_utils.checks.losses import check_log_softmax
from course_utils.checks.optimization import check_adam_step, check_warmup_cosine
from course_utils.checks.regularization import check_early_stopping, check_l2_penalty
from course_utils.checks.transfer import check_freeze
from course_utils.checks.tuning import check_log_uniform, check_smooth, check_stop_epoch

__all__ = [
    "CheckResult",
    "check_accumulated_step",
    "check_accuracy",
    "check_adam_step",
    "check_amp_step",
    "check_batchnorm",
    "check_early_stopping",
    "check_freeze",
    "check_l2_penalty",
    "check_log_softmax",
    "check_log_uniform",
    "check_mean_std",
    "check_mixup",
    "check_shard_indices",
    "check_smooth",
    "check_stop_epoch",
    "check_train_step",
    "check_warmup_cosine",
]
