"""What the cores share: their common parameters' documentation and the deep (MLP) part."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from ..nn import MLP
from ..nn.embedding import FieldEmbedding

#: numpydoc entry (type, description) of each parameter most cores take, as one place.
PARAMS: dict[str, tuple[str, str]] = {
    "schema": ("FeatureSchema", "The fields."),
    "embedding_dim": ("int, default=8", "Size K of each field's embedding vector."),
    "hidden_units": ("sequence of int, default=(256, 128)", "Widths of the MLP's hidden layers."),
    "dropout": ("float, default=0.0", "Dropout after each hidden layer."),
    "activation": ('str, default="relu"', "Activation of the hidden layers."),
    "interact_dense": (
        "bool, default=True",
        "Whether dense fields enter the interaction layers as vectors ``x * v`` (the paper) "
        "or only the MLP (DeepCTR); False saves the quadratic cost of those fields.",
    ),
    "sequence_pooling": (
        '{"mean", "sum", "max"}, default="mean"',
        "How a sequence becomes one field vector.",
    ),
}

_T = TypeVar("_T")
_MARKER = re.compile(r"(\s*)<(\w+)>")


def shared_params_doc(cls: _T) -> _T:
    """Class decorator: expand each ``<name>`` line of the docstring into ``PARAMS[name]``.

    Parameters
    ----------
    cls : type
        A core whose docstring's Parameters section lists shared parameters as ``<name>``.

    Returns
    -------
    type
        ``cls``, its docstring expanded.
    """
    lines = []
    for line in (cls.__doc__ or "").splitlines():
        marker = _MARKER.fullmatch(line)
        if marker is None:
            lines.append(line)
            continue
        indent, name = marker.groups()
        kind, text = PARAMS[name]
        lines += [f"{indent}{name} : {kind}", f"{indent}    {text}"]
    cls.__doc__ = "\n".join(lines)
    return cls


def deep_mlp(
    embedding: FieldEmbedding, hidden_units: Sequence[int], dropout: float, activation: str
) -> MLP:
    """The deep part most cores end with: an MLP from ``fields_and_deep``'s input to a logit.

    Parameters
    ----------
    embedding : FieldEmbedding
        The core's embedding; its ``deep_dim`` is the MLP's input width.
    hidden_units : sequence of int
        Widths of the hidden layers.
    dropout : float
        Dropout after each hidden layer.
    activation : str
        Activation of the hidden layers.

    Returns
    -------
    MLP
        ``deep_dim -> hidden_units -> 1``.
    """
    return MLP(
        embedding.deep_dim, hidden_units, dropout=dropout, activation=activation, output_dim=1
    )
