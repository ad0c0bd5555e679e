"""FNN core (Zhang, Du and Wang, 2016)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..nn import MLP
from ..nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import shared_params_doc


@shared_params_doc
class FNN(nn.Module):
    """Factorization-machine supported neural network: an MLP on the field vectors.

    Each field ``i`` is represented by its first-order weight ``w_i`` and its factor vector
    ``v_i``, exactly the parameters of a factorization machine; the MLP reads
    ``z = (w_0, w_1, ..., w_F, v_1, ..., v_F)`` and outputs the logit. ``linear`` and
    ``embedding`` have the layout of :class:`~skctr.cores.FactorizationMachineModel`'s
    modules of the same names, so a trained FM can be copied in before training (what
    :class:`~skctr.estimators.FNNClassifier` does). Zhang, Du and Wang, "Deep Learning over
    Multi-field Categorical Data: A Case Study on User Response Prediction", ECIR 2016
    (arXiv:1601.02376).

    Parameters
    ----------
    <schema>
    embedding_dim : int, default=8
        Size K of the factor vectors.
    <hidden_units>
    <dropout>
    <activation>
    sequence_pooling : {"mean", "sum", "max"}, default="mean"
        How a sequence becomes one field vector (and one first-order weight).

    Notes
    -----
    ``forward(batch)``: logits of shape (B,); the MLP input has width ``1 + F * (K + 1)``.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (256, 128),
        dropout: float = 0.0,
        activation: str = "relu",
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        self.linear = LinearTerm(schema, pooling=sequence_pooling)
        self.embedding = FieldEmbedding(schema, embedding_dim, pooling=sequence_pooling)
        self.mlp = MLP(
            1 + schema.num_fields * (embedding_dim + 1),
            hidden_units,
            dropout=dropout,
            activation=activation,
            output_dim=1,
        )

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        weights = self.linear.weights(batch).flatten(1)  # (B, F)
        bias = self.linear.bias.expand(batch.num_rows, 1)  # (B, 1)
        return self.mlp([bias, weights, self.embedding(batch).flatten(1)]).squeeze(-1)
