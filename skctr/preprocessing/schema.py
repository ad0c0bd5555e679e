"""The contract between :class:`CTRFeatureTransformer` and the models.

A fitted transformer describes its output with a :class:`FeatureSchema` (which fields exist,
their vocabulary sizes, which sequence shares which vocabulary) and returns an
:class:`EncodedBatch` that carries the schema next to the encoded arrays. Every model core
is built from the schema alone, so nothing in ``skctr.nn`` or ``skctr.cores`` needs to
know about pandas or scikit-learn.

Integer codes follow one layout in every sparse and sequence field:

* ``0`` -- padding (only ever produced inside sequences);
* ``1`` -- out-of-vocabulary: unseen at fit time, or folded because rare;
* ``2`` -- missing value;
* ``3`` and up -- the categories (or hash buckets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Code of the padding slot in sequences.
PAD = 0
#: Code of the out-of-vocabulary slot (unseen or rare categories).
OOV = 1
#: Code of the missing-value slot.
MISSING = 2
#: Number of reserved codes before the first category.
NUM_RESERVED = 3


@dataclass(frozen=True)
class SparseField:
    """A categorical field: one integer code per row.

    Parameters
    ----------
    name : str
        Output name of the field (the input column it came from).
    vocab_size : int
        Number of distinct codes, reserved codes included.
    """

    name: str
    vocab_size: int


@dataclass(frozen=True)
class DenseField:
    """A numerical field: one float per row, already imputed and scaled.

    Parameters
    ----------
    name : str
        Output name of the field.
    """

    name: str


@dataclass(frozen=True)
class SequenceField:
    """A multi-valued field: a right-padded array of codes per row with its length.

    Parameters
    ----------
    name : str
        Output name of the field.
    vocab_size : int
        Number of distinct codes, reserved codes included.
    maxlen : int
        Width of the padded array; longer sequences keep their last ``maxlen`` items.
    shares : str or None
        Name of the sparse field whose vocabulary (and therefore embedding rows) this
        sequence shares, e.g. ``"item_id"`` for ``"hist_item_id"``; ``None`` when the
        sequence has a vocabulary of its own.
    """

    name: str
    vocab_size: int
    maxlen: int
    shares: str | None = None


@dataclass(frozen=True)
class FeatureSchema:
    """The fields a fitted :class:`CTRFeatureTransformer` produces, in output order.

    Parameters
    ----------
    sparse : tuple of SparseField
        Categorical fields (binned numerical columns included).
    dense : tuple of DenseField
        Numerical fields (missing indicators included).
    sequence : tuple of SequenceField
        Multi-valued fields.
    """

    sparse: tuple[SparseField, ...] = ()
    dense: tuple[DenseField, ...] = ()
    sequence: tuple[SequenceField, ...] = ()

    @property
    def num_fields(self) -> int:
        """Number of fields a model sees when each sequence is pooled into one vector."""
        return len(self.sparse) + len(self.dense) + len(self.sequence)

    @property
    def embedding_rows(self) -> int:
        """Rows of one fused embedding table over every field with a vocabulary of its own
        (the sparse fields and the sequences that share none), reserved codes included."""
        own = [f.vocab_size for f in self.sequence if f.shares is None]
        return sum(f.vocab_size for f in self.sparse) + sum(own)

    def sparse_index(self, name: str) -> int:
        """Position of the sparse field called ``name``.

        Raises
        ------
        KeyError
            If there is no sparse field of that name; the message lists the ones there are.
        """
        for i, f in enumerate(self.sparse):
            if f.name == name:
                return i
        raise KeyError(
            f"No sparse field named {name!r}; the sparse fields are "
            f"{[f.name for f in self.sparse]}."
        )

    def sequence_index(self, name: str) -> int:
        """Position of the sequence field called ``name``.

        Raises
        ------
        KeyError
            If there is no sequence field of that name; the message lists the ones there are.
        """
        for i, f in enumerate(self.sequence):
            if f.name == name:
                return i
        raise KeyError(
            f"No sequence field named {name!r}; the sequence fields are "
            f"{[f.name for f in self.sequence]}."
        )

    def output_names(self) -> list[str]:
        """Column names of the flat array view of an :class:`EncodedBatch`."""
        names = [f.name for f in self.sparse] + [f.name for f in self.dense]
        for f in self.sequence:
            names += [f"{f.name}[{i}]" for i in range(f.maxlen)]
        return names


@dataclass(frozen=True, eq=False)
class EncodedBatch:
    """Rows encoded by :class:`CTRFeatureTransformer`, ready for any skctr model.

    Ids stay ``int64`` end to end (never through a float type, which would corrupt large
    codes). The object also behaves like a 2-D array for scikit-learn tooling: ``len``,
    ``shape``, row indexing with ``batch[rows]`` and ``numpy.asarray(batch)`` (a float64
    view with the sparse codes, dense values and padded sequences side by side).

    Parameters
    ----------
    schema : FeatureSchema
        What the columns are.
    sparse : ndarray of shape (n_samples, n_sparse), dtype int64
        Codes of the sparse fields.
    dense : ndarray of shape (n_samples, n_dense), dtype float32
        Values of the dense fields.
    sequences : tuple of ndarray of shape (n_samples, maxlen), dtype int64
        Right-padded codes of each sequence field, in schema order.
    lengths : ndarray of shape (n_samples, n_sequence), dtype int64
        Number of real items in each sequence.
    """

    schema: FeatureSchema
    sparse: np.ndarray
    dense: np.ndarray
    sequences: tuple[np.ndarray, ...] = field(default_factory=tuple)
    lengths: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.lengths is None:
            object.__setattr__(self, "lengths", np.zeros((len(self.sparse), 0), dtype=np.int64))

    def __len__(self) -> int:
        return self.sparse.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_output_columns)`` of the flat array view."""
        width = self.sparse.shape[1] + self.dense.shape[1]
        width += sum(s.shape[1] for s in self.sequences)
        return (len(self), width)

    @property
    def ndim(self) -> int:
        """Always 2, as for the flat array view."""
        return 2

    def __getitem__(self, rows: Any) -> EncodedBatch:
        """Select rows (an integer array, a boolean mask or a slice)."""
        if isinstance(rows, tuple):
            if len(rows) == 2 and (rows[1] is Ellipsis or rows[1] == slice(None)):
                rows = rows[0]
            else:
                raise IndexError("EncodedBatch supports row indexing only: batch[rows].")
        if np.isscalar(rows):
            rows = [rows]
        return EncodedBatch(
            schema=self.schema,
            sparse=self.sparse[rows],
            dense=self.dense[rows],
            sequences=tuple(s[rows] for s in self.sequences),
            lengths=self.lengths[rows],
        )

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        parts = [self.sparse.astype(np.float64), self.dense.astype(np.float64)]
        parts += [s.astype(np.float64) for s in self.sequences]
        out = np.hstack(parts) if parts else np.zeros((len(self), 0))
        return out if dtype is None else out.astype(dtype)

    @classmethod
    def concat(cls, batches: Sequence[EncodedBatch]) -> EncodedBatch:
        """Stack batches that share one schema, row-wise."""
        first = batches[0]
        return cls(
            schema=first.schema,
            sparse=np.concatenate([b.sparse for b in batches]),
            dense=np.concatenate([b.dense for b in batches]),
            sequences=tuple(
                np.concatenate([b.sequences[i] for b in batches])
                for i in range(len(first.sequences))
            ),
            lengths=np.concatenate([b.lengths for b in batches]),
        )
