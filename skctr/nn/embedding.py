"""Field embeddings: one fused, offset-indexed table for every sparse and sequence field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..preprocessing.schema import PAD, FeatureSchema
from .activation import _check_index, first_order_backward, is_plain
from .sequence import SequencePooling


class TensorBatch(NamedTuple):
    """The tensors of an :class:`~skctr.preprocessing.schema.EncodedBatch`.

    Attributes
    ----------
    sparse : LongTensor of shape (B, n_sparse)
        Codes of the sparse fields.
    dense : FloatTensor of shape (B, n_dense)
        Values of the dense fields.
    sequences : tuple of LongTensor of shape (B, maxlen)
        Right-padded codes of each sequence field.
    lengths : LongTensor of shape (B, n_sequence)
        Number of real items of each sequence.
    """

    sparse: Tensor
    dense: Tensor
    sequences: tuple[Tensor, ...]
    lengths: Tensor

    def index(self, rows: Tensor) -> TensorBatch:
        """The rows ``rows`` (a LongTensor of positions) of every tensor."""
        return TensorBatch(
            self.sparse.index_select(0, rows),
            self.dense.index_select(0, rows),
            tuple(s.index_select(0, rows) for s in self.sequences),
            self.lengths.index_select(0, rows),
        )

    def slice(self, start: int, stop: int) -> TensorBatch:
        """The contiguous rows ``start:stop`` (views, no copy)."""
        return TensorBatch(
            self.sparse[start:stop],
            self.dense[start:stop],
            tuple(s[start:stop] for s in self.sequences),
            self.lengths[start:stop],
        )

    def to(self, device: torch.device | str) -> TensorBatch:
        """The same batch on ``device``."""
        return TensorBatch(
            self.sparse.to(device),
            self.dense.to(device),
            tuple(s.to(device) for s in self.sequences),
            self.lengths.to(device),
        )

    @property
    def num_rows(self) -> int:
        """Number of rows B (``len()`` of a NamedTuple counts its fields, not rows)."""
        return self.sparse.shape[0]


def _table_layout(
    schema: FeatureSchema, shared_rows: bool
) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Where each vocabulary's rows start in the fused table, and its blocks in order.

    Returns the first row each field's codes are shifted by (a sequence that shares a
    sparse field's rows gets that field's) and the blocks as ``(vocabulary, rows)``: the
    vocabulary whose codes fill the block (a sequence given its own rows with
    ``shared_rows=False`` is filled with its sparse field's codes, so its block is that
    field's size).
    """
    own = [*schema.sparse, *(f for f in schema.sequence if f.shares is None)]
    sizes = {f.name: f.vocab_size for f in own}
    owners = [(f.name, f.name) for f in schema.sparse] + [
        (f.name, f.shares or f.name) for f in schema.sequence if f.shares is None or not shared_rows
    ]
    offsets: dict[str, int] = {}
    blocks: list[tuple[str, int]] = []
    total = 0
    for owner, vocabulary in owners:
        offsets[owner] = total
        blocks.append((vocabulary, sizes[vocabulary]))
        total += sizes[vocabulary]
    for f in schema.sequence:
        offsets.setdefault(f.name, offsets[f.shares or f.name])  # rows shared
    return offsets, blocks


class FieldEmbedding(nn.Module):
    """Embeds every field of a :class:`FeatureSchema` into vectors of one size.

    All sparse fields and the sequence fields with a vocabulary of their own live in one
    ``nn.Embedding`` table; each field's codes are shifted by its offset, so a batch is
    embedded by a single lookup. A sequence that shares a sparse field's vocabulary
    (``hist_item_id`` and ``item_id``) uses that field's rows (unless
    ``shared_rows=False``). A dense field ``d`` is embedded as ``x_d * v_d`` with a learnt
    vector ``v_d``. With ``sparse=True`` the table gets sparse gradients, so an optimiser
    such as :class:`skctr.training.optim.LazyAdam` updates only the rows a batch touches.

    Parameters
    ----------
    schema : FeatureSchema
        The fields.
    embedding_dim : int
        Size K of each vector.
    pooling : {"mean", "sum", "max"}, default="mean"
        How :meth:`forward` turns each sequence into one field vector.
    sparse : bool, default=True
        Sparse gradients for the table.
    init_std : float, default=0.01
        Standard deviation of the normal initialisation.
    dense_fields : bool, default=True
        Whether dense fields get vectors ``x_d * v_d`` among the field vectors. With
        ``False`` the field vectors are the sparse and sequence fields only (the dense
        values still reach the MLP input of :meth:`fields_and_deep`): interaction layers
        whose cost grows with the square of the number of fields then skip them.
    shared_rows : bool, default=True
        Whether a sequence that shares a sparse field's vocabulary also looks up that
        field's rows. With ``False`` it gets rows of its own (same codes, separate
        vectors): :class:`LinearTerm` does this, since a movie's weight as the candidate
        and as an item of the history are different effects.

    Notes
    -----
    ``forward(batch)``: (B, num_fields, K), sparse, then dense (if ``dense_fields``), then
    sequence fields, each in schema order.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        embedding_dim: int,
        *,
        pooling: str = "mean",
        sparse: bool = True,
        init_std: float = 0.01,
        dense_fields: bool = True,
        shared_rows: bool = True,
    ) -> None:
        super().__init__()
        for name, flag in (("dense_fields", dense_fields), ("shared_rows", shared_rows)):
            if not isinstance(flag, bool):
                raise ValueError(f"FieldEmbedding: {name} must be a bool, got {flag!r}.")
        self.schema = schema
        self.embedding_dim = embedding_dim
        self.dense_fields = dense_fields
        self.shared_rows = shared_rows
        offsets, blocks = _table_layout(schema, shared_rows)
        total = sum(rows for _, rows in blocks)
        self.num_rows = total
        self.table = nn.Embedding(max(total, 1), embedding_dim, sparse=sparse)
        nn.init.normal_(self.table.weight, std=init_std)
        n_dense = len(schema.dense) if dense_fields else 0
        self.dense_weight = nn.Parameter(torch.randn(n_dense, embedding_dim) * init_std)
        self.register_buffer(
            "sparse_offsets",
            torch.tensor([offsets[f.name] for f in schema.sparse], dtype=torch.long),
            persistent=False,
        )
        self.seq_offsets = [offsets[f.name] for f in schema.sequence]
        self.pool = SequencePooling(pooling)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        self._upgrade_state(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _upgrade_state(self, state: dict[str, Any], prefix: str) -> None:
        """Bring a state saved by skctr 0.1's layout to this one, in place.

        Before histories had first-order rows of their own, a ``shared_rows=False`` table
        had no block for a sharing history: it is built from its sparse field's rows,
        which gives the same outputs as before. A ``dense_fields=False`` embedding (Deep
        & Cross, Wide & Deep) used to hold dense vectors it never read: they are dropped.
        """
        dense = state.get(prefix + "dense_weight")
        if dense is not None and not self.dense_fields and dense.shape[0]:
            state[prefix + "dense_weight"] = dense[:0]
        table = state.get(prefix + "table.weight")
        if self.shared_rows or table is None or table.shape[0] == self.table.num_embeddings:
            return
        if table.shape[0] != max(self.schema.embedding_rows, 1):
            return  # not the old layout: let loading report the mismatch
        old_offsets, _ = _table_layout(self.schema, shared_rows=True)
        _, blocks = _table_layout(self.schema, self.shared_rows)
        state[prefix + "table.weight"] = torch.cat(
            [table[old_offsets[vocab] : old_offsets[vocab] + rows] for vocab, rows in blocks]
        )

    def sparse_embeddings(self, codes: Tensor) -> Tensor:
        """Vectors of the sparse fields: (B, n_sparse) codes -> (B, n_sparse, K)."""
        return self.table(codes + self.sparse_offsets)

    def dense_embeddings(self, values: Tensor) -> Tensor:
        """Vectors of the dense fields: (B, n_dense) values -> (B, n_dense, K)."""
        return values.unsqueeze(-1) * self.dense_weight

    def sequence_embeddings(self, index: int, codes: Tensor) -> Tensor:
        """Item vectors of sequence field ``index``: (B, T) codes -> (B, T, K) (codes of
        any shape: their shape plus K).

        Padding positions get vectors too; mask them with the lengths.
        """
        offset = self.seq_offsets[index]
        # padding_idx: the padding positions add nothing to the gradient (nor to the L2
        # penalty the optimiser derives from it)
        return F.embedding(
            codes + offset, self.table.weight, padding_idx=offset + PAD, sparse=self.table.sparse
        )

    def lookup(
        self,
        batch: TensorBatch,
        groups: Sequence[Sequence[int]] | None = None,
        *,
        sparse: bool = True,
        positions: Sequence[Tensor | None] | None = None,
    ) -> list[Tensor]:
        """The sparse field vectors and the item vectors of sequences, in one table lookup.

        Every vector comes from one autograd node, so the table gets one gradient however
        many fields and sequences read it (separate lookups of one table would each give a
        sparse gradient, which autograd then adds up, copying them into a new one per
        lookup). The vectors equal those of :meth:`sparse_embeddings` and
        :meth:`sequence_embeddings`.

        Parameters
        ----------
        batch : TensorBatch
            The rows.
        groups : sequence of sequence of int, optional
            The sequences to look up, as indices into ``schema.sequence``; the sequences of
            one group come side by side, item by item (they need one ``maxlen``). Default:
            every sequence field, each on its own.
        sparse : bool, default=True
            Whether to look up the sparse fields too.
        positions : sequence of (Tensor or None), optional
            One entry per group: None looks up every position ``(B, T)`` of the group's
            sequences; a 1-D integer tensor of flat positions into ``B * T`` (row-major,
            e.g. where :func:`~skctr.nn.sequence_mask` is True) looks up only those items,
            packed, so that no padding is read or stored. Default: None for every group.

        Returns
        -------
        list of Tensor
            ``(B, n_sparse, K)`` first if ``sparse``, then ``(B, T, len(group) * K)`` for
            each group, or ``(N, len(group) * K)`` for a group given ``N`` positions.
            Padding positions get vectors too (mask them with the lengths); they add
            nothing to the table's gradient, as with ``padding_idx``.

        Raises
        ------
        ValueError
            If a group is empty or its sequences differ in ``maxlen``, or ``positions``
            is not a sequence of one entry per group, each None or a 1-D int32 or int64
            tensor of positions in ``[0, B * T)`` (the range is checked on a CPU only).

        Notes
        -----
        The one-node lookup serves tables with sparse gradients (the default); its
        gradient has no second derivative. A table with ``sparse=False`` is looked up
        field by field with ``F.embedding``, whose dense gradients autograd adds in place.
        """
        if groups is None:
            groups = [[j] for j in range(len(batch.sequences))]
        if positions is None:
            positions = [None] * len(groups)
        elif isinstance(positions, Tensor) or len(positions) != len(groups):
            got = "a tensor" if isinstance(positions, Tensor) else f"{len(positions)} entries"
            raise ValueError(
                "FieldEmbedding.lookup: positions needs a sequence of one entry (a tensor "
                f"or None) per group; got {got} for {len(groups)} groups."
            )
        for group in groups:
            lengths = {batch.sequences[j].shape[1] for j in group}
            if len(lengths) != 1:
                raise ValueError(
                    "FieldEmbedding.lookup: each group needs at least one sequence, all of "
                    f"one maxlen; got the group {list(group)} with lengths {sorted(lengths)}."
                )
        for group, where in zip(groups, positions, strict=True):
            if where is not None:
                size = batch.num_rows * batch.sequences[group[0]].shape[1]
                _check_index("FieldEmbedding.lookup", "each tensor of positions", where, size)
        codes = [
            [_items(batch.sequences[j], where) for j in group]
            for group, where in zip(groups, positions, strict=True)
        ]
        table = self.table
        if not (table.sparse and groups and is_plain(table, nn.Embedding)) or table.max_norm:
            # dense gradients are added in place by autograd (and stay twice
            # differentiable); a hooked or renormalising table runs its own forward:
            # F.embedding per lookup
            found = [self.sparse_embeddings(batch.sparse)] if sparse else []
            for group, group_codes in zip(groups, codes, strict=True):
                items = [
                    self.sequence_embeddings(j, c) for j, c in zip(group, group_codes, strict=True)
                ]
                found.append(items[0] if len(items) == 1 else torch.cat(items, dim=-1))
            return found
        rows = [batch.sparse + self.sparse_offsets] if sparse else []
        padding: list[tuple[int, ...] | None] = [None] * len(rows)  # the sparse fields have none
        for group, group_codes in zip(groups, codes, strict=True):
            offsets = [self.seq_offsets[j] for j in group]
            shifted = [c + o for c, o in zip(group_codes, offsets, strict=True)]
            rows.append(_side_by_side(shifted))
            padding.append(tuple(o + PAD for o in offsets))  # each sequence's padding row
        found = _Lookup.apply(self.table.weight, tuple(padding), *rows)
        return [v if i < sparse else v.flatten(-2) for i, v in enumerate(found)]

    def pooled_sequences(self, batch: TensorBatch) -> Tensor:
        """Each sequence pooled into one vector: (B, n_sequence, K)."""
        return self._pooled(self.lookup(batch, sparse=False), batch)

    def _pooled(self, items: list[Tensor], batch: TensorBatch) -> Tensor:
        """Every sequence's item vectors (:meth:`lookup`'s) pooled: (B, n_sequence, K)."""
        pooled = [self.pool(v, batch.lengths[:, i]) for i, v in enumerate(items)]
        if not pooled:
            return batch.dense.new_zeros(batch.num_rows, 0, self.embedding_dim)
        return torch.stack(pooled, dim=1)

    @property
    def num_fields(self) -> int:
        """Number F of field vectors :meth:`forward` returns per row."""
        schema = self.schema
        dense = len(schema.dense) if self.dense_fields else 0
        return len(schema.sparse) + dense + len(schema.sequence)

    @property
    def deep_dim(self) -> int:
        """Width of the MLP input of :meth:`fields_and_deep`: K per sparse and sequence
        field, 1 per dense field."""
        schema = self.schema
        return (len(schema.sparse) + len(schema.sequence)) * self.embedding_dim + len(schema.dense)

    def fields_and_deep(
        self, batch: TensorBatch, *, as_blocks: bool = False, field_blocks: bool = False
    ) -> tuple[Tensor | list[Tensor], Tensor | list[Tensor]]:
        """All fields as vectors, and the input of a model's MLP.

        The MLP input holds the categorical field vectors and the raw dense values. A first
        MLP layer ``W`` applied to a dense field's vector ``x_d * v_d`` computes
        ``x_d * (W_d v_d)``, a learnt column times ``x_d``; feeding ``x_d`` itself gives the
        same functions with ``K`` times fewer multiplications per dense field (the column
        is then learnt freely instead of through ``v_d``, which the model's interaction
        part keeps using). Deep & Cross builds its ``x0`` this way in the paper.

        Parameters
        ----------
        batch : TensorBatch
            The rows.
        as_blocks : bool, default=False
            Return the MLP input as the list of its non-empty blocks (what
            :class:`~skctr.nn.MLP` reads without concatenating them) instead of one tensor.
        field_blocks : bool, default=False
            Return the field vectors as :meth:`field_blocks` does (what
            :class:`~skctr.nn.FactorizationMachine` reads without concatenating them)
            instead of one tensor.

        Returns
        -------
        fields : Tensor of shape (B, num_fields, K), or list of Tensor
            What :meth:`forward` (or :meth:`field_blocks`) returns.
        deep : Tensor of shape (B, deep_dim), or list of Tensor
            What :meth:`deep_input` returns.
        """
        parts = self._field_parts(batch)
        deep = self._deep(parts[0], parts[-1], batch.dense, as_blocks)
        return (_non_empty(parts) if field_blocks else torch.cat(parts, dim=1)), deep

    def deep_input(self, batch: TensorBatch, *, as_blocks: bool = False) -> Tensor | list[Tensor]:
        """The input of a model's MLP alone, for models without an interaction part on the
        field vectors (Deep & Cross, Wide & Deep): see :meth:`fields_and_deep`.

        Parameters
        ----------
        batch : TensorBatch
            The rows.
        as_blocks : bool, default=False
            Return the non-empty blocks below as a list instead of their concatenation.

        Returns
        -------
        Tensor of shape (B, deep_dim), or list of Tensor
            Sparse field vectors, then sequence field vectors (flattened), then the dense
            values.
        """
        return self._deep(*self._sparse_and_pooled(batch), batch.dense, as_blocks)

    def _sparse_and_pooled(self, batch: TensorBatch) -> tuple[Tensor, Tensor]:
        sparse, *items = self.lookup(batch)
        return sparse, self._pooled(items, batch)

    @staticmethod
    def _deep(
        sparse: Tensor, pooled: Tensor, dense: Tensor, as_blocks: bool
    ) -> Tensor | list[Tensor]:
        blocks = [sparse.flatten(1), pooled.flatten(1), dense]
        if as_blocks:
            return _non_empty(blocks)
        return torch.cat(blocks, dim=1)

    def forward(self, batch: TensorBatch) -> Tensor:
        """All fields as vectors: (B, num_fields, K)."""
        return torch.cat(self._field_parts(batch), dim=1)

    def field_blocks(self, batch: TensorBatch) -> list[Tensor]:
        """The field vectors of :meth:`forward` as the list of their non-empty blocks.

        Parameters
        ----------
        batch : TensorBatch
            The rows.

        Returns
        -------
        list of Tensor of shape (B, n_j, K)
            Sparse, dense (if ``dense_fields``) and pooled sequence vectors, in the order of
            :meth:`forward`'s fields, without copying them into one tensor.
        """
        return _non_empty(self._field_parts(batch))

    def _field_parts(self, batch: TensorBatch) -> list[Tensor]:
        """Sparse, dense (if ``dense_fields``) and pooled sequence vectors: (B, n_*, K) each
        (n_* may be 0)."""
        sparse, pooled = self._sparse_and_pooled(batch)
        if not self.dense_fields:
            return [sparse, pooled]
        return [sparse, self.dense_embeddings(batch.dense), pooled]


def _items(codes: Tensor, positions: Tensor | None) -> Tensor:
    """A sequence's ``(B, T)`` codes, or only those at the flat ``positions``, ``(N,)``."""
    return codes if positions is None else codes.reshape(-1).index_select(0, positions)


def _side_by_side(tensors: list[Tensor]) -> Tensor:
    """``(B, T)`` (or ``(N,)``) tensors stacked on a last axis, ``(B, T, n)`` (or
    ``(N, n)``; one tensor: a view, no copy)."""
    return tensors[0].unsqueeze(-1) if len(tensors) == 1 else torch.stack(tensors, dim=-1)


class _Lookup(torch.autograd.Function):
    """Several lookups of one table whose gradient is one tensor.

    ``apply(weight, padding, *rows)``: ``rows`` are index tensors of any shapes ``(..., n)``
    or ``(...)``; ``padding`` gives, for each, the padding row of each of its ``n`` last
    columns (entries naming it are left out of the gradient, as with ``padding_idx``), or
    None to keep every entry. Returns the rows of ``weight`` for each, ``(*rows.shape, K)``.
    Going back, the kept entries of every lookup make one sparse gradient (uncoalesced,
    like ``F.embedding(..., sparse=True)``'s); which entries are kept is worked out there,
    so that a forward pass without backward (prediction) does not.
    """

    @staticmethod
    def forward(
        ctx: Any, weight: Tensor, padding: tuple[tuple[int, ...] | None, ...], *rows: Tensor
    ) -> Any:
        ctx.save_for_backward(*rows)
        ctx.shape, ctx.padding = weight.shape, padding
        ctx.set_materialize_grads(False)
        width = weight.shape[1]
        return tuple(weight.index_select(0, r.reshape(-1)).view(*r.shape, width) for r in rows)

    @staticmethod
    @first_order_backward
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        nothing = (None,) * (1 + len(saved))  # padding and rows get none
        if not ctx.needs_input_grad[0]:
            return (None, *nothing)
        width = ctx.shape[1]
        pieces = []  # (rows, gradient rows, positions kept or None)
        for rows, pad, grad in zip(saved, ctx.padding, grads, strict=True):
            if grad is None or not rows.numel():
                continue
            kept = None if pad is None else (rows != rows.new_tensor(pad)).view(-1).nonzero()
            pieces.append((rows.reshape(-1), grad.reshape(-1, width), kept))
        if not pieces:
            return (None, *nothing)
        # every lookup's kept entries written straight into the gradient's one buffer
        sizes = [len(r) if kept is None else len(kept) for r, _, kept in pieces]
        indices = pieces[0][0].new_empty(sum(sizes))
        values = pieces[0][1].new_empty(sum(sizes), width)
        start = 0
        for (rows, grad, kept), size in zip(pieces, sizes, strict=True):
            part = slice(start, start + size)
            if kept is None:
                indices[part], values[part] = rows, grad
            else:
                torch.index_select(rows, 0, kept[:, 0], out=indices[part])
                torch.index_select(grad, 0, kept[:, 0], out=values[part])
            start += size
        # the entries are valid by construction: no invariant checks, and (torch 2.11 and
        # 2.12 warn even when check_invariants is passed) the global switch set off too
        with torch.sparse.check_sparse_tensor_invariants(enable=False):
            gradient = torch.sparse_coo_tensor(
                indices.unsqueeze(0), values, ctx.shape, check_invariants=False
            )
        return (gradient, *nothing)


def _non_empty(blocks: list[Tensor]) -> list[Tensor]:
    """The blocks with at least one field or column (axis 1)."""
    return [b for b in blocks if b.shape[1]]


class LinearTerm(nn.Module):
    """First-order term: a learnt weight per category, per dense field and bias.

    ``logit = b + sum_f w_f(x)``, where a sparse field contributes its category's weight, a
    dense field ``w_d * x_d`` and a sequence the pooled weights of its items. It is a
    :class:`FieldEmbedding` of size 1, so it shares the fused-table machinery.

    A history that shares a sparse field's vocabulary (``hist_movieId`` of ``movieId``)
    gets weights of its own here: a movie's first-order effect as the candidate (how
    often it is clicked) and as an item of the user's history (what having liked it says
    about the user) are different numbers, as in a one-hot logistic regression over both
    columns. Embeddings keep sharing rows, so that a candidate can be compared with the
    history (FM, DIN).

    Its ``first_order`` attribute (True) tells :func:`skctr.training.loop.make_optimizers`
    to give its weights the first-order step (``linear_learning_rate`` of the estimators
    that have one).

    Parameters
    ----------
    schema : FeatureSchema
        The fields.
    pooling : {"mean", "sum", "max"}, default="mean"
        Pooling of sequence items.

    Notes
    -----
    ``forward(batch)``: (B,)
    """

    first_order: ClassVar[bool] = True

    def __init__(self, schema: FeatureSchema, *, pooling: str = "mean") -> None:
        super().__init__()
        self.weights = FieldEmbedding(schema, 1, pooling=pooling, init_std=0.0, shared_rows=False)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, batch: TensorBatch) -> Tensor:
        """The first-order logit of each row, (B,)."""
        return self.weights(batch).sum(dim=(1, 2)) + self.bias
