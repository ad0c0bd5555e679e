"""AFM core (Xiao et al., 2017)."""

from __future__ import annotations

from torch import Tensor, nn

from ..nn import AFMAttention
from ..nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import shared_params_doc


@shared_params_doc
class AFM(nn.Module):
    """Attentional factorization machine: pairwise interactions weighted by attention.

    ``logit = linear(x) + p^T sum_{i<j} a_ij (e_i ⊙ e_j)``, where the weight ``a_ij`` of
    each field pair comes from a small attention network over ``e_i ⊙ e_j`` and the weights
    of a row sum to one (pairs in the order of :func:`skctr.nn.pairwise_indices`).
    Xiao, Ye, He, Zhang, Wu and Chua, "Attentional Factorization Machines: Learning the
    Weight of Feature Interactions via Attention Networks", IJCAI 2017 (arXiv:1708.04617).

    Parameters
    ----------
    <schema>
    <embedding_dim>
    attention_dim : int, default=8
        Width of the attention network.
    attention_dropout : float, default=0.0
        Dropout on the attention-pooled vector.
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: logits of shape (B,); ``attention(batch)``: pair weights
    (B, F (F - 1) / 2).
    """

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        embedding_dim: int = 8,
        attention_dim: int = 8,
        attention_dropout: float = 0.0,
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        self.linear = LinearTerm(schema, pooling=sequence_pooling)
        self.embedding = FieldEmbedding(schema, embedding_dim, pooling=sequence_pooling)
        self.attention_pooling = AFMAttention(embedding_dim, attention_dim, attention_dropout)
        self.projection = nn.Linear(embedding_dim, 1, bias=False)

    def attention(self, batch: TensorBatch) -> Tensor:
        """Attention weight of each field pair: (B, F (F - 1) / 2), rows summing to one."""
        return self.attention_pooling(self.embedding(batch))[1]

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        pooled, _ = self.attention_pooling(self.embedding(batch))
        return self.linear(batch) + self.projection(pooled).squeeze(-1)
