"""Baseline cores: logistic regression and the factorization machine."""

from __future__ import annotations

from torch import Tensor, nn

from ..nn import FactorizationMachine
from ..nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import shared_params_doc


@shared_params_doc
class LogisticRegression(nn.Module):
    """Logistic regression on the encoded fields: first-order weights only.

    ``logit = b + sum_f w_f(x)``: a weight per category of each sparse field (a one-hot
    logistic regression), a weight times the value of each dense field, and the pooled item
    weights of each sequence.

    Parameters
    ----------
    <schema>
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: logits of shape (B,).
    """

    def __init__(self, schema: FeatureSchema, *, sequence_pooling: str = "mean") -> None:
        super().__init__()
        self.linear = LinearTerm(schema, pooling=sequence_pooling)

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        return self.linear(batch)


@shared_params_doc
class FactorizationMachineModel(nn.Module):
    """Factorization machine: first-order weights plus all pairwise interactions.

    ``logit = b + sum_f w_f(x) + sum_{i<j} <v_i, v_j>``, the pairwise sum computed in
    O(k·n) as ``0.5 * ((sum_i v_i)^2 - sum_i v_i^2)``. Rendle, "Factorization Machines",
    ICDM 2010.

    Parameters
    ----------
    <schema>
    embedding_dim : int, default=8
        Size k of the factor vectors.
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: logits of shape (B,).
    """

    def __init__(
        self, schema: FeatureSchema, *, embedding_dim: int = 8, sequence_pooling: str = "mean"
    ) -> None:
        super().__init__()
        self.linear = LinearTerm(schema, pooling=sequence_pooling)
        self.embedding = FieldEmbedding(schema, embedding_dim, pooling=sequence_pooling)
        self.fm = FactorizationMachine()

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        return self.linear(batch) + self.fm(self.embedding.field_blocks(batch))
