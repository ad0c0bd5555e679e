"""Mixed logistic regression / LS-PLM core (Gai et al., 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.embedding import FieldEmbedding, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import shared_params_doc


@shared_params_doc
class MixedLogisticRegression(nn.Module):
    """Piece-wise linear model: a softmax gate over ``m`` regions, a logistic model in each.

    ``p(y=1|x) = sum_i softmax(u_1·x, ..., u_m·x)_i * sigmoid(w_i·x)``. Both ``u`` and ``w``
    are first-order (one weight per category, per dense field and per pooled sequence, for
    each of the ``m`` regions), stored as field embeddings of size ``m``. The model returns
    the logit of that mixture, ``log p - log(1 - p)``, with both logarithms computed by
    ``logsumexp`` of log-softmax plus log-sigmoid, so it stays finite at the extremes.
    Gai, Zhu, Li, Liu and Wang, "Learning Piece-wise Linear Models from Large Scale Data for
    Ad Click Prediction", 2017 (arXiv:1704.05194).

    Parameters
    ----------
    <schema>
    region_num : int, default=4
        Number of regions ``m``; ``1`` is plain logistic regression.
    region_features : sequence of str or None, default=None
        Fields that feed the gate ``u·x``; ``None``: every field.
    base_features : sequence of str or None, default=None
        Fields that feed the regional models ``w·x``; ``None``: every field.
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: logits of shape (B,); ``regions(batch)``: gate probabilities (B, m).
    """

    region_fields: Tensor
    base_fields: Tensor

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        region_num: int = 4,
        region_features: Sequence[str] | None = None,
        base_features: Sequence[str] | None = None,
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        names = (
            [f.name for f in schema.sparse]
            + [f.name for f in schema.dense]
            + [f.name for f in schema.sequence]
        )
        for attr, selected in (
            ("region_fields", _positions(names, region_features, "region_features")),
            ("base_fields", _positions(names, base_features, "base_features")),
        ):
            self.register_buffer(attr, torch.tensor(selected, dtype=torch.long), persistent=False)
        # the regional models start at zero (the model starts as an untrained LR); the random
        # gate makes each region see other rows, which tells the regional models apart
        # first-order weights, so a history has its own rows (see LinearTerm)
        self.region = FieldEmbedding(
            schema, region_num, pooling=sequence_pooling, shared_rows=False
        )
        self.base = FieldEmbedding(
            schema, region_num, pooling=sequence_pooling, init_std=0.0, shared_rows=False
        )
        self.region_bias = nn.Parameter(torch.zeros(region_num))
        self.base_bias = nn.Parameter(torch.zeros(region_num))

    def _scores(self, batch: TensorBatch) -> tuple[Tensor, Tensor]:
        gate = self.region(batch).index_select(1, self.region_fields).sum(1) + self.region_bias
        base = self.base(batch).index_select(1, self.base_fields).sum(1) + self.base_bias
        return F.log_softmax(gate, dim=1), base  # (B, m) each

    def regions(self, batch: TensorBatch) -> Tensor:
        """Gate probabilities ``softmax(u·x)`` of each row: (B, m)."""
        return self._scores(batch)[0].exp()

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        log_gate, base = self._scores(batch)
        log_p = torch.logsumexp(log_gate + F.logsigmoid(base), dim=1)
        log_not_p = torch.logsumexp(log_gate + F.logsigmoid(-base), dim=1)
        return log_p - log_not_p


def _positions(names: list[str], selected: Sequence[str] | None, param: str) -> list[int]:
    if selected is None:
        return list(range(len(names)))
    if isinstance(selected, str) or len(selected) == 0:
        raise ValueError(
            f"MixedLogisticRegression: {param} must be a non-empty list of field names or "
            f"None (every field). Got {selected!r}."
        )
    missing = [name for name in selected if name not in names]
    if missing:
        raise ValueError(
            f"MixedLogisticRegression: {param} names {missing}, which are not fields of the "
            f"encoded data. The fields are {names}."
        )
    return [names.index(name) for name in selected]
