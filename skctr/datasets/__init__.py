"""Real CTR and recommendation samples bundled with skctr, with their provenance.

Each loader returns a :class:`sklearn.utils.Bunch` with ``data``, ``target``, ``frame``,
``sparse_features``, ``dense_features``, ``sequence_features`` and ``DESCR`` (the
provenance, terms and checksums of the bundled files), or ``(X, y)`` with
``return_X_y=True``.

- :func:`load_criteo_8k`: 8,000 raw Criteo DAC rows (13 dense, 26 categorical features).
- :func:`load_avazu_9k`: 8,999 raw Avazu rows (21 categorical features).
- :func:`load_movielens`: MovieLens latest-small, ``rating >= 4`` as label, genres and
  per-user behaviour histories, split by time.
- :func:`load_taobao_tiny`: 100-row Taobao ad sample with click sequences (smoke tests).
"""

from ._loaders import load_avazu_9k, load_criteo_8k, load_movielens, load_taobao_tiny

__all__ = ["load_avazu_9k", "load_criteo_8k", "load_movielens", "load_taobao_tiny"]
