"""Explicit feature-interaction layers: FM, bi-interaction, PNN products, cross network, CIN.

All layers take field embeddings ``x`` of shape ``(B, F, K)`` (batch, fields, embedding
dimension), except :class:`CrossNetwork`, which takes a flat ``(B, D)`` vector. Every layer that
enumerates field pairs uses :func:`pairwise_indices`, so pair ``p`` means the same ``(i, j)``
everywhere.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from skctr._compat import autocast_product_dtype
from skctr.nn.activation import (
    _check_choice,
    _check_int,
    _check_int_sequence,
    first_order_backward,
    get_activation,
)

__all__ = [
    "CIN",
    "BiInteractionPooling",
    "CrossNetwork",
    "FactorizationMachine",
    "InnerProduct",
    "OuterProduct",
    "pairwise_indices",
]


def pairwise_indices(
    num_fields: int, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Indices of all field pairs ``i < j``, in row-major order.

    The order is ``(0, 1), (0, 2), ..., (0, F-1), (1, 2), ..., (F-2, F-1)``.

    Parameters
    ----------
    num_fields : int
        Number of fields ``F`` (at least 1).
    device : torch.device or str, optional
        Device of the returned tensors (default: CPU).

    Returns
    -------
    row : torch.Tensor of shape (F * (F - 1) // 2,), dtype long
        First field ``i`` of each pair.
    col : torch.Tensor of shape (F * (F - 1) // 2,), dtype long
        Second field ``j`` of each pair (always ``j > i``).
    """
    num_fields = _check_int("pairwise_indices", "num_fields", num_fields)
    row, col = torch.triu_indices(num_fields, num_fields, offset=1, device=device)
    return row, col


class _PairwiseSum(torch.autograd.Function):
    """``0.5 * ((sum_i e_i)^2 - sum_i e_i^2)`` with its closed-form gradient.

    The gradient of the term with respect to ``e_{i,k}`` is ``s_k - e_{i,k}``, where ``s``
    is the sum over fields; one pass computes it, where autograd would materialise the
    squares and the broadcast sums of both halves. The fields may come as several
    ``(B, F_j, K)`` blocks, taken as their concatenation along the field axis (without
    building it); each block gets its own gradient.
    """

    @staticmethod
    def forward(ctx: Any, reduce_sum: bool, *blocks: Tensor) -> Tensor:
        total = functools.reduce(torch.add, (block.sum(dim=1) for block in blocks))  # (B, K)
        ctx.save_for_backward(total, *blocks)
        ctx.reduce_sum = reduce_sum
        # sums of squares as squared norms: one pass over each block, no (B, F, K) square
        norm = torch.linalg.vector_norm
        if reduce_sum:
            squares = functools.reduce(
                torch.add, (norm(block.flatten(1), dim=1).square() for block in blocks)
            )
            return 0.5 * (norm(total, dim=1).square() - squares)
        squares = functools.reduce(torch.add, (norm(block, dim=1).square() for block in blocks))
        return 0.5 * (total.square() - squares)

    @staticmethod
    @first_order_backward
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        total, *blocks = ctx.saved_tensors
        grad = grad[:, None] if ctx.reduce_sum else grad  # (B, 1) or (B, K)
        scaled = (total * grad).unsqueeze(1)
        # grad * (total - x) in one pass over each block that needs it
        return None, *(
            torch.addcmul(scaled, x, grad.unsqueeze(1), value=-1) if needed else None
            for x, needed in zip(blocks, ctx.needs_input_grad[1:], strict=True)
        )


class FactorizationMachine(nn.Module):
    r"""Second-order factorization-machine term, computed in :math:`O(F K)`.

    .. math::

        \sum_{i<j} \langle e_i, e_j \rangle
        = \frac{1}{2} \sum_{k} \left[ \Big(\sum_i e_{i,k}\Big)^2 - \sum_i e_{i,k}^2 \right]

    where the field embedding :math:`e_i` already includes the feature value (dense fields are
    value times vector).

    Parameters
    ----------
    reduce_sum : bool, default=True
        If True, sum over the embedding axis and return one number per row; if False, return
        the per-dimension vector (the bi-interaction pooling of NFM).

    Notes
    -----
    Shapes: ``(B, F, K) -> (B,)`` if ``reduce_sum`` else ``(B, F, K) -> (B, K)``; the
    fields may also come as a sequence of ``(B, F_j, K)`` blocks (see :meth:`forward`).

    References
    ----------
    .. [1] Rendle, S. "Factorization Machines." IEEE ICDM 2010.
    """

    def __init__(self, reduce_sum: bool = True) -> None:
        super().__init__()
        if not isinstance(reduce_sum, bool):
            raise ValueError(
                f"FactorizationMachine: reduce_sum must be a bool, got {reduce_sum!r}."
            )
        self.reduce_sum = reduce_sum

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        """Compute the pairwise interaction term.

        Parameters
        ----------
        x : torch.Tensor of shape (B, F, K), or a sequence of them
            Field embeddings, or blocks of them (shapes ``(B, F_j, K)``) taken as their
            concatenation along the field axis, which is then never built
            (:meth:`~skctr.nn.embedding.FieldEmbedding.fields_and_deep` with
            ``field_blocks=True``).

        Returns
        -------
        torch.Tensor of shape (B,) or (B, K)
            ``(B,)`` if ``reduce_sum``, else ``(B, K)``.
        """
        blocks = _field_blocks(self, x)
        return _PairwiseSum.apply(self.reduce_sum, *blocks)

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr(module)``."""
        return f"reduce_sum={self.reduce_sum}"


class BiInteractionPooling(nn.Module):
    r"""Bi-interaction pooling of the Neural Factorization Machine.

    .. math::

        f_{BI}(x) = \sum_{i<j} e_i \odot e_j

    computed with :class:`FactorizationMachine` ``(reduce_sum=False)`` in :math:`O(F K)`.

    Notes
    -----
    Shapes: ``(B, F, K) -> (B, K)``.

    References
    ----------
    .. [1] He, X. and Chua, T.-S. "Neural Factorization Machines for Sparse Predictive
       Analytics." SIGIR 2017.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fm = FactorizationMachine(reduce_sum=False)

    def forward(self, x: Tensor | Sequence[Tensor]) -> Tensor:
        """Pool the pairwise element-wise products.

        Parameters
        ----------
        x : torch.Tensor of shape (B, F, K), or a sequence of them
            Field embeddings, or blocks of them along the field axis (see
            :class:`FactorizationMachine`).

        Returns
        -------
        torch.Tensor of shape (B, K)
            Sum over pairs of the element-wise products.
        """
        return self.fm(x)


class InnerProduct(nn.Module):
    r"""Inner products of all field pairs (the product layer of IPNN).

    .. math::

        p_{ij} = \langle e_i, e_j \rangle, \qquad i < j

    Notes
    -----
    Shapes: ``(B, F, K) -> (B, F (F - 1) / 2)``, pairs in the order of
    :func:`pairwise_indices`.

    References
    ----------
    .. [1] Qu, Y., Cai, H., Ren, K., Zhang, W., Yu, Y., Wen, Y. and Wang, J. "Product-based
       Neural Networks for User Response Prediction." IEEE ICDM 2016.
    """

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        """Compute the pairwise inner products.

        Parameters
        ----------
        x : torch.Tensor of shape (B, F, K)
            Field embeddings.

        Returns
        -------
        torch.Tensor of shape (B, F * (F - 1) // 2)
            ``<e_i, e_j>`` for every pair ``i < j``.
        """
        _check_fields_input(self, x)
        row, col = pairwise_indices(x.shape[1], device=x.device)
        gram = torch.bmm(x, x.transpose(1, 2))
        return gram[:, row, col]


class OuterProduct(nn.Module):
    r"""Kernel (outer) products of all field pairs, as in the outer/kernel product PNN.

    .. math::

        p_{ij} = e_i^\top W_{ij} e_j, \qquad i < j

    with one learnt kernel per pair: a full ``(K, K)`` matrix (``"mat"``), a diagonal stored as
    a ``(K,)`` vector (``"vec"``), or a scalar times the identity (``"num"``).

    Parameters
    ----------
    num_fields : int
        Number of fields ``F`` (at least 2).
    embedding_dim : int
        Embedding dimension ``K``.
    kernel_type : {"mat", "vec", "num"}, default="mat"
        Form of the kernels.

    Attributes
    ----------
    kernel : torch.nn.Parameter
        Shape ``(P, K, K)``, ``(P, K)`` or ``(P,)`` for ``"mat"``, ``"vec"``, ``"num"``, where
        ``P = F (F - 1) / 2``. Initialised uniformly in :math:`\pm\sqrt{3 / K}`, the Xavier
        bound of a ``K x K`` matrix.
    output_dim : int
        Number of pairs ``P``.

    Notes
    -----
    Shapes: ``(B, F, K) -> (B, F (F - 1) / 2)``, pairs in the order of
    :func:`pairwise_indices`. All pairs are computed at once (no loop over pairs).

    References
    ----------
    .. [1] Qu, Y., Cai, H., Ren, K., Zhang, W., Yu, Y., Wen, Y. and Wang, J. "Product-based
       Neural Networks for User Response Prediction." IEEE ICDM 2016.
    .. [2] Qu, Y., Fang, B., Zhang, W., Tang, R., Niu, M., Guo, H., Yu, Y. and He, X.
       "Product-Based Neural Networks for User Response Prediction over Multi-Field Categorical
       Data." ACM Transactions on Information Systems 37(1), 2018 (the kernel form).
    """

    row: Tensor
    col: Tensor

    def __init__(self, num_fields: int, embedding_dim: int, kernel_type: str = "mat") -> None:
        super().__init__()
        self.num_fields = _check_int("OuterProduct", "num_fields", num_fields, minimum=2)
        self.embedding_dim = _check_int("OuterProduct", "embedding_dim", embedding_dim)
        self.kernel_type = _check_choice(
            "OuterProduct", "kernel_type", kernel_type, ("mat", "vec", "num")
        )
        row, col = pairwise_indices(self.num_fields)
        self.register_buffer("row", row, persistent=False)
        self.register_buffer("col", col, persistent=False)
        num_pairs = row.numel()
        k = self.embedding_dim
        shape = {"mat": (num_pairs, k, k), "vec": (num_pairs, k), "num": (num_pairs,)}
        self.kernel = nn.Parameter(torch.empty(shape[self.kernel_type]))
        self.output_dim: int = num_pairs
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the kernels uniformly in ``[-sqrt(3 / K), sqrt(3 / K)]``."""
        bound = math.sqrt(3.0 / self.embedding_dim)
        nn.init.uniform_(self.kernel, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """Compute the kernel products.

        Parameters
        ----------
        x : torch.Tensor of shape (B, F, K)
            Field embeddings, with ``F == num_fields`` and ``K == embedding_dim``.

        Returns
        -------
        torch.Tensor of shape (B, F * (F - 1) // 2)
            ``e_i^T W_ij e_j`` for every pair ``i < j``.
        """
        _check_fields_input(self, x, self.num_fields, self.embedding_dim)
        left = x[:, self.row]  # (B, P, K)
        right = x[:, self.col]  # (B, P, K)
        if self.kernel_type == "mat":
            # (B, P, K) x (P, K, K) -> (B, P, K): (e_i^T W_ij) for each pair
            projected = torch.einsum("bpk,pkl->bpl", left, self.kernel)
            return (projected * right).sum(dim=-1)
        if self.kernel_type == "vec":
            return (left * self.kernel * right).sum(dim=-1)
        return (left * right).sum(dim=-1) * self.kernel

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr(module)``."""
        return f"{self.num_fields}, {self.embedding_dim}, kernel_type={self.kernel_type!r}"


class CrossNetwork(nn.Module):
    r"""Cross network of DCN (``"vector"``) or DCN-V2 (``"matrix"``).

    With :math:`x_0` the input and :math:`x_l` the output of layer :math:`l`:

    .. math::

        \text{vector:}\quad x_{l+1} = x_0\, (x_l^\top w_l) + b_l + x_l

        \text{matrix:}\quad x_{l+1} = x_0 \odot (W_l x_l + b_l) + x_l

    Parameters
    ----------
    in_dim : int
        Width ``D`` of the input (e.g. the flattened embeddings and dense values).
    num_layers : int, default=2
        Number of cross layers.
    parameterization : {"vector", "matrix"}, default="vector"
        ``"vector"``: weight ``w_l`` of shape ``(D,)`` (DCN, Wang et al. 2017).
        ``"matrix"``: weight ``W_l`` of shape ``(D, D)`` (DCN-M / DCN-V2, Wang et al. 2021).

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (num_layers, D) or (num_layers, D, D)
        ``w_l`` or ``W_l`` for every layer (Xavier-normal initialisation per layer).
    bias : torch.nn.Parameter of shape (num_layers, D)
        ``b_l`` for every layer (initialised to zero).
    output_dim : int
        Equal to ``in_dim``.

    Notes
    -----
    Shapes: ``(B, D) -> (B, D)``.

    Every vector layer adds ``x_0`` times a number per row to its input, so the network's
    output is ``x_L = a x_0 + c``: with :math:`p_l = x_0^\top w_l`, ``a_0 = 1`` and ``c_0 = 0``,
    layer ``l`` gives :math:`a_{l+1} = a_l (1 + p_l) + c_l^\top w_l` and
    :math:`c_{l+1} = c_l + b_l` (the observation of the xDeepFM paper that DCN's
    cross network scales :math:`x_0`). The vector network is computed that way
    (:meth:`scale_and_shift`): one product ``x_0 W^T`` for every layer's ``p_l``, a
    recurrence on one number per row, and one pass building ``x_L``, where layer by
    layer it took several passes over ``(B, D)`` tensors each way. A model that only
    takes a linear function of ``x_L`` (Deep & Cross's output layer) need not build
    ``x_L`` at all.

    References
    ----------
    .. [1] Wang, R., Fu, B., Fu, G. and Wang, M. "Deep & Cross Network for Ad Click
       Predictions." ADKDD 2017.
    .. [2] Wang, R., Shivanna, R., Cheng, D., Jain, S., Lin, D., Hong, L. and Chi, E. "DCN V2:
       Improved Deep & Cross Network and Practical Lessons for Web-scale Learning to Rank
       Systems." WWW 2021.
    """

    def __init__(self, in_dim: int, num_layers: int = 2, parameterization: str = "vector") -> None:
        super().__init__()
        self.in_dim = _check_int("CrossNetwork", "in_dim", in_dim)
        self.num_layers = _check_int("CrossNetwork", "num_layers", num_layers)
        self.parameterization = _check_choice(
            "CrossNetwork", "parameterization", parameterization, ("vector", "matrix")
        )
        d = self.in_dim
        shape = (
            (self.num_layers, d) if self.parameterization == "vector" else (self.num_layers, d, d)
        )
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(self.num_layers, d))
        self.output_dim: int = d
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal weights (``w_l`` seen as a ``(D, 1)`` matrix) and zero biases."""
        d = self.in_dim
        fan_out = 1 if self.parameterization == "vector" else d
        nn.init.normal_(self.weight, mean=0.0, std=math.sqrt(2.0 / (d + fan_out)))
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the cross layers.

        Parameters
        ----------
        x : torch.Tensor of shape (B, D)
            Input vector ``x_0``.

        Returns
        -------
        torch.Tensor of shape (B, D)
            Output of the last cross layer.
        """
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(
                f"CrossNetwork(in_dim={self.in_dim}) expects input of shape (batch, "
                f"{self.in_dim}), got {tuple(x.shape)}."
            )
        if self.parameterization == "vector":
            scale, shift = self.scale_and_shift(x @ self.weight.t())
            return torch.addcmul(shift, x, scale.unsqueeze(1))
        xl = x
        for layer in range(self.num_layers):
            xl = x * (xl @ self.weight[layer].T + self.bias[layer]) + xl
        return xl

    def scale_and_shift(self, projections: Tensor) -> tuple[Tensor, Tensor]:
        r"""The vector network's output as ``x_L = scale * x_0 + shift``.

        Parameters
        ----------
        projections : torch.Tensor of shape (B, num_layers)
            :math:`p_l = x_0^\top w_l` for each row and layer: ``x_0 @ weight.T``.

        Returns
        -------
        scale : torch.Tensor of shape (B,)
            :math:`a_L` of each row.
        shift : torch.Tensor of shape (D,)
            :math:`c_L = \sum_l b_l`, the same for every row.

        Raises
        ------
        ValueError
            If the network is ``"matrix"`` or ``projections`` is not ``(B, num_layers)``.
        """
        if self.parameterization != "vector":
            raise ValueError(
                "CrossNetwork.scale_and_shift: only the 'vector' network scales x_0; this one "
                f"is {self.parameterization!r}."
            )
        if projections.dim() != 2 or projections.shape[1] != self.num_layers:
            raise ValueError(
                f"CrossNetwork.scale_and_shift expects projections of shape (batch, "
                f"{self.num_layers}), got {tuple(projections.shape)}."
            )
        # in at least float32 (the projections come in bfloat16 under autocast, where
        # 1 + p would lose most of a small p), with elementwise ops that autocast leaves be
        projections = projections.to(torch.promote_types(projections.dtype, torch.float32))
        scale = 1 + projections[:, 0]  # a_1 (c_0 = 0)
        shift = self.bias[0]
        for layer in range(1, self.num_layers):
            scale = scale * (1 + projections[:, layer]) + (shift * self.weight[layer]).sum()
            shift = shift + self.bias[layer]
        return scale, shift

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr(module)``."""
        return (
            f"{self.in_dim}, num_layers={self.num_layers}, "
            f"parameterization={self.parameterization!r}"
        )


# Bytes of outer-product maps one block of rows of a CIN layer holds: small enough to stay in
# cache between being built and being consumed by the GEMM (a few MiB of L2/L3 on a CPU), large
# enough that each GEMM is efficient. On CUDA, blocks only bound the scratch memory.
_CIN_BLOCK_BYTES = {"cpu": 4 << 20, "cuda": 256 << 20}


def _cin_block_rows(rows: int, width: int, tensor: Tensor) -> int:
    """Rows per block for a CIN layer whose outer-product rows have ``width`` entries."""
    budget = _CIN_BLOCK_BYTES.get(tensor.device.type, _CIN_BLOCK_BYTES["cuda"])
    return max(1, min(rows, budget // (width * tensor.element_size())))


def _hadamard_rows(hidden: Tensor, x: Tensor) -> Tensor:
    """All products ``hidden[n, i] * x[n, j]`` of each row, ``(n, H) x (n, m) -> (n, H m)``."""
    return (hidden.unsqueeze(2) * x.unsqueeze(1)).flatten(1)


class _CINLayer(torch.autograd.Function):
    r"""One CIN layer's linear map, ``z_n W^T`` with ``z_n = vec(h_n x_n^T)``, block by block.

    ``hidden`` is ``(N, H)``, ``x`` is ``(N, m)`` and ``weight`` is ``(H_k, H m)``; row ``n``
    of the output is ``W z_n`` where ``z_n[i m + j] = h_{n,i} x_{n,j}``. Autograd over the
    plain expression keeps the whole ``(N, H m)`` outer-product tensor (for ``H = 128,
    m = 26`` and ``N = 4096 * 16`` rows: 832 MiB) alive from the forward to the backward pass
    and streams it through memory several times. Here each block of rows builds its products,
    uses them while they are in cache and drops them; the backward pass rebuilds them
    (an elementwise product, cheap next to the GEMMs). The arithmetic is the same sums,
    so results agree with the plain expression to rounding. Once differentiable: no second
    derivatives. The products are written with ``out=``, which autocast does not see, so the
    caller casts the inputs to autocast's dtype (:class:`CIN` does).
    """

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, x: Tensor, weight: Tensor) -> Tensor:
        rows = hidden.shape[0]
        block = _cin_block_rows(rows, weight.shape[1], hidden)
        out = hidden.new_empty(rows, weight.shape[0])
        weight_t = weight.t()
        for start in range(0, rows, block):
            stop = start + block
            torch.mm(
                _hadamard_rows(hidden[start:stop], x[start:stop]), weight_t, out=out[start:stop]
            )
        ctx.save_for_backward(hidden, x, weight)
        ctx.block = block
        return out

    @staticmethod
    @first_order_backward
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        hidden, x, weight = ctx.saved_tensors
        need_h, need_x, need_w = ctx.needs_input_grad
        rows, width = hidden.shape
        fields, block = x.shape[1], ctx.block
        grad = grad.contiguous()
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_x = torch.empty_like(x) if need_x else None
        grad_w = torch.zeros_like(weight) if need_w else None
        for start in range(0, rows, block):
            stop = start + block
            h, f, g = hidden[start:stop], x[start:stop], grad[start:stop]
            if grad_w is not None:
                grad_w.addmm_(g.t(), _hadamard_rows(h, f))
            if grad_h is not None or grad_x is not None:
                grad_z = torch.mm(g, weight).view(-1, width, fields)  # (n, H, m)
                if grad_h is not None:
                    torch.bmm(grad_z, f.unsqueeze(2), out=grad_h[start:stop].unsqueeze(2))
                if grad_x is not None:
                    torch.bmm(h.unsqueeze(1), grad_z, out=grad_x[start:stop].unsqueeze(1))
        return grad_h, grad_x, grad_w


class CIN(nn.Module):
    r"""Compressed Interaction Network of xDeepFM.

    With :math:`X^0 \in \mathbb{R}^{m \times D}` the field embeddings (``m`` fields) and
    :math:`X^{k-1} \in \mathbb{R}^{H_{k-1} \times D}` the maps kept from layer ``k - 1``:

    .. math::

        X^k_{h,*} = \sigma\Big(\sum_{i=1}^{H_{k-1}} \sum_{j=1}^{m}
        W^{k,h}_{i,j} \, (X^{k-1}_{i,*} \odot X^0_{j,*})\Big)

    i.e. a 1x1 convolution over the :math:`H_{k-1} m` outer-product maps, done as one batched
    matrix product. Each map kept for the output is sum-pooled over the embedding axis.

    Parameters
    ----------
    num_fields : int
        Number of fields ``m``.
    layer_sizes : sequence of int, default=(128, 128)
        Number of maps :math:`H_k` produced by each layer.
    split_half : bool, default=True
        If True, every layer but the last sends its first half of maps to the next layer and its
        second half to the output (those layer sizes must be even); the last layer sends all its
        maps to the output. If False, every layer sends all its maps to both.
    activation : str or callable, default="identity"
        :math:`\sigma`, applied per map; see :func:`skctr.nn.get_activation`. For
        ``"prelu"`` / ``"dice"`` each map is one feature and the ``D`` positions count as extra
        rows.

    Attributes
    ----------
    weights : torch.nn.ParameterList
        Layer ``k`` holds :math:`W^k` of shape ``(H_k, H_{k-1} * m)`` with :math:`H_0 = m`
        (Xavier-uniform initialisation, no bias as in the paper's formula).
    output_dim : int
        Number of pooled maps: ``sum(H_k / 2 for all but the last) + H_last`` with
        ``split_half``, else ``sum(H_k)``.

    Notes
    -----
    Shapes: ``(B, m, D) -> (B, output_dim)``.

    References
    ----------
    .. [1] Lian, J., Zhou, X., Zhang, F., Chen, Z., Xie, X. and Sun, G. "xDeepFM: Combining
       Explicit and Implicit Feature Interactions for Recommender Systems." KDD 2018.
    """

    def __init__(
        self,
        num_fields: int,
        layer_sizes: Sequence[int] = (128, 128),
        *,
        split_half: bool = True,
        activation: str | Callable[[], nn.Module] = "identity",
    ) -> None:
        super().__init__()
        self.num_fields = _check_int("CIN", "num_fields", num_fields)
        self.layer_sizes = _check_int_sequence("CIN", "layer_sizes", layer_sizes)
        if not self.layer_sizes:
            raise ValueError("CIN: layer_sizes must hold at least one layer size, got ().")
        if not isinstance(split_half, bool):
            raise ValueError(f"CIN: split_half must be a bool, got {split_half!r}.")
        self.split_half = split_half
        if split_half and any(size % 2 for size in self.layer_sizes[:-1]):
            raise ValueError(
                f"CIN: with split_half=True every layer size but the last must be even, got "
                f"layer_sizes={self.layer_sizes}; use even sizes or split_half=False."
            )

        self.weights = nn.ParameterList()
        self.activations = nn.ModuleList()
        self._next_sizes: list[int] = []
        output_dim = 0
        prev = self.num_fields
        last = len(self.layer_sizes) - 1
        for index, size in enumerate(self.layer_sizes):
            self.weights.append(nn.Parameter(torch.empty(size, prev * self.num_fields)))
            self.activations.append(get_activation(activation, num_features=size))
            next_size = size // 2 if split_half and index < last else size
            self._next_sizes.append(next_size)
            output_dim += size - next_size if split_half and index < last else size
            prev = next_size
        self.output_dim: int = output_dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform initialisation of every layer's weight."""
        for weight in self.weights:
            nn.init.xavier_uniform_(weight)

    def forward(self, x: Tensor) -> Tensor:
        """Run the CIN layers and sum-pool their output maps.

        Parameters
        ----------
        x : torch.Tensor of shape (B, m, D)
            Field embeddings :math:`X^0`.

        Returns
        -------
        torch.Tensor of shape (B, output_dim)
            Concatenated sum-pooled maps of all layers, layer by layer.
        """
        _check_fields_input(self, x, self.num_fields)
        batch, _, dim = x.shape
        pooled: list[Tensor] = []
        # embedding axis first: each of the B * D positions is one row, (B * D, m)
        xt = x.transpose(1, 2).reshape(batch * dim, self.num_fields)
        # the blocked products use out=, which autocast does not see: cast as it would
        dtype = autocast_product_dtype(x)
        if dtype is not None:
            xt = xt.to(dtype)
        hidden = xt
        for weight, act, size, next_size in zip(
            self.weights, self.activations, self.layer_sizes, self._next_sizes, strict=True
        ):
            if dtype is not None:
                weight = weight.to(dtype)
            # the paper's 1x1 convolution over the H * m Hadamard products (channel h * m + i
            # as in its z^{k+1}) as (B * D, H * m) x (H * m, H_k) GEMMs over blocks of rows
            maps = act(_CINLayer.apply(hidden, xt, weight)).view(batch, dim, size)
            if next_size == size:
                hidden, kept = maps, maps
            else:
                hidden, kept = maps[..., :next_size], maps[..., next_size:]
            hidden = hidden.reshape(batch * dim, next_size)
            pooled.append(kept.sum(dim=1))
        return torch.cat(pooled, dim=1)

    def extra_repr(self) -> str:
        """Return the constructor arguments shown by ``repr(module)``."""
        return f"{self.num_fields}, layer_sizes={self.layer_sizes}, split_half={self.split_half}"


def _field_blocks(layer: nn.Module, x: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """``x`` as a list of checked ``(B, F_j, K)`` blocks with the same B and K."""
    blocks = [x] if isinstance(x, Tensor) else list(x)
    if not blocks or not all(isinstance(b, Tensor) for b in blocks):
        raise ValueError(
            f"{type(layer).__name__} expects field embeddings: a tensor of shape (batch, "
            "num_fields, embedding_dim) or a non-empty sequence of such tensors."
        )
    for block in blocks:
        _check_fields_input(layer, block)
    if len({(b.shape[0], b.shape[2]) for b in blocks}) > 1:
        raise ValueError(
            f"{type(layer).__name__}: the field blocks must agree on the batch and "
            f"embedding axes, got shapes {[tuple(b.shape) for b in blocks]}."
        )
    return blocks


def _check_fields_input(
    layer: nn.Module, x: Tensor, num_fields: int | None = None, embedding_dim: int | None = None
) -> None:
    """Raise a ValueError unless ``x`` is ``(B, F, K)`` with the expected sizes."""
    name = type(layer).__name__
    if x.dim() != 3:
        raise ValueError(
            f"{name} expects field embeddings of shape (batch, num_fields, embedding_dim), "
            f"got a tensor of shape {tuple(x.shape)}."
        )
    if num_fields is not None and x.shape[1] != num_fields:
        raise ValueError(
            f"{name} was built for num_fields={num_fields}, got input of shape {tuple(x.shape)}."
        )
    if embedding_dim is not None and x.shape[2] != embedding_dim:
        raise ValueError(
            f"{name} was built for embedding_dim={embedding_dim}, got input of shape "
            f"{tuple(x.shape)}."
        )
