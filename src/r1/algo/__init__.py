"""Pure tensor math for GRPO and its variants: tensors in, tensors out; imports torch only (plus the registry).

Every variant is a name in a registry (:data:`ADV_NORMS`, :data:`IS_LEVELS`, :data:`LOSS_AGGS`,
:data:`KL_ESTIMATORS`, :data:`OVERLONG`); ``docs/grpo.md`` is the implementation-details checklist that points at these functions.
"""

from r1.algo.advantages import ADV_NORMS, compute_group_advantages, group_zero_variance
from r1.algo.kl import KL_ESTIMATORS, compute_kl
from r1.algo.logprobs import entropy_from_logits, gather_logprobs, masked_mean
from r1.algo.losses import IS_LEVELS, LOSS_AGGS, aggregate_loss, compute_policy_loss
from r1.algo.overlong import OVERLONG, overlong_soft_penalty

__all__ = [
    "ADV_NORMS",
    "IS_LEVELS",
    "KL_ESTIMATORS",
    "LOSS_AGGS",
    "OVERLONG",
    "aggregate_loss",
    "compute_group_advantages",
    "compute_kl",
    "compute_policy_loss",
    "entropy_from_logits",
    "gather_logprobs",
    "group_zero_variance",
    "masked_mean",
    "overlong_soft_penalty",
]
