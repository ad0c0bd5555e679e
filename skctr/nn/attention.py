"""Attention layers: AFM pair attention, AutoInt interacting layer, DIN local activation unit."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from skctr._compat import autocast_off, autocast_product_dtype
from skctr.nn.activation import (
    _check_dropout,
    _check_index,
    _check_int,
    _check_int_sequence,
    first_order_backward,
)
from skctr.nn.interaction import _check_fields_input, pairwise_indices
from skctr.nn.mlp import MLP, add_product

__all__ = ["AFMAttention", "InteractingLayer", "LocalActivationUnit"]


class AFMAttention(nn.Module):
    r"""Attention-based pooling of the pairwise interactions of AFM.

    For every field pair :math:`i < j` (order of :func:`skctr.nn.pairwise_indices`):

    .. math::

        e_{ij} = v_i \odot v_j, \qquad
        a'_{ij} = h^\top \mathrm{ReLU}(W e_{ij} + b), \qquad
        a_{ij} = \frac{\exp a'_{ij}}{\sum_{(i,j)} \exp a'_{ij}}, \qquad
        \text{pooled} = \sum_{i<j} a_{ij}\, e_{ij}

    where the field embeddings :math:`v_i` already include the feature value.

    Parameters
    ----------
    embedding_dim : int
        Embedding dimension ``K``.
    attention_dim : int, default=8
        Width ``t`` of the attention network (:math:`W` is ``t x K``).
    dropout : float, default=0.0
        Dropout probability applied to the pooled vector (where the AFM authors apply it).

    Attributes
    ----------
    projection : torch.nn.Linear
        :math:`W` and :math:`b`.
    score : torch.nn.Linear
        :math:`h` (no bias).

    Notes
    -----
    Shapes: ``(B, F, K) -> ((B, K), (B, P))`` with ``P = F (F - 1) / 2``. The projection
    :math:`p^\top` of the pooled vector to a logit belongs to the model, not to this layer.

    References
    ----------
    .. [1] Xiao, J., Ye, H., He, X., Zhang, H., Wu, F. and Chua, T.-S. "Attentional
       Factorization Machines: Learning the Weight of Feature Interactions via Attention
       Networks." IJCAI 2017.
    """

    def __init__(self, embedding_dim: int, attention_dim: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding_dim = _check_int("AFMAttention", "embedding_dim", embedding_dim)
        self.attention_dim = _check_int("AFMAttention", "attention_dim", attention_dim)
        self.projection = nn.Linear(self.embedding_dim, self.attention_dim)
        self.score = nn.Linear(self.attention_dim, 1, bias=False)
        self.dropout = nn.Dropout(_check_dropout("AFMAttention", dropout))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Attend over the pairwise interactions.

        Parameters
        ----------
        x : torch.Tensor of shape (B, F, K)
            Field embeddings.

        Returns
        -------
        pooled : torch.Tensor of shape (B, K)
            Attention-weighted sum of the pairwise element-wise products (after dropout).
        weights : torch.Tensor of shape (B, F * (F - 1) // 2)
            The attention weights :math:`a_{ij}` (each row sums to 1 when ``F >= 2``).
        """
        _check_fields_input(self, x, embedding_dim=self.embedding_dim)
        row, col = pairwise_indices(x.shape[1], device=x.device)
        products = x[:, row] * x[:, col]  # (B, P, K)
        logits = self.score(torch.relu(self.projection(products))).squeeze(-1)  # (B, P)
        weights = torch.softmax(logits, dim=1)
        pooled = (weights.unsqueeze(-1) * products).sum(dim=1)
        return self.dropout(pooled), weights


class _Interacting(torch.autograd.Function):
    r"""One interacting layer on feature-major activations, with its closed-form gradient.

    Takes ``x_t`` of shape ``(K, N)``, the ``N = rows * L`` field vectors of ``rows`` rows
    of ``L`` fields as columns (row-major over rows then fields), and the stacked weights
    ``W = [W_Q; W_K; W_V (; W_Res)]`` of shape ``(S w, K)`` with ``w = H d``. Returns the
    layer's output, feature-major too: ``(w, N)``.

    ``P = [W_Q; W_K; W_V] x_t`` is one matrix product whose rows are the queries, keys and
    values of every head (the residual ``W_Res x_t`` is a second, which the heads add
    into); head ``h``'s queries of all rows are the ``(rows, d, L)`` view ``Q_h^T`` of its
    ``d`` rows, with no copy. Per head, with :math:`S^T = K^T Q`,
    :math:`P^T = \mathrm{softmax}(s S^T)` over keys and :math:`O^T = V^T P^T`, and on the
    way back, with :math:`G` the gradient of :math:`O`: :math:`dV^T = G^T P`,
    :math:`dP^T = V G^T`, :math:`dS = P \odot (dP - \mathrm{rowsum}(P \odot dP))`,
    :math:`dQ^T = s K^T dS^T`, :math:`dK^T = s Q^T dS`; then :math:`dx_t = W^T dP` and
    :math:`dW = dP\, x_t^T`, two products over all rows. The ReLU is applied in place.

    Keeping the activations feature-major from layer to layer is what makes it fast on a
    CPU at CTR sizes (``L`` in the tens of fields, ``d`` about 8): the projection is one
    wide product, the attention products have short ``d x L`` outputs, the softmax runs
    across rows of :math:`S^T`, and no layer copies its input or its projections into a
    per-head layout (autograd over the plain formula, or ``scaled_dot_product_attention``,
    copies them and zero-fills full-size gradients). Everything runs in the dtype of
    ``x_t``, the softmax accumulating in at least float32. No second derivatives.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x_t: Tensor,
        weight: Tensor,
        heads: int,
        dim: int,
        rows: int,
        scale: float,
        residual: bool,
    ) -> Tensor:
        width = heads * dim
        projected = weight[: 3 * width] @ x_t  # queries, keys, values: (3 w, N)
        # the residual starts the output; the heads add into it
        out = weight[3 * width :] @ x_t if residual else projected.new_zeros(width, x_t.shape[1])
        probs = []
        accumulate = torch.promote_types(x_t.dtype, torch.float32)
        blocks, out_blocks = _heads(projected, dim, rows), _heads(out, dim, rows)
        for h in range(heads):
            q, k, v = blocks[h], blocks[heads + h], blocks[2 * heads + h]
            scores_t = torch.bmm(k.transpose(1, 2), q)  # S^T, (rows, L_k, L_q)
            if scale != 1.0:
                scores_t.mul_(scale)
            probs.append(torch.softmax(scores_t, dim=1, dtype=accumulate).to(x_t.dtype))
            out_blocks[h].add_(torch.bmm(v, probs[h]))
        out.relu_()
        ctx.save_for_backward(x_t, weight, projected, out, *probs)
        ctx.config = (heads, dim, rows, scale, residual)
        return out

    @staticmethod
    @first_order_backward
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x_t, weight, projected, out, *probs = ctx.saved_tensors
        heads, dim, rows, scale, residual = ctx.config
        width = heads * dim
        grad = grad.to(out.dtype).masked_fill(out <= 0, 0.0)  # through the ReLU
        grad_projected = projected.new_empty(weight.shape[0], projected.shape[1])
        if residual:
            grad_projected[3 * width :] = grad
        blocks, grad_blocks = _heads(projected, dim, rows), _heads(grad_projected, dim, rows)
        for h, (g, p_t) in enumerate(zip(_heads(grad, dim, rows), probs, strict=True)):
            q, k, v = blocks[h], blocks[heads + h], blocks[2 * heads + h]
            grad_blocks[2 * heads + h].copy_(torch.bmm(g, p_t.transpose(1, 2)))
            grad_scores_t = torch._softmax_backward_data(
                torch.bmm(v.transpose(1, 2), g), p_t, 1, p_t.dtype
            )
            if scale != 1.0:
                grad_scores_t.mul_(scale)
            grad_blocks[h].copy_(torch.bmm(k, grad_scores_t))
            grad_blocks[heads + h].copy_(torch.bmm(q, grad_scores_t.transpose(1, 2)))
        grad_x = weight.t() @ grad_projected if ctx.needs_input_grad[0] else None
        grad_weight = grad_projected @ x_t.t() if ctx.needs_input_grad[1] else None
        return grad_x, grad_weight, None, None, None, None, None


def _heads(feature_major: Tensor, dim: int, rows: int) -> Tensor:
    """A feature-major ``(C, rows * L)`` tensor as ``C / dim`` blocks of ``dim`` rows, each
    the ``(rows, dim, L)`` view of one matrix per row: ``(C / dim, rows, dim, L)``, no copy."""
    channels, columns = feature_major.shape
    fields = columns // rows if rows else 0
    return feature_major.view(channels // dim, dim, rows, fields).transpose(1, 2)


class InteractingLayer(nn.Module):
    r"""Multi-head self-attention over fields, the interacting layer of AutoInt.

    For each head :math:`h`, with :math:`W_Q, W_K, W_V \in \mathbb{R}^{d' \times K}`:

    .. math::

        \alpha^{(h)}_{m,k} = \mathrm{softmax}_k\big(\langle W_Q e_m, W_K e_k\rangle\big),
        \qquad \tilde e^{(h)}_m = \sum_k \alpha^{(h)}_{m,k} W_V e_k

    The heads are concatenated, :math:`\tilde e_m = \tilde e^{(1)}_m \oplus \dots \oplus
    \tilde e^{(H)}_m`, and the output is :math:`\mathrm{ReLU}(\tilde e_m + W_{Res} e_m)`
    (or :math:`\mathrm{ReLU}(\tilde e_m)` without the residual).

    Parameters
    ----------
    embedding_dim : int
        Input width ``K`` of each field (the output width of the previous layer when stacked).
    attention_dim : int, default=8
        Width ``d'`` of each head.
    num_heads : int, default=2
        Number of heads ``H``.
    use_residual : bool, default=True
        Whether to add the projected input :math:`W_{Res} e_m`.
    scaled : bool, default=False
        Whether to divide the scores by :math:`\sqrt{d'}` (as in the Transformer). The AutoInt
        paper uses the unscaled inner product, hence the default.

    Attributes
    ----------
    query, key, value : torch.nn.Linear
        :math:`W_Q, W_K, W_V` of all heads, each ``K -> H d'`` without bias. They hold the
        weights; :meth:`forward` applies all of them (and ``residual``) as one matrix
        product of their concatenated weights, so hooks on these submodules do not run.
    residual : torch.nn.Linear or None
        :math:`W_{Res}`, ``K -> H d'`` without bias, if ``use_residual``.
    output_dim : int
        ``num_heads * attention_dim``.

    Notes
    -----
    Shapes: ``(B, F, K) -> (B, F, num_heads * attention_dim)``. The output is a view of
    a feature-major ``(num_heads * attention_dim, B, F)`` tensor (not contiguous), which
    the next layer reads without a copy; ``reshape`` (not ``view``) flattens it.

    References
    ----------
    .. [1] Song, W., Shi, C., Xiao, Z., Duan, Z., Xu, Y., Zhang, M. and Tang, J. "AutoInt:
       Automatic Feature Interaction Learning via Self-Attentive Neural Networks." CIKM 2019.
    """

    def __init__(
        self,
        embedding_dim: int,
        attention_dim: int = 8,
        num_heads: int = 2,
        use_residual: bool = True,
        scaled: bool = False,
    ) -> None:
        super().__init__()
        self.embedding_dim = _check_int("InteractingLayer", "embedding_dim", embedding_dim)
        self.attention_dim = _check_int("InteractingLayer", "attention_dim", attention_dim)
        self.num_heads = _check_int("InteractingLayer", "num_heads", num_heads)
        for name, flag in (("use_residual", use_residual), ("scaled", scaled)):
            if not isinstance(flag, bool):
                raise ValueError(f"InteractingLayer: {name} must be a bool, got {flag!r}.")
        self.use_residual = use_residual
        self.scaled = scaled
        width = self.num_heads * self.attention_dim
        self.query = nn.Linear(self.embedding_dim, width, bias=False)
        self.key = nn.Linear(self.embedding_dim, width, bias=False)
        self.value = nn.Linear(self.embedding_dim, width, bias=False)
        self.residual = nn.Linear(self.embedding_dim, width, bias=False) if use_residual else None
        self.output_dim: int = width

    def forward(self, x: Tensor) -> Tensor:
        """Apply one round of multi-head self-attention over the fields.

        Parameters
        ----------
        x : torch.Tensor of shape (B, F, K)
            Field representations.

        Returns
        -------
        torch.Tensor of shape (B, F, num_heads * attention_dim)
            New field representations.
        """
        _check_fields_input(self, x, embedding_dim=self.embedding_dim)
        batch, fields, _ = x.shape
        # W_Q, W_K, W_V (and W_Res) of all heads as one projection
        weights = [self.query.weight, self.key.weight, self.value.weight]
        if self.residual is not None:
            weights.append(self.residual.weight)
        weight = torch.cat(weights)
        # feature-major: free when x is a previous layer's output (a view of one)
        x_t = x.permute(2, 0, 1).reshape(self.embedding_dim, batch * fields)
        dtype = autocast_product_dtype(x)
        if dtype is not None:  # what autocast would give the projection
            x_t, weight = x_t.to(dtype), weight.to(dtype)
        scale = 1.0 / math.sqrt(self.attention_dim) if self.scaled else 1.0
        with autocast_off(x.device.type):
            out_t = _Interacting.apply(
                x_t,
                weight,
                self.num_heads,
                self.attention_dim,
                batch,
                scale,
                self.residual is not None,
            )
        return out_t.view(self.output_dim, batch, fields).permute(1, 2, 0)

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr(module)``."""
        return (
            f"{self.embedding_dim}, attention_dim={self.attention_dim}, "
            f"num_heads={self.num_heads}, use_residual={self.use_residual}, scaled={self.scaled}"
        )


#: In evaluation mode the attention unit scores its items in multiples of this many rows.
_EVAL_PAD = 32


def _eval_padded(rows: Tensor) -> Tensor:
    """``rows`` with its first row repeated up to a multiple of ``_EVAL_PAD`` rows (no
    device sync)."""
    extra = -rows.shape[0] % _EVAL_PAD
    if not extra:
        return rows
    return torch.cat([rows, rows[:1].expand(extra, *rows.shape[1:])])


def _real_positions(mask: Tensor) -> tuple[Tensor, Tensor]:
    """The flat positions (into ``B * T``, row-major) of a ``(B, T)`` mask's True entries,
    in order, and the row of each."""
    positions = mask.reshape(-1).nonzero().squeeze(1)
    return positions, torch.div(positions, max(mask.shape[1], 1), rounding_mode="floor")


class LocalActivationUnit(nn.Module):
    r"""Local activation unit of DIN: scores each history item against the candidate.

    .. math::

        s_t = \mathrm{MLP}\big([k_t,\; q,\; k_t - q,\; k_t \odot q]\big)

    where :math:`q` is the candidate (query) embedding and :math:`k_t` the ``t``-th history
    (key) embedding; the MLP ends with a ``Linear`` to one unit and no activation.

    Parameters
    ----------
    embedding_dim : int
        Embedding dimension ``K`` of the query and the keys.
    hidden_units : sequence of int, default=(80, 40)
        Hidden widths of the scoring MLP (its input width is ``4 K``).
    activation : str or callable, default="dice"
        Activation of the hidden layers; see :func:`skctr.nn.get_activation`.
    dropout : float, default=0.0
        Dropout probability after each hidden layer.

    Attributes
    ----------
    mlp : skctr.nn.MLP
        The scoring network, ``4 K -> hidden_units -> 1``.

    Notes
    -----
    Shapes: query ``(B, K)``, keys ``(B, T, K)``, mask ``(B, T)`` -> scores ``(B, T)``.

    The MLP runs on a flat ``(rows, 4 K)`` tensor, so Dice and batch normalisation take their
    statistics over the history items. When a ``mask`` is given only the real items are scored
    (padding gets score 0 and never enters those statistics), which keeps the output of every
    row independent of the padding values in training mode too.

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
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding_dim = _check_int("LocalActivationUnit", "embedding_dim", embedding_dim)
        hidden_units = _check_int_sequence("LocalActivationUnit", "hidden_units", hidden_units)
        dropout = _check_dropout("LocalActivationUnit", dropout)
        self.mlp = MLP(
            4 * self.embedding_dim,
            hidden_units,
            dropout=dropout,
            activation=activation,
            output_dim=1,
        )

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None) -> Tensor:
        """Score every key against the query.

        Parameters
        ----------
        query : torch.Tensor of shape (B, K)
            Candidate item embedding.
        keys : torch.Tensor of shape (B, T, K)
            History item embeddings.
        mask : torch.Tensor of shape (B, T), dtype bool, optional
            True at real items, False at padding. If given, only real items are scored and
            padding positions get score 0.

        Returns
        -------
        torch.Tensor of shape (B, T)
            Unnormalised scores.
        """
        k = self.embedding_dim
        if query.dim() != 2 or keys.dim() != 3 or query.shape[1] != k or keys.shape[2] != k:
            raise ValueError(
                f"LocalActivationUnit(embedding_dim={k}) expects query (batch, {k}) and keys "
                f"(batch, T, {k}), got {tuple(query.shape)} and {tuple(keys.shape)}."
            )
        if query.shape[0] != keys.shape[0]:
            raise ValueError(
                f"LocalActivationUnit: query and keys must have the same batch size, got "
                f"{query.shape[0]} and {keys.shape[0]}."
            )
        batch, steps, _ = keys.shape
        if mask is None:
            rows = torch.arange(batch, device=keys.device).repeat_interleave(steps)
            return self.score_items(query, keys.reshape(-1, k), rows).view(batch, steps)
        if mask.shape != (batch, steps):
            raise ValueError(
                f"LocalActivationUnit: mask must have shape {(batch, steps)}, "
                f"got {tuple(mask.shape)}."
            )
        positions, rows = _real_positions(mask.to(torch.bool))
        items = keys.reshape(-1, k).index_select(0, positions)
        selected = self.score_items(query, items, rows)
        # in the scores' dtype (autocast's, where it runs the unit's products)
        scores = keys.new_zeros(batch * steps, dtype=selected.dtype)
        return scores.index_put((positions,), selected).view(batch, steps)

    def score_items(self, query: Tensor, items: Tensor, rows: Tensor) -> Tensor:
        """Score a packed list of items, each against the query of its row.

        The packed form of :meth:`forward`: only the items that exist are passed, with
        the row each belongs to, so no padding is scored or stored.

        Parameters
        ----------
        query : torch.Tensor of shape (B, K)
            Candidate item embeddings, one per row.
        items : torch.Tensor of shape (N, K)
            History item embeddings.
        rows : torch.Tensor of shape (N,), integer dtype
            Row of ``query`` that each item is scored against, in ``[0, B)``.

        Returns
        -------
        torch.Tensor of shape (N,)
            Unnormalised scores, ``MLP([k, q, k - q, k * q])`` of each item ``k`` and its
            row's query ``q``.

        Raises
        ------
        ValueError
            If ``query`` or ``items`` is not ``(., K)``, or ``rows`` is not one int32 or
            int64 index per item in ``[0, B)`` (the range is checked on a CPU only).

        Notes
        -----
        In evaluation mode the items are scored in multiples of 32 (the first is repeated
        to fill up), so that the matrix kernels, whose summation order can depend on the
        number of rows, and hence an item's score do not depend on how many items the rest
        of the batch has.
        """
        k = self.embedding_dim
        if query.dim() != 2 or items.dim() != 2 or query.shape[1] != k or items.shape[1] != k:
            raise ValueError(
                f"LocalActivationUnit(embedding_dim={k}) expects query (batch, {k}) and items "
                f"(N, {k}), got {tuple(query.shape)} and {tuple(items.shape)}."
            )
        _check_index("LocalActivationUnit", "rows", rows, query.shape[0], items.shape[0])
        real = items.shape[0]
        if real == 0:
            return items.new_zeros(0)
        if not self.training:
            items, rows = _eval_padded(items), _eval_padded(rows)
        return self._score(query, items, rows)[:real]

    def _score(self, query: Tensor, keys: Tensor, rows: Tensor) -> Tensor:
        """Score the ``(N, K)`` keys against their rows' queries, ``query[rows]`` -> ``(N,)``.

        The first layer ``W [k; q; k - q; k * q] + b`` is computed as
        ``(W_1 + W_3) k + W_4 (k * q) + ((W_2 - W_3) q + b)`` with ``W = [W_1 W_2 W_3 W_4]``:
        the same function of the same weights, without building the ``k - q`` block, and
        with the query's own term computed once per row of the batch and gathered for the
        row's items, where the per-item product adds into it (per item, ``2 K`` inputs
        instead of the literal layer's ``4 K``).
        """
        k = self.embedding_dim
        first, rest = self.mlp.layers[0], self.mlp.layers[1:]
        w = first.weight
        if not self.training:  # as for the items (the extra rows are not gathered)
            query = _eval_padded(query)
        per_row = F.linear(query, w[:, k : 2 * k] - w[:, 2 * k : 3 * k], first.bias)
        per_item = torch.cat([w[:, :k] + w[:, 2 * k : 3 * k], w[:, 3 * k :]], dim=1)
        item_query = query.index_select(0, rows)
        items = torch.cat([keys, keys * item_query], dim=-1)
        hidden = add_product(per_row.index_select(0, rows), items, per_item.t())
        return rest(hidden).squeeze(-1)
