"""xDeepFM core (Lian et al., 2018)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..nn import CIN
from ..nn.activation import _check_int_sequence
from ..nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import deep_mlp, shared_params_doc


@shared_params_doc
class XDeepFM(nn.Module):
    r"""xDeepFM: linear term + Compressed Interaction Network + MLP on one shared embedding.

    ``logit = linear(x) + w^T CIN(E) + MLP(deep(E))``, where ``E`` holds one vector per
    field (sequences pooled); ``deep(E)``
    (:meth:`~skctr.nn.embedding.FieldEmbedding.fields_and_deep`) is the categorical field vectors
    and the raw dense values. The CIN builds explicit, vector-wise interactions: its layer
    ``k`` holds interactions of degree ``k + 1`` between whole field vectors, each map
    sum-pooled over the embedding axis; the MLP learns implicit, bit-wise ones. Lian, Zhou,
    Zhang, Chen, Xie and Sun, "xDeepFM: Combining Explicit and Implicit Feature Interactions
    for Recommender Systems", KDD 2018 (arXiv:1803.05170).

    Parameters
    ----------
    <schema>
    <embedding_dim>
    hidden_units : sequence of int, default=(256, 128)
        Widths of the MLP's hidden layers (``()``: a linear map of the embeddings).
    <dropout>
    <activation>
    cin_layer_sizes : sequence of int, default=(128, 128)
        Number of feature maps of each CIN layer.
    cin_split_half : bool, default=True
        Each CIN layer but the last passes half its maps on and pools the other half.
    cin_activation : str, default="identity"
        Activation of the CIN maps (the paper's best results use none).
    <interact_dense>
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: E (B, F, K) -> CIN (B, cin.output_dim) -> logits (B,).
    """

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (256, 128),
        dropout: float = 0.0,
        activation: str = "relu",
        cin_layer_sizes: Sequence[int] = (128, 128),
        cin_split_half: bool = True,
        cin_activation: str = "identity",
        interact_dense: bool = True,
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        cin_layer_sizes = _check_int_sequence("XDeepFM", "cin_layer_sizes", cin_layer_sizes)
        self.embedding = FieldEmbedding(
            schema, embedding_dim, pooling=sequence_pooling, dense_fields=interact_dense
        )
        num_fields = self.embedding.num_fields
        self.linear = LinearTerm(schema, pooling=sequence_pooling)
        self.cin = CIN(
            num_fields, cin_layer_sizes, split_half=cin_split_half, activation=cin_activation
        )
        self.cin_head = nn.Linear(self.cin.output_dim, 1, bias=False)  # linear has the bias
        self.mlp = deep_mlp(self.embedding, hidden_units, dropout, activation)

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        fields, deep_in = self.embedding.fields_and_deep(batch, as_blocks=True)
        explicit = self.cin_head(self.cin(fields)).squeeze(-1)
        implicit = self.mlp(deep_in).squeeze(-1)
        return self.linear(batch) + explicit + implicit
