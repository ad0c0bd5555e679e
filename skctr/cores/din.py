"""Deep Interest Network core (Zhou et al., 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..nn import AttentionSequencePooling, sequence_mask
from ..nn.activation import _check_int_sequence, is_plain
from ..nn.attention import _real_positions
from ..nn.embedding import FieldEmbedding, TensorBatch
from ..preprocessing.schema import FeatureSchema
from ._shared import deep_mlp, shared_params_doc


def history_pairs(
    schema: FeatureSchema, history_features: Sequence[str] | str | None
) -> list[tuple[int, int]]:
    """``(sparse index, sequence index)`` of each candidate field and the history sharing it.

    ``None`` takes every sparse field that some sequence shares a vocabulary with (e.g.
    ``item_id`` for ``hist_item_id``). When several sequences share one field, the first in
    schema order is its history.
    """
    sharing: dict[str, int] = {}
    for j, seq in enumerate(schema.sequence):
        if seq.shares is not None:
            sharing.setdefault(seq.shares, j)
    if history_features is None:
        names = [f.name for f in schema.sparse if f.name in sharing]
    else:
        names = [history_features] if isinstance(history_features, str) else history_features
    missing = [name for name in names if name not in sharing]
    if missing:
        found = {schema.sequence[j].name: name for name, j in sharing.items()}
        what = f"the histories are {found} (sequence: sparse field)" if found else "X has none"
        raise ValueError(
            f"DIN: history_features {missing} have no sequence column sharing their "
            f"vocabulary; {what}. Name sparse fields that a history shares, or add a column "
            "'hist_<field>' of lists to X."
        )
    return [(schema.sparse_index(name), sharing[name]) for name in dict.fromkeys(names)]


@shared_params_doc
class DIN(nn.Module):
    r"""Deep Interest Network: the user's history pooled by attention to the candidate ad.

    For the candidate fields ``history_features`` (e.g. ``item_id`` and ``cate_id``) the
    query is the concatenation ``q`` (B, H*K) of their embeddings and the keys ``k_t``
    (B, T, H*K) the concatenated embeddings of the histories sharing their vocabularies
    (``hist_item_id``, ``hist_cate_id``), item by item. A local activation unit scores
    each real item, ``w_t = MLP([k_t, q, k_t - q, k_t ⊙ q])``, and the history becomes
    ``sum_t w_t k_t``: not softmax-normalised, as in the paper, so the sum keeps the
    intensity of the user's interest. The other sequences are pooled by
    ``sequence_pooling``. Every field vector (the attended histories in their sequences'
    places) is concatenated into an MLP that gives the logit. Zhou, Zhu, Song, Fan, Zhu,
    Ma, Yan, Jin, Li and Gai, "Deep Interest Network for Click-Through Rate Prediction",
    KDD 2018 (arXiv:1706.06978).

    Without any history (no sequence shares a sparse field's vocabulary) the model is an
    embedding + MLP network.

    Parameters
    ----------
    schema : FeatureSchema
        The fields. Histories are right-padded; ``batch.lengths[:, j]`` counts the real
        items of sequence ``j``. Attended histories must share one ``maxlen``; a row's
        history length is the smallest of their lengths.
    <embedding_dim>
    <hidden_units>
    <dropout>
    activation : str, default="dice"
        Activation of the MLP's hidden layers (the paper's Dice).
    history_features : sequence of str or None, default=None
        Candidate sparse fields whose histories are attended to; ``None``: every sparse field
        that a sequence shares a vocabulary with.
    att_hidden_units : sequence of int, default=(80, 40)
        Hidden widths of the local activation unit.
    att_activation : str, default="dice"
        Activation of the local activation unit.
    att_weight_normalization : bool, default=False
        Softmax the attention scores over each history's real items.
    sequence_pooling : {"mean", "sum", "max"}, default="mean"
        Pooling of the sequences that are not attended to.

    Notes
    -----
    ``forward(batch)``: query (B, H*K), keys (B, T, H*K) -> attended (B, H, K); all fields
    (B, F, K) -> MLP -> logits (B,).
    """

    def __init__(
        self,
        schema: FeatureSchema,
        *,
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (256, 128),
        dropout: float = 0.0,
        activation: str = "dice",
        history_features: Sequence[str] | None = None,
        att_hidden_units: Sequence[int] = (80, 40),
        att_activation: str = "dice",
        att_weight_normalization: bool = False,
        sequence_pooling: str = "mean",
    ) -> None:
        super().__init__()
        att_hidden_units = _check_int_sequence("DIN", "att_hidden_units", att_hidden_units)
        pairs = history_pairs(schema, history_features)
        maxlens = {schema.sequence[j].name: schema.sequence[j].maxlen for _, j in pairs}
        if len(set(maxlens.values())) > 1:
            raise ValueError(
                f"DIN attends to the histories {list(maxlens)} item by item, so they need one "
                f"maxlen; got {maxlens}. Give them the same maxlen in CTRFeatureTransformer."
            )
        self.candidates = [i for i, _ in pairs]
        self.histories = [j for _, j in pairs]
        self.embedding_dim = embedding_dim
        self.embedding = FieldEmbedding(schema, embedding_dim, pooling=sequence_pooling)
        self.attention = (
            AttentionSequencePooling(
                len(pairs) * embedding_dim,
                att_hidden_units,
                activation=att_activation,
                weight_normalization=att_weight_normalization,
            )
            if pairs
            else None
        )
        self.mlp = deep_mlp(self.embedding, hidden_units, dropout, activation)

    def forward(self, batch: TensorBatch) -> Tensor:
        """Logits of shape (B,)."""
        emb = self.embedding
        others = [j for j in range(len(batch.sequences)) if j not in self.histories]
        groups = [[j] for j in others]
        positions: list[Tensor | None] = [None] * len(others)
        attention, rows = self.attention, None  # rows: of the packed history items
        if attention is not None:
            groups.append(self.histories)
            # a row's history length: the shortest of its histories (pairwise minima,
            # not amin, whose reduction over a short axis costs ~0.6 ms on a CPU)
            lengths = batch.lengths[:, self.histories[0]]
            for j in self.histories[1:]:
                lengths = torch.minimum(lengths, batch.lengths[:, j])
            # a plain pooling (and unit) gets the real history items alone, packed,
            # straight from the table: the padding is neither looked up nor stored
            real = None
            if is_plain(attention, AttentionSequencePooling) and attention._unit_scores_packed():
                steps = batch.sequences[self.histories[0]].shape[1]
                real, rows = _real_positions(sequence_mask(lengths, steps))
            positions.append(real)
        # sparse (B, n_sparse, K), the other sequences' items (B, T_j, K), the history
        # items (N, H*K) or keys (B, T, H*K)
        sparse, *items = emb.lookup(batch, groups, positions=positions)
        seqs: list[Tensor | None] = [None] * len(batch.sequences)
        for j, vectors in zip(others, items[: len(others)], strict=True):
            seqs[j] = emb.pool(vectors, batch.lengths[:, j])
        if attention is not None:
            query = sparse[:, self.candidates].flatten(1)  # (B, H*K)
            if rows is None:  # (B, T, H*K) keys, to the pooling as it is
                attended = attention(query, items[-1], lengths)
            else:
                attended = attention.pool_items(query, items[-1], rows)
            for j, vector in zip(
                self.histories, attended.split(self.embedding_dim, dim=1), strict=True
            ):
                seqs[j] = vector
        pooled = torch.cat(seqs, dim=1) if seqs else batch.dense[:, :0]
        return self.mlp([sparse.flatten(1), pooled, batch.dense]).squeeze(-1)
