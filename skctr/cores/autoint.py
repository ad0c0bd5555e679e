"""AutoInt core (Song et al., 2019)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..nn import InteractingLayer
from ..nn.embedding import FieldEmbedding, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import deep_mlp, shared_params_doc


@shared_params_doc
class AutoInt(nn.Module):
    r"""AutoInt: stacked multi-head self-attention over the fields (AutoInt+ with an MLP).

    Each interacting layer lets every field attend to every other one,
    ``e_m <- ReLU(concat_h sum_k softmax_k(<W_Q^h e_m, W_K^h e_k>) W_V^h e_k + W_res e_m)``,
    so ``L`` stacked layers model interactions up to order ``L + 1``; the final field
    vectors are concatenated and mapped to the logit by one linear layer. With non-empty
    ``hidden_units`` (the default) an MLP on the embeddings runs in parallel and its logit
    is added: the paper's AutoInt+. Song, Shi, Xiao, Duan, Xu, Zhang and Tang, "AutoInt:
    Automatic Feature Interaction Learning via Self-Attentive Neural Networks", CIKM 2019
    (arXiv:1810.11921).

    Parameters
    ----------
    <schema>
    <embedding_dim>
    hidden_units : sequence of int, default=(256, 128)
        Widths of the parallel MLP's hidden layers (AutoInt+); ``()`` is plain AutoInt (no
        MLP).
    <dropout>
    <activation>
    att_layer_num : int, default=3
        Number of stacked interacting layers L.
    att_head_num : int, default=2
        Attention heads H per layer.
    att_embedding_dim : int, default=8
        Width d' of each head; a layer outputs ``H * d'`` per field.
    att_res : bool, default=True
        Residual connection ``W_res e_m`` in each layer.
    <interact_dense>
    <sequence_pooling>

    Notes
    -----
    ``forward(batch)``: E (B, F, K) -> layers (B, F, H * d') -> flatten (B, F * H * d') ->
    linear -> logits (B,), plus the MLP's logit (on the field vectors and raw dense values)
    when ``hidden_units`` is non-empty.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (256, 128),
        dropout: float = 0.0,
        activation: str = "relu",
        att_layer_num: int = 3,
        att_head_num: int = 2,
        att_embedding_dim: int = 8,
        att_res: bool = True,
        interact_dense: bool = True,
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        if not interact_dense and schema.dense and not len(hidden_units):
            raise ValueError(
                "AutoInt: interact_dense=False needs hidden_units (an MLP): without one the "
                f"dense fields {[f.name for f in schema.dense]} would reach no part of the model."
            )
        self.embedding = FieldEmbedding(
            schema, embedding_dim, pooling=sequence_pooling, dense_fields=interact_dense
        )
        num_fields = self.embedding.num_fields
        layers, width = [], embedding_dim
        for _ in range(att_layer_num):
            layers.append(InteractingLayer(width, att_embedding_dim, att_head_num, att_res))
            width = layers[-1].output_dim
        self.interacting = nn.Sequential(*layers)
        self.head = nn.Linear(num_fields * width, 1)
        nn.init.zeros_(self.head.bias)  # start at p = 0.5, not at a random offset
        self.mlp = (
            deep_mlp(self.embedding, hidden_units, dropout, activation)
            if len(hidden_units)
            else None
        )

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        fields, deep_in = self.embedding.fields_and_deep(batch, as_blocks=True)
        logit = self.head(self.interacting(fields).flatten(1)).squeeze(-1)
        if self.mlp is not None:
            logit = logit + self.mlp(deep_in).squeeze(-1)
        return logit
