"""NFM core (He and Chua, 2017)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..nn import MLP, BiInteractionPooling
from ..nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import shared_params_doc


@shared_params_doc
class NFM(nn.Module):
    """Neural factorization machine: an MLP over the bi-interaction of the field vectors.

    ``logit = linear(x) + MLP(dropout(sum_{i<j} e_i ⊙ e_j))``: the bi-interaction pooling
    keeps the pairwise products as a K-vector (an FM that does not sum over dimensions),
    and the MLP learns higher-order interactions from it. With no hidden layers the MLP is
    one linear map and the model is a factorization machine with weighted dimensions.
    He and Chua, "Neural Factorization Machines for Sparse Predictive Analytics",
    SIGIR 2017 (arXiv:1708.05027).

    Parameters
    ----------
    <schema>
    <embedding_dim>
    <hidden_units>
    <dropout>
    <activation>
    bi_dropout : float, default=0.0
        Dropout on the bi-interaction vector.
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: logits of shape (B,); the MLP input has width K.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (256, 128),
        dropout: float = 0.0,
        activation: str = "relu",
        bi_dropout: float = 0.0,
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        self.linear = LinearTerm(schema, pooling=sequence_pooling)
        self.embedding = FieldEmbedding(schema, embedding_dim, pooling=sequence_pooling)
        self.bi_interaction = BiInteractionPooling()
        self.bi_dropout = nn.Dropout(bi_dropout)
        self.mlp = MLP(
            embedding_dim, hidden_units, dropout=dropout, activation=activation, output_dim=1
        )
        # the interaction part starts at zero, so the model starts as its linear part
        nn.init.zeros_(self.mlp.layers[-1].weight)
        nn.init.zeros_(self.mlp.layers[-1].bias)

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        pooled = self.bi_dropout(self.bi_interaction(self.embedding.field_blocks(batch)))
        return self.linear(batch) + self.mlp(pooled).squeeze(-1)
