"""Deep & Cross Network core (Wang et al., 2017; DCN-V2, Wang et al., 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..nn import MLP, CrossNetwork
from ..nn.activation import is_plain
from ..nn.embedding import FieldEmbedding, TensorBatch
from ..nn.mlp import blocks_linear, linear_of_blocks
from ..preprocessing.schema import FeatureSchema
from ._shared import shared_params_doc


@shared_params_doc
class DCN(nn.Module):
    r"""Deep & Cross Network: a cross network and an MLP side by side on one input.

    ``x0`` stacks every categorical field's vector (sequences pooled) and the dense values,
    as in the paper. The cross network computes ``x_{l+1} = x0 (x_l^T w_l) + b_l + x_l``
    (``"vector"``, DCN) or ``x_{l+1} = x0 ⊙ (W_l x_l + b_l) + x_l`` (``"matrix"``, DCN-M /
    DCN-V2), so layer ``l`` holds interactions up to degree ``l + 1``; the MLP runs on the
    same ``x0`` and ``logit = w^T [x_L, MLP(x0)] + b``. Wang, Fu, Fu and Wang, "Deep & Cross
    Network for Ad Click Predictions", ADKDD 2017 (arXiv:1708.05123); Wang et al., "DCN V2:
    Improved Deep & Cross Network and Practical Lessons for Web-scale Learning to Rank
    Systems", WWW 2021 (arXiv:2008.13535).

    Parameters
    ----------
    <schema>
    embedding_dim : int, default=8
        Size K of each field's vector; ``x0`` has ``K`` entries per sparse or
        sequence field and one per dense field.
    hidden_units : sequence of int, default=(256, 128)
        Widths of the MLP's hidden layers; ``()`` leaves the cross network alone.
    <dropout>
    <activation>
    cross_num : int, default=2
        Number of cross layers L.
    cross_parameterization : {"vector", "matrix"}, default="vector"
        ``w_l`` of shape (D,) (DCN) or ``W_l`` of shape (D, D) (DCN-M / DCN-V2).
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: x0 (B, D) -> cross (B, D) and MLP (B, hidden_units[-1]) -> logits (B,).
    """

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (256, 128),
        dropout: float = 0.0,
        activation: str = "relu",
        cross_num: int = 2,
        cross_parameterization: str = "vector",
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        # x0 is the deep input alone: the dense fields enter as their values, not vectors
        self.embedding = FieldEmbedding(
            schema, embedding_dim, pooling=sequence_pooling, dense_fields=False
        )
        in_dim = self.embedding.deep_dim
        self.cross = CrossNetwork(in_dim, cross_num, cross_parameterization)
        self.mlp = (
            MLP(in_dim, hidden_units, dropout=dropout, activation=activation)
            if len(hidden_units)
            else None
        )
        deep_dim = self.mlp.output_dim if self.mlp is not None else 0
        self.head = nn.Linear(self.cross.output_dim + deep_dim, 1)
        nn.init.zeros_(self.head.bias)  # start at p = 0.5, not at a random offset

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        blocks = self.embedding.deep_input(batch, as_blocks=True)
        # the MLP reads the blocks: no input gradient for the raw dense values
        deep = [] if self.mlp is None else [self.mlp(blocks)]
        cross, head = self.cross, self.head
        plain = is_plain(cross, CrossNetwork) and is_plain(head, nn.Linear)
        if not plain or cross.parameterization != "vector":
            x0 = torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]
            return linear_of_blocks(head, [cross(x0), *deep]).squeeze(-1)  # w^T [x_L, h] + b
        # x_L = scale x0 + shift, so w_x^T x_L = scale (w_x^T x0) + w_x^T shift: one product
        # of x0's blocks gives w_x^T x0 with every layer's x0^T w_l; x0 and x_L are not built
        w_x = head.weight[:, : cross.in_dim]
        projections = blocks_linear(blocks, torch.cat([cross.weight, w_x]))  # (B, L + 1)
        scale, shift = cross.scale_and_shift(projections[:, :-1])
        constant = (shift * w_x[0]).sum() + head.bias  # w_x^T shift + b, in float32
        logit = torch.addcmul(constant, scale, projections[:, -1])
        if deep:
            logit = logit + nn.functional.linear(deep[0], head.weight[:, cross.in_dim :])[:, 0]
        return logit
