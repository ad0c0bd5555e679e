"""DeepFM core (Guo et al., 2017)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..nn import FactorizationMachine
from ..nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import deep_mlp, shared_params_doc


@shared_params_doc
class DeepFM(nn.Module):
    """DeepFM: a factorization machine and an MLP sharing one embedding.

    ``logit = linear(x) + FM(E) + MLP(deep(E))``, where ``E`` holds one vector per field
    (sequences pooled); ``deep(E)`` (:meth:`~skctr.nn.embedding.FieldEmbedding.fields_and_deep`)
    is the categorical field vectors and the raw dense values. Guo, Tang, Ye, Li and He,
    "DeepFM: A Factorization-Machine based Neural Network for CTR Prediction", IJCAI 2017
    (arXiv:1703.04247).

    Parameters
    ----------
    <schema>
    <embedding_dim>
    <hidden_units>
    <dropout>
    <activation>
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: logits of shape (B,).
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
        self.embedding = FieldEmbedding(schema, embedding_dim, pooling=sequence_pooling)
        self.linear = LinearTerm(schema, pooling=sequence_pooling)
        self.fm = FactorizationMachine()
        self.mlp = deep_mlp(self.embedding, hidden_units, dropout, activation)

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        fields, deep_in = self.embedding.fields_and_deep(batch, as_blocks=True, field_blocks=True)
        deep = self.mlp(deep_in).squeeze(-1)
        return self.linear(batch) + self.fm(fields) + deep
