"""Start a core at the base rate: its intercept set to the log-odds of the click rate."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..nn.embedding import LinearTerm


def base_rate_logit(targets: np.ndarray, sample_weight: np.ndarray) -> float:
    """Log-odds of the weighted positive rate, clipped away from 0 and 1.

    Parameters
    ----------
    targets : ndarray of shape (n,)
        0/1 targets.
    sample_weight : ndarray of shape (n,)
        Row weights.

    Returns
    -------
    float
        ``log(p / (1 - p))`` of the weighted mean of ``targets``.
    """
    total = float(np.sum(sample_weight))
    rate = float(np.dot(targets, sample_weight)) / total if total > 0 else 0.5
    rate = min(max(rate, 1e-4), 1 - 1e-4)
    return math.log(rate / (1.0 - rate))


@torch.no_grad()
def init_intercept(core: nn.Module, logit: float) -> nn.Parameter | None:
    """Set the bias that adds to a core's output logit, so that training starts at ``logit``.

    A CTR model whose logit starts at 0 predicts 0.5 where the click rate is a few percent;
    every step then first spends its update on moving the intercept (a dense weight moves by
    about ``learning_rate`` per Adam step, so 0 to logit(0.2) = -1.4 takes over a thousand
    steps at 1e-3: tens of epochs on a small data set), and the embedding rows absorb the
    offset meanwhile. The usual remedy (as ``init_score`` / ``base_score`` in gradient
    boosting) is to start from the base rate. Which bias is the output's intercept is found
    from the core's structure: a mixture's per-region biases (``base_bias``, MLR), else the
    last ``Linear`` layer with one output and a bias (the head of the deep part), else the
    bias of the first-order term (:class:`~skctr.nn.embedding.LinearTerm`).

    Parameters
    ----------
    core : nn.Module
        The freshly built core.
    logit : float
        The starting logit, e.g. from :func:`base_rate_logit`.

    Returns
    -------
    nn.Parameter or None
        The bias that was set; None if the core has none of the above.
    """
    bias = getattr(core, "base_bias", None)
    if not isinstance(bias, nn.Parameter):
        bias = None
        for module in core.modules():
            if isinstance(module, nn.Linear) and module.out_features == 1:
                if module.bias is not None:
                    bias = module.bias
        if bias is None:
            bias = next((m.bias for m in core.modules() if isinstance(m, LinearTerm)), None)
    if bias is not None:
        bias.fill_(logit)
    return bias
