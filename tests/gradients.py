"""A check shared by the tests of fast paths: same outputs, same gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def assert_same_gradients(
    got: Tensor,
    want: Tensor,
    inputs: Sequence[Tensor],
    grad: Tensor | None = None,
    want_inputs: Sequence[Tensor] | None = None,
) -> None:
    """Assert that ``got`` equals ``want`` and that both give ``inputs`` the same gradients
    for the upstream gradient ``grad`` (random by default); ``want``'s gradients are taken
    for ``want_inputs`` instead where given (a copy of the model). Sparse gradients are
    compared densely, and an input that neither output uses may have none on both sides."""
    torch.testing.assert_close(got, want)
    if grad is None:
        grad = torch.randn_like(got)
    found = torch.autograd.grad(got, inputs, grad, allow_unused=True)
    expected = torch.autograd.grad(
        want, inputs if want_inputs is None else want_inputs, grad, allow_unused=True
    )
    for g, w in zip(found, expected, strict=True):
        if g is None or w is None:
            assert g is None and w is None
            continue
        if g.is_sparse:
            g, w = g.coalesce().to_dense(), w.coalesce().to_dense()
        torch.testing.assert_close(g, w)
