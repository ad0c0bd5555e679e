"""Loaders for the real CTR samples bundled in ``skctr/datasets/data``.

Each loader returns a :class:`sklearn.utils.Bunch` (or ``(X, y)`` with ``return_X_y=True``)
whose ``data`` frame is ready for :class:`~skctr.preprocessing.CTRFeatureTransformer`:
categorical columns use the pandas ``"str"`` dtype, dense columns are ``float64`` and
multi-valued (sequence) columns hold one Python ``list`` of ``str`` per row. The Bunch also
lists which columns are ``sparse_features``, ``dense_features`` and ``sequence_features``,
and carries the dataset's provenance and terms in ``DESCR``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = ["load_avazu_9k", "load_criteo_8k", "load_movielens", "load_taobao_tiny"]

_SPLITS = ("train", "dev", "test", "all")
_TRAIN_TEST = ("train", "test", "all")

# Only empty fields are missing. pandas' default NA strings ("NA", "null", "nan", ...) could be
# real category values, so they are not treated as missing.
_CSV_NA = {"keep_default_na": False, "na_values": [""]}

_CRITEO_DENSE = [f"I{i}" for i in range(1, 14)]
_CRITEO_SPARSE = [f"C{i}" for i in range(1, 27)]

_AVAZU_DROP = ["id", "hour"]

_TAOBAO_ID_COLUMNS = [
    "userid",
    "adgroup_id",
    "cate_id",
    "campaign_id",
    "customer",
    "brand",
    "cms_segid",
    "cms_group_id",
    "final_gender_code",
    "age_level",
    "pvalue_level",
    "shopping_level",
    "occupation",
    "new_user_class_level",
    "pid",
]


def _data_dir(name: str) -> Any:
    """Return the resource folder ``skctr/datasets/data/<name>`` (a ``Traversable``)."""
    return files("skctr.datasets") / "data" / name


def _read_text(name: str, filename: str) -> str:
    return (_data_dir(name) / filename).read_text(encoding="utf-8")


def _read_csv(name: str, filename: str, **kwargs: Any) -> pd.DataFrame:
    """Read a bundled CSV through a file object, so zipped installs work as well."""
    with (_data_dir(name) / filename).open("rb") as fh:
        return pd.read_csv(fh, **kwargs)


def _check_split(split: object, allowed: Sequence[str]) -> str:
    if not isinstance(split, str) or split not in allowed:
        raise ValueError(
            f"The 'split' parameter must be one of {', '.join(repr(s) for s in allowed)}; "
            f"got {split!r}."
        )
    return split


def _bunch(
    frame: pd.DataFrame,
    *,
    target: str,
    sparse: list[str],
    dense: list[str],
    sequence: list[str],
    descr: str,
    return_X_y: bool,
) -> Bunch | tuple[pd.DataFrame, pd.Series]:
    """Split ``frame`` into features and target and package them like sklearn's loaders."""
    feature_names = [c for c in frame.columns if c != target]
    X = frame[feature_names]
    y = frame[target].astype("int64")
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        frame=pd.concat([X, y], axis=1),
        feature_names=feature_names,
        target_names=[target],
        sparse_features=list(sparse),
        dense_features=list(dense),
        sequence_features=list(sequence),
        DESCR=descr,
    )


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _to_lists(values: pd.Series, sep: str, empty: Sequence[str] = ()) -> list[list[str]]:
    """Split each string of ``values`` on ``sep``; missing or ``empty`` values give ``[]``."""
    skip = set(empty)
    return [[] if not isinstance(v, str) or v == "" or v in skip else v.split(sep) for v in values]


def load_criteo_8k(
    split: str = "train", *, return_X_y: bool = False
) -> Bunch | tuple[pd.DataFrame, pd.Series]:
    """Load 8,000 raw rows of the Criteo Display Advertising Challenge data.

    The rows come pre-split into train (7,200 rows), dev (409) and test (391). The data has
    13 integer-valued count features ``I1`` .. ``I13`` and 26 hashed categorical features
    ``C1`` .. ``C26``; about 22% of the rows are clicks.

    Parameters
    ----------
    split : {"train", "dev", "test", "all"}, default="train"
        Which part to load. ``"all"`` concatenates train, dev and test in that order.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : pandas.DataFrame
            The features: ``I1`` .. ``I13`` as ``float64`` (NaN where missing) and
            ``C1`` .. ``C26`` with the ``"str"`` dtype (missing where the field is empty).
        target : pandas.Series
            The ``int64`` click label named ``"label"`` (1 = clicked).
        frame : pandas.DataFrame
            ``data`` and ``target`` side by side.
        feature_names, target_names : list of str
            Column names of ``data`` and of the target.
        sparse_features, dense_features, sequence_features : list of str
            The categorical (``C*``), numeric (``I*``) and sequence (none) columns.
        DESCR : str
            Provenance, terms, schema and checksums of the bundled files.

    (data, target) : tuple of (pandas.DataFrame, pandas.Series)
        Returned instead when ``return_X_y`` is True.

    Raises
    ------
    ValueError
        If ``split`` is not one of the allowed values.

    Examples
    --------
    >>> from skctr.datasets import load_criteo_8k
    >>> X, y = load_criteo_8k(return_X_y=True)
    >>> X.shape
    (7200, 39)
    """
    split = _check_split(split, _SPLITS)
    names = ["label", *_CRITEO_DENSE, *_CRITEO_SPARSE]
    dtype = {"label": "int64"}
    dtype.update(dict.fromkeys(_CRITEO_DENSE, "float64"))
    dtype.update(dict.fromkeys(_CRITEO_SPARSE, "str"))
    parts = [
        _read_csv(
            "criteo_8k",
            f"{part}.tsv",
            sep="\t",
            header=None,
            names=names,
            dtype=dtype,
            **_CSV_NA,
        )
        for part in (("train", "dev", "test") if split == "all" else (split,))
    ]
    return _bunch(
        _concat(parts),
        target="label",
        sparse=_CRITEO_SPARSE,
        dense=_CRITEO_DENSE,
        sequence=[],
        descr=_read_text("criteo_8k", "PROVENANCE.md"),
        return_X_y=return_X_y,
    )


def load_avazu_9k(
    split: str = "train", *, return_X_y: bool = False
) -> Bunch | tuple[pd.DataFrame, pd.Series]:
    """Load 8,999 raw rows of the Avazu click-through-rate data (first hour).

    The rows come pre-split into train (8,087 rows), dev (480) and test (432); about 17% of
    the rows are clicks. Every feature is categorical. The row identifier ``id`` and the
    ``hour`` column (one value for the whole sample) are dropped.

    Parameters
    ----------
    split : {"train", "dev", "test", "all"}, default="train"
        Which part to load. ``"all"`` concatenates train, dev and test in that order.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : pandas.DataFrame
            The 21 features, all with the ``"str"`` dtype, so that integer-coded categories
            such as ``C14`` or ``banner_pos`` are not mistaken for numbers.
        target : pandas.Series
            The ``int64`` click label named ``"click"``.
        frame : pandas.DataFrame
            ``data`` and ``target`` side by side.
        feature_names, target_names : list of str
            Column names of ``data`` and of the target.
        sparse_features, dense_features, sequence_features : list of str
            All features are sparse; the other two lists are empty.
        DESCR : str
            Provenance, terms, schema and checksums of the bundled files.

    (data, target) : tuple of (pandas.DataFrame, pandas.Series)
        Returned instead when ``return_X_y`` is True.

    Raises
    ------
    ValueError
        If ``split`` is not one of the allowed values.

    Examples
    --------
    >>> from skctr.datasets import load_avazu_9k
    >>> X, y = load_avazu_9k(return_X_y=True)
    >>> X.shape
    (8087, 21)
    """
    split = _check_split(split, _SPLITS)
    # Only train.csv has a header; dev.csv and test.csv are read with its names.
    with (_data_dir("avazu_9k") / "train.csv").open("r", encoding="utf-8") as fh:
        names = fh.readline().rstrip("\r\n").split(",")
    dtype = dict.fromkeys(names, "str")
    dtype["click"] = "int64"
    parts = [
        _read_csv(
            "avazu_9k",
            f"{part}.csv",
            header=0 if part == "train" else None,
            names=names,
            dtype=dtype,
            usecols=[c for c in names if c not in _AVAZU_DROP],
            **_CSV_NA,
        )
        for part in (("train", "dev", "test") if split == "all" else (split,))
    ]
    frame = _concat(parts)
    features = [c for c in frame.columns if c != "click"]
    return _bunch(
        frame,
        target="click",
        sparse=features,
        dense=[],
        sequence=[],
        descr=_read_text("avazu_9k", "PROVENANCE.md"),
        return_X_y=return_X_y,
    )


def _histories(
    user_codes: np.ndarray,
    timestamps: np.ndarray,
    positive: np.ndarray,
    items: np.ndarray,
    maxlen: int | None,
) -> list[list[str]]:
    """Per row, the items the same user rated positively strictly earlier, oldest first.

    The rows must be sorted by user, then by timestamp. Rows with equal timestamps do not see
    each other. At most the last ``maxlen`` items are kept (all if ``maxlen`` is None).
    """
    n = len(user_codes)
    if n == 0:
        return []
    # Number of positive rows strictly before each position (over all users).
    pos_before = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(positive, out=pos_before[1:])
    idx = np.arange(n)
    # First position of each user's block and of each (user, timestamp) tie block.
    new_user = np.r_[True, user_codes[1:] != user_codes[:-1]]
    new_tie = new_user | np.r_[True, timestamps[1:] != timestamps[:-1]]
    user_first = np.maximum.accumulate(np.where(new_user, idx, 0))
    tie_first = np.maximum.accumulate(np.where(new_tie, idx, 0))
    stop = pos_before[tie_first]
    start = pos_before[user_first]
    if maxlen is not None:
        start = np.maximum(start, stop - maxlen)
    positive_items = items[positive].tolist()
    return [positive_items[a:b] for a, b in zip(start.tolist(), stop.tolist(), strict=True)]


def load_movielens(
    *,
    split: str = "train",
    history_maxlen: int | None = 50,
    test_fraction: float = 0.2,
    return_X_y: bool = False,
) -> Bunch | tuple[pd.DataFrame, pd.Series]:
    """Load MovieLens "latest small" (100,836 ratings) as a binary CTR task with histories.

    Ratings are joined to the movies' genres and labelled 1 when ``rating >= 4`` (48.2% of
    rows). All ratings are sorted by time; the last ``test_fraction`` of them form the test
    split. Each row carries the user's behaviour history: the movies the same user rated 4 or
    more *strictly earlier* (ties in timestamp excluded), computed over the whole timeline,
    so test rows see train-time history but no row sees its own or a later rating.

    Parameters
    ----------
    split : {"train", "test", "all"}, default="train"
        Which part to load. ``"all"`` is train followed by test, i.e. all rows in time order.
    history_maxlen : int or None, default=50
        Keep at most this many of the most recent items in ``hist_movieId``. None keeps all.
    test_fraction : float, default=0.2
        Fraction of the ratings, the latest by timestamp, that form the test split; strictly
        between 0 and 1. The test size is ``ceil(test_fraction * n_ratings)``.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : pandas.DataFrame
            Rows in time order (stable for equal timestamps), with columns

            - ``userId``, ``movieId``: ids with the ``"str"`` dtype;
            - ``genres``: a list of genre names (str) per row; ``[]`` for
              ``"(no genres listed)"``;
            - ``hist_movieId``: a list of movieIds (str) per row, most recent last.
        target : pandas.Series
            The ``int64`` label named ``"label"``: 1 when ``rating >= 4``.
        frame : pandas.DataFrame
            ``data`` and ``target`` side by side.
        feature_names, target_names : list of str
            Column names of ``data`` and of the target.
        sparse_features : list of str
            ``["userId", "movieId"]``.
        dense_features : list of str
            ``[]``.
        sequence_features : list of str
            ``["genres", "hist_movieId"]``.
        DESCR : str
            Provenance, terms, schema and checksums; see also the bundled ``README.txt``,
            the GroupLens licence, which applies to this data.

    (data, target) : tuple of (pandas.DataFrame, pandas.Series)
        Returned instead when ``return_X_y`` is True.

    Raises
    ------
    ValueError
        If ``split``, ``history_maxlen`` or ``test_fraction`` is not valid.

    Notes
    -----
    The data is for research use under the GroupLens licence (cite Harper & Konstan, 2015,
    ACM TiiS 5(4):19); commercial use needs GroupLens' permission.

    Examples
    --------
    >>> from skctr.datasets import load_movielens
    >>> bunch = load_movielens(split="all")
    >>> bunch.data.shape
    (100836, 4)
    """
    split = _check_split(split, _TRAIN_TEST)
    if history_maxlen is not None and (
        isinstance(history_maxlen, bool)
        or not isinstance(history_maxlen, Integral)
        or history_maxlen < 1
    ):
        raise ValueError(
            f"The 'history_maxlen' parameter must be an int >= 1 or None; got {history_maxlen!r}."
        )
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, Real)
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise ValueError(
            "The 'test_fraction' parameter must be a float strictly between 0 and 1; "
            f"got {test_fraction!r}."
        )

    ratings = _read_csv(
        "ml-latest-small",
        "ratings.csv",
        dtype={"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"},
    )
    movies = _read_csv(
        "ml-latest-small",
        "movies.csv",
        usecols=["movieId", "genres"],
        dtype={"movieId": "int64", "genres": "str"},
        **_CSV_NA,
    )

    # Sort by user then time (stable, so file order breaks ties) to build the histories.
    by_user = np.lexsort((ratings["timestamp"].to_numpy(), ratings["userId"].to_numpy()))
    users = ratings["userId"].to_numpy()[by_user]
    times = ratings["timestamp"].to_numpy()[by_user]
    positive = ratings["rating"].to_numpy()[by_user] >= 4.0
    movie_str = ratings["movieId"].astype("str").to_numpy(dtype=object)
    hist = np.empty(len(ratings), dtype=object)
    hist[by_user] = _histories(users, times, positive, movie_str[by_user], history_maxlen)

    # Genres: one list per movie, looked up (and copied, so rows do not share lists) per row.
    movie_genres = dict(
        zip(
            movies["movieId"].tolist(),
            _to_lists(movies["genres"], "|", empty=["(no genres listed)"]),
            strict=True,
        )
    )
    try:
        genres = [list(movie_genres[m]) for m in ratings["movieId"].tolist()]
    except KeyError as exc:  # pragma: no cover - the bundled files are consistent
        raise ValueError(
            f"ratings.csv refers to movieId {exc.args[0]} missing in movies.csv"
        ) from exc

    frame = pd.DataFrame(
        {
            "userId": ratings["userId"].astype("str"),
            "movieId": pd.Series(movie_str, dtype="str"),
            "genres": pd.Series(genres, dtype=object),
            "hist_movieId": pd.Series(hist, dtype=object),
            "label": (ratings["rating"] >= 4.0).astype("int64"),
        }
    )

    # Temporal split over all ratings: stable sort by timestamp, latest test_fraction is test.
    order = np.argsort(ratings["timestamp"].to_numpy(), kind="stable")
    n_test = int(np.ceil(float(test_fraction) * len(order)))
    n_train = len(order) - n_test
    rows = {"train": order[:n_train], "test": order[n_train:], "all": order}[split]
    frame = frame.iloc[rows].reset_index(drop=True)

    return _bunch(
        frame,
        target="label",
        sparse=["userId", "movieId"],
        dense=[],
        sequence=["genres", "hist_movieId"],
        descr=_read_text("ml-latest-small", "PROVENANCE.md"),
        return_X_y=return_X_y,
    )


def load_taobao_tiny(
    split: str = "train", *, return_X_y: bool = False
) -> Bunch | tuple[pd.DataFrame, pd.Series]:
    """Load a 100-row Taobao display-ad sample with user click sequences.

    This is FuxiCTR's ``tiny_csv`` sample of the Alimama "Ad Display/Click Data on
    Taobao.com" set, for smoke tests of DIN-style sequence inputs: each split has only 100
    rows and 4 clicks, far too few to benchmark. ``time_stamp`` (one date for all rows) is
    dropped.

    Parameters
    ----------
    split : {"train", "test", "all"}, default="train"
        Which part to load. ``"all"`` concatenates train and test in that order.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : pandas.DataFrame
            The id-like columns (``userid``, ``adgroup_id``, ``pid``, ``cate_id``,
            ``campaign_id``, ``customer``, ``brand`` and the user-profile codes) with the
            ``"str"`` dtype (missing stays missing), ``price`` as ``float64`` and
            ``click_sequence`` as a list of item ids (str) per row, ``[]`` when empty.
        target : pandas.Series
            The ``int64`` click label named ``"clk"``.
        frame : pandas.DataFrame
            ``data`` and ``target`` side by side.
        feature_names, target_names : list of str
            Column names of ``data`` and of the target.
        sparse_features, dense_features, sequence_features : list of str
            The id-like columns, ``["price"]`` and ``["click_sequence"]``.
        DESCR : str
            Provenance, terms, schema and checksums of the bundled files.

    (data, target) : tuple of (pandas.DataFrame, pandas.Series)
        Returned instead when ``return_X_y`` is True.

    Raises
    ------
    ValueError
        If ``split`` is not one of the allowed values.

    Examples
    --------
    >>> from skctr.datasets import load_taobao_tiny
    >>> bunch = load_taobao_tiny()
    >>> bunch.sequence_features
    ['click_sequence']
    """
    split = _check_split(split, _TRAIN_TEST)
    dtype = {"clk": "int64", "price": "float64", "click_sequence": "str"}
    dtype.update(dict.fromkeys(_TAOBAO_ID_COLUMNS, "str"))
    parts = []
    for part in ("train", "test") if split == "all" else (split,):
        df = _read_csv("taobao_ad_tiny", f"{part}_sample.csv", dtype=dtype, **_CSV_NA)
        parts.append(df.drop(columns=["time_stamp"]))
    frame = _concat(parts)
    frame["click_sequence"] = pd.Series(
        _to_lists(frame["click_sequence"], "^"), index=frame.index, dtype=object
    )
    sparse = [c for c in frame.columns if c in _TAOBAO_ID_COLUMNS]
    return _bunch(
        frame,
        target="clk",
        sparse=sparse,
        dense=["price"],
        sequence=["click_sequence"],
        descr=_read_text("taobao_ad_tiny", "PROVENANCE.md"),
        return_X_y=return_X_y,
    )
