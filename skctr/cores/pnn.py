"""PNN core (Qu et al., 2016)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..nn import MLP, InnerProduct, OuterProduct
from ..nn.embedding import FieldEmbedding, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import shared_params_doc

PRODUCT_TYPES = ("inner", "outer", "both")


@shared_params_doc
class PNN(nn.Module):
    """Product-based neural network: field-pair products next to the embeddings, then an MLP.

    The product layer emits the linear signal ``z = deep(E)`` and a product signal ``p``
    with one entry per field pair ``i < j``: the inner product ``<e_i, e_j>`` (IPNN), the
    kernel product ``e_i^T W_ij e_j`` (OPNN, kernel form of the journal version) or both.
    ``MLP([z, p])`` gives the logit; its first layer is the paper's ``l_z + l_p + b_1``.
    Qu, Cai, Ren, Zhang, Yu, Wen and Wang, "Product-based Neural Networks for User Response
    Prediction", ICDM 2016 (arXiv:1611.00144).

    Parameters
    ----------
    <schema>
    <embedding_dim>
    <hidden_units>
    <dropout>
    <activation>
    product_type : {"inner", "outer", "both"}, default="inner"
        Which pairwise products feed the MLP.
    kernel_type : {"mat", "vec", "num"}, default="mat"
        Form of the outer-product kernels ``W_ij``: full ``K x K``, diagonal or scalar.
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: logits of shape (B,); the MLP input has width ``F * K + P`` (``2P``
    for ``"both"``), ``P = F (F - 1) / 2``.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (256, 128),
        dropout: float = 0.0,
        activation: str = "relu",
        product_type: str = "inner",
        kernel_type: str = "mat",
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        if product_type not in PRODUCT_TYPES:
            raise ValueError(
                f"PNN: product_type must be one of {PRODUCT_TYPES}, got {product_type!r}."
            )
        num_fields = schema.num_fields
        num_pairs = num_fields * (num_fields - 1) // 2
        self.embedding = FieldEmbedding(schema, embedding_dim, pooling=sequence_pooling)
        self.inner = InnerProduct() if product_type in ("inner", "both") else None
        self.outer = (  # no pairs (and no kernels) with a single field
            OuterProduct(num_fields, embedding_dim, kernel_type)
            if product_type in ("outer", "both") and num_fields >= 2
            else None
        )
        width = self.embedding.deep_dim + num_pairs * (2 if product_type == "both" else 1)
        self.mlp = MLP(width, hidden_units, dropout=dropout, activation=activation, output_dim=1)

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        fields, parts = self.embedding.fields_and_deep(batch, as_blocks=True)
        if self.inner is not None:
            parts.append(self.inner(fields))
        if self.outer is not None:
            parts.append(self.outer(fields))
        return self.mlp(parts).squeeze(-1)
