"""Wide & Deep core (Cheng et al., 2016)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import deep_mlp, shared_params_doc

_MODULUS = 2_147_483_647  # the Mersenne prime 2**31 - 1: every product below stays < 2**62
_MULTIPLIER = 1_103_515_245


def hash_codes(codes: Tensor, buckets: int) -> Tensor:
    """A deterministic hash of each row's tuple of integer codes into ``[0, buckets)``.

    A multiplicative hash modulo ``2**31 - 1``, in int64 throughout (no float round trip).

    Parameters
    ----------
    codes : LongTensor of shape (B, C)
        The codes of the crossed fields.
    buckets : int
        Number of buckets.

    Returns
    -------
    LongTensor of shape (B,)
    """
    h = torch.zeros(codes.shape[0], dtype=torch.long, device=codes.device)
    for column in codes.unbind(1):
        h = (h + column.remainder(_MODULUS) + 1) * _MULTIPLIER % _MODULUS
    return h % buckets


@shared_params_doc
class WideDeep(nn.Module):
    """Wide & Deep: a linear model on raw and crossed fields plus an MLP on embeddings.

    ``logit = linear(x) + sum_c w_c[hash(x_c) mod buckets] + MLP(deep(E))``. Each declared
    cross ``c`` (a tuple of sparse field names) is hashed from the fields' codes inside the
    model, into ``cross_buckets`` weights of its own, so crosses need no preprocessing step.
    The MLP reads ``deep(E)`` (:meth:`~skctr.nn.embedding.FieldEmbedding.deep_input`): the
    categorical field vectors and the raw dense values, as in the paper.
    Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016
    (arXiv:1606.07792).

    Parameters
    ----------
    <schema>
    <embedding_dim>
    <hidden_units>
    <dropout>
    <activation>
    cross_features : sequence of sequence of str, default=()
        The crosses of the wide part, e.g. ``(("user", "item"), ("site", "hour"))``.
    cross_buckets : int, default=10000
        Hash buckets (weights) per cross.
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
        cross_features: Sequence[Sequence[str]] = (),
        cross_buckets: int = 10000,
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        self.cross_buckets = cross_buckets
        self.crosses = [_cross_columns(schema, cross) for cross in cross_features]
        self.linear = LinearTerm(schema, pooling=sequence_pooling)
        self.cross_weights = nn.Embedding(max(len(self.crosses), 1) * cross_buckets, 1, sparse=True)
        nn.init.zeros_(self.cross_weights.weight)
        self.cross_weights.first_order = True  # wide weights: trained like LinearTerm's
        # the MLP reads the deep input alone: dense fields enter as their values
        self.embedding = FieldEmbedding(
            schema, embedding_dim, pooling=sequence_pooling, dense_fields=False
        )
        self.mlp = deep_mlp(self.embedding, hidden_units, dropout, activation)

    def cross_ids(self, batch: TensorBatch) -> Tensor:
        """Rows of ``cross_weights`` for each cross: (B, n_crosses), cross ``c`` in
        ``[c * cross_buckets, (c + 1) * cross_buckets)``."""
        ids = [
            hash_codes(batch.sparse[:, columns], self.cross_buckets) + c * self.cross_buckets
            for c, columns in enumerate(self.crosses)
        ]
        return torch.stack(ids, dim=1) if ids else batch.sparse.new_zeros(batch.num_rows, 0)

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        wide = self.linear(batch) + self.cross_weights(self.cross_ids(batch)).sum(dim=(1, 2))
        deep_in = self.embedding.deep_input(batch, as_blocks=True)
        deep = self.mlp(deep_in).squeeze(-1)
        return wide + deep


def _cross_columns(schema: FeatureSchema, cross: Sequence[str]) -> list[int]:
    """Positions of a cross's fields among the sparse fields, with a helpful error."""
    if isinstance(cross, str) or not isinstance(cross, Sequence) or len(cross) == 0:
        raise ValueError(
            "WideDeep: each entry of cross_features must be a non-empty tuple of sparse "
            f"column names, e.g. cross_features=(('user', 'item'),). Got {cross!r}."
        )
    columns = []
    for name in cross:
        try:
            columns.append(schema.sparse_index(name))
        except KeyError as exc:
            raise ValueError(
                f"WideDeep: cross_features names column {name!r} (in cross {tuple(cross)!r}), "
                f"which is not a sparse field. The sparse fields are "
                f"{[f.name for f in schema.sparse]}; a numerical column can be crossed after "
                "binning it (CTRFeatureTransformer(n_bins=...))."
            ) from exc
    return columns
