"""Pooling of variable-length (right-padded) sequences: masked mean/sum/max and DIN attention.

Sequences arrive as a padded tensor ``(B, T, K)`` plus their lengths ``(B,)``: the items of row
``b`` sit at positions ``[0, lengths[b])`` and everything after is padding, whose values never
affect any output here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from skctr.nn.activation import _check_choice, _check_dropout, _check_int, is_plain
from skctr.nn.attention import LocalActivationUnit, _real_positions

__all__ = ["AttentionSequencePooling", "SequencePooling", "sequence_mask"]


def sequence_mask(lengths: Tensor, maxlen: int) -> Tensor:
    """Boolean mask of the real (non-padding) positions of right-padded sequences.

    Parameters
    ----------
    lengths : torch.Tensor of shape (B,), integer dtype
        Number of real items in each row. Lengths above ``maxlen`` mean "all positions";
        lengths ``<= 0`` mean "no position".
    maxlen : int
        Padded length ``T``.

    Returns
    -------
    torch.Tensor of shape (B, T), dtype bool
        True where ``position < length``.
    """
    maxlen = _check_int("sequence_mask", "maxlen", maxlen, minimum=0)
    if lengths.dim() != 1:
        raise ValueError(
            f"sequence_mask: lengths must have shape (batch,), got {tuple(lengths.shape)}."
        )
    positions = torch.arange(maxlen, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def _check_sequence_input(owner: str, seq: Tensor, lengths: Tensor) -> None:
    """Raise a ValueError unless ``seq`` is ``(B, T, K)`` and ``lengths`` is ``(B,)``."""
    if seq.dim() != 3:
        raise ValueError(
            f"{owner} expects a padded sequence of shape (batch, T, embedding_dim), got "
            f"{tuple(seq.shape)}."
        )
    if lengths.dim() != 1 or lengths.shape[0] != seq.shape[0]:
        raise ValueError(
            f"{owner} expects lengths of shape ({seq.shape[0]},) matching the batch, got "
            f"{tuple(lengths.shape)}."
        )


class SequencePooling(nn.Module):
    """Masked pooling of a right-padded sequence of embeddings.

    Parameters
    ----------
    mode : {"mean", "sum", "max"}, default="mean"
        ``"sum"``: sum of the (weighted) items. ``"mean"``: that sum divided by the length
        (clamped to at least 1; not by the sum of the weights). ``"max"``: element-wise
        maximum of the (weighted) items.

    Notes
    -----
    Shapes: seq ``(B, T, K)``, lengths ``(B,)``, weights ``(B, T)`` -> ``(B, K)``.

    A row of length 0 pools to zeros in every mode (never NaN or infinity, in the forward or
    the backward pass), and padding positions are ignored whatever their values.
    """

    def __init__(self, mode: str = "mean") -> None:
        super().__init__()
        self.mode = _check_choice("SequencePooling", "mode", mode, ("mean", "sum", "max"))

    def forward(self, seq: Tensor, lengths: Tensor, weights: Tensor | None = None) -> Tensor:
        """Pool each row's real items.

        Parameters
        ----------
        seq : torch.Tensor of shape (B, T, K)
            Right-padded item embeddings.
        lengths : torch.Tensor of shape (B,), integer dtype
            Number of real items per row.
        weights : torch.Tensor of shape (B, T), optional
            Per-item multiplier (e.g. a companion score column of a weighted sequence).

        Returns
        -------
        torch.Tensor of shape (B, K)
            Pooled embeddings.
        """
        _check_sequence_input("SequencePooling", seq, lengths)
        mask = sequence_mask(lengths, seq.shape[1])  # (B, T)
        items = seq
        if weights is not None:
            if weights.shape != mask.shape:
                raise ValueError(
                    f"SequencePooling: weights must have shape {tuple(mask.shape)}, "
                    f"got {tuple(weights.shape)}."
                )
            items = items * weights.masked_fill(~mask, 0).unsqueeze(-1).to(items.dtype)
        mask3 = mask.unsqueeze(-1)
        if self.mode == "max":
            filled = items.masked_fill(~mask3, torch.finfo(items.dtype).min)
            pooled = filled.amax(dim=1)
            return pooled.masked_fill(~mask.any(dim=1, keepdim=True), 0)
        total = items.masked_fill(~mask3, 0).sum(dim=1)
        if self.mode == "sum":
            return total
        counts = mask.sum(dim=1, keepdim=True).clamp(min=1).to(total.dtype)
        return total / counts

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr(module)``."""
        return f"mode={self.mode!r}"


def _unpacked(values: Tensor, positions: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The packed ``values`` at their ``positions`` of a flat tensor of ``shape``, 0
    elsewhere."""
    flat = values.new_zeros(math.prod(shape))
    return flat.index_put((positions,), values).view(shape)


def _sum_into_rows(values: Tensor, rows: Tensor, size: int) -> Tensor:
    """``values`` ``(N, ...)`` summed into ``size`` rows by ``rows``: ``(size, ...)``.

    On a CPU ``index_add`` adds each row's values in their order, whatever the other rows
    hold; on a GPU, where it adds with atomics (whose order varies from run to run),
    ``index_put_`` with ``accumulate`` sorts the rows first, so the sums are the same
    bits on every run.
    """
    out = values.new_zeros(size, *values.shape[1:])
    if values.device.type == "cpu":
        return out.index_add(0, rows, values)
    return out.index_put((rows,), values, accumulate=True)


def _weighted_sums(items: Tensor, weights: Tensor, rows: Tensor, batch: int) -> Tensor:
    """``sum_t w_t k_t`` of each row's packed items: ``(N, K)``, ``(N,)`` -> ``(batch, K)``."""
    return _sum_into_rows(items * weights.unsqueeze(1), rows, batch)


def _segment_softmax(scores: Tensor, rows: Tensor, segments: int) -> Tensor:
    """Softmax of the packed ``scores`` within each row (``rows`` gives each score's row,
    in ``[0, segments)``), in at least float32."""
    values = scores.to(torch.promote_types(scores.dtype, torch.float32))
    # a row's largest score, for stability; softmax does not change with it, so it needs
    # no gradient
    top = values.new_full((segments,), -torch.inf)
    top = top.scatter_reduce(0, rows, values.detach(), "amax")
    exp = (values - top.index_select(0, rows)).exp()
    return exp / _sum_into_rows(exp, rows, segments).index_select(0, rows)


class AttentionSequencePooling(nn.Module):
    r"""Attention pooling of a user's history against a candidate item, as in DIN.

    .. math::

        v_U = \sum_{t < \text{length}} w_t\, k_t, \qquad
        w_t = s_t = \mathrm{LAU}(k_t, q)

    with the scores :math:`s_t` of :class:`skctr.nn.LocalActivationUnit`, not normalised (as
    in the paper, so that the intensity of the user's interest is kept), or, with
    ``weight_normalization=True``, :math:`w_t = \mathrm{softmax}_t(s_t)` over the real items.

    Parameters
    ----------
    embedding_dim : int
        Embedding dimension ``K`` of the query and the keys.
    hidden_units : sequence of int, default=(80, 40)
        Hidden widths of the local activation unit.
    activation : str or callable, default="dice"
        Activation of the local activation unit.
    weight_normalization : bool, default=False
        Whether to softmax-normalise the scores over each row's real items.
    dropout : float, default=0.0
        Dropout probability inside the local activation unit.

    Attributes
    ----------
    unit : skctr.nn.LocalActivationUnit
        The scoring network.

    Notes
    -----
    Shapes: query ``(B, K)``, keys ``(B, T, K)``, lengths ``(B,)`` -> ``(B, K)`` (and the
    ``(B, T)`` weights with ``return_scores=True``). A row of length 0 pools to zeros; padding
    positions get weight 0 and their values never affect the output.

    References
    ----------
    .. [1] Zhou, G., Zhu, X., Song, C., Fan, Y., Zhu, H., Ma, X., Yan, Y., Jin, J., Li, H.
       and Gai, K. "Deep Interest Network for Click-Through Rate Prediction." KDD 2018.
    """

    def __init__(
        self,
        embedding_dim: int,
        hidden_units: Sequence[int] = (80, 40),
        activation: str | Callable[[], nn.Module] = "dice",
        weight_normalization: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(weight_normalization, bool):
            raise ValueError(
                "AttentionSequencePooling: weight_normalization must be a bool, got "
                f"{weight_normalization!r}."
            )
        dropout = _check_dropout("AttentionSequencePooling", dropout)
        self.weight_normalization = weight_normalization
        self.unit = LocalActivationUnit(
            embedding_dim, hidden_units=hidden_units, activation=activation, dropout=dropout
        )
        self.embedding_dim: int = self.unit.embedding_dim

    def attention_weights(self, query: Tensor, keys: Tensor, lengths: Tensor) -> Tensor:
        """Weights given to each history item.

        Parameters
        ----------
        query : torch.Tensor of shape (B, K)
            Candidate item embedding.
        keys : torch.Tensor of shape (B, T, K)
            Right-padded history item embeddings.
        lengths : torch.Tensor of shape (B,), integer dtype
            Number of real items per row.

        Returns
        -------
        torch.Tensor of shape (B, T)
            Raw scores, or softmax weights if ``weight_normalization``; 0 at padding positions
            and on rows of length 0.
        """
        positions, _, _, weights = self._padded(query, keys, lengths)
        return _unpacked(weights, positions, keys.shape[:2])

    def forward(
        self, query: Tensor, keys: Tensor, lengths: Tensor, return_scores: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Pool the history with attention weights.

        Parameters
        ----------
        query : torch.Tensor of shape (B, K)
            Candidate item embedding.
        keys : torch.Tensor of shape (B, T, K)
            Right-padded history item embeddings.
        lengths : torch.Tensor of shape (B,), integer dtype
            Number of real items per row.
        return_scores : bool, default=False
            If True, also return the weights (see :meth:`attention_weights`).

        Returns
        -------
        pooled : torch.Tensor of shape (B, K)
            Weighted sum of the real history items.
        weights : torch.Tensor of shape (B, T)
            Only if ``return_scores``.
        """
        positions, rows, items, weights = self._padded(query, keys, lengths)
        pooled = _weighted_sums(items, weights, rows, keys.shape[0])
        if return_scores:
            return pooled, _unpacked(weights, positions, keys.shape[:2])
        return pooled

    def pool_items(self, query: Tensor, items: Tensor, rows: Tensor) -> Tensor:
        """Pool histories given as a packed list of their real items.

        The packed form of :meth:`forward`, for a caller that has the real items alone
        (:meth:`skctr.nn.FieldEmbedding.lookup` with ``positions`` gives them): the
        items need not be gathered out of a padded tensor, and no padding is stored.
        The weights are the unit's scores, or their softmax over each row's items with
        ``weight_normalization``.

        Parameters
        ----------
        query : torch.Tensor of shape (B, K)
            Candidate item embeddings, one per row.
        items : torch.Tensor of shape (N, K)
            The real history items of every row.
        rows : torch.Tensor of shape (N,), int32 or int64
            Row of each item, in ``[0, B)``.

        Returns
        -------
        torch.Tensor of shape (B, K)
            Each row's items, weighted by their attention weights and summed (zeros for a
            row without items).

        Raises
        ------
        ValueError
            If ``unit`` is not a plain :class:`~skctr.nn.LocalActivationUnit` (a subclass,
            or one with hooks, scores padded keys: call the module itself on them), or
            the inputs are malformed (see
            :meth:`~skctr.nn.LocalActivationUnit.score_items`).

        Notes
        -----
        This is a method, not ``forward``: hooks registered on this module do not run.
        """
        if not self._unit_scores_packed():
            raise ValueError(
                "AttentionSequencePooling.pool_items scores items with a plain "
                f"LocalActivationUnit; this unit is a {type(self.unit).__name__} or has hooks, "
                "which are honoured only on padded keys: call the pooling on them instead."
            )
        scores = self.unit.score_items(query, items, rows)
        weights = self._normalised(scores, rows, query.shape[0])
        return _weighted_sums(items, weights, rows, query.shape[0])

    def _padded(
        self, query: Tensor, keys: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The real items of padded ``keys`` and their weights, packed: their positions in
        ``B * T``, their rows, their keys ``(N, K)`` and their weights ``(N,)``."""
        _check_sequence_input("AttentionSequencePooling", keys, lengths)
        batch, steps, width = keys.shape
        if query.shape != (batch, width):
            raise ValueError(
                f"AttentionSequencePooling expects a query of shape {(batch, width)}, one "
                f"per row of the keys, got {tuple(query.shape)}."
            )
        mask = sequence_mask(lengths, steps)
        positions, rows = _real_positions(mask)
        # only the real items are scored and summed: the padding is never read, so its
        # values (even non-finite ones) cannot reach the output
        items = keys.reshape(-1, width).index_select(0, positions)
        if self._unit_scores_packed():
            scores = self.unit.score_items(query, items, rows)
        else:  # a subclassed or hooked unit is called as it is
            scores = self.unit(query, keys, mask).reshape(-1).index_select(0, positions)
        return positions, rows, items, self._normalised(scores, rows, batch)

    def _unit_scores_packed(self) -> bool:
        """Whether ``unit`` may score packed items (a plain LocalActivationUnit)."""
        return is_plain(self.unit, LocalActivationUnit)

    def _normalised(self, scores: Tensor, rows: Tensor, batch: int) -> Tensor:
        """The weights: the scores, or their softmax over each row's items."""
        return _segment_softmax(scores, rows, batch) if self.weight_normalization else scores

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr(module)``."""
        return f"weight_normalization={self.weight_normalization}"
