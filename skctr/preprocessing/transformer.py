"""CTRFeatureTransformer: raw columns in, an :class:`EncodedBatch` out."""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._compat import Interval, StrOptions, validate_data
from .schema import (
    MISSING,
    NUM_RESERVED,
    OOV,
    DenseField,
    EncodedBatch,
    FeatureSchema,
    SequenceField,
    SparseField,
)

_KINDS = ("sparse", "dense", "sequence")

#: Bound on the magnitude of a scaled dense value. Finite but extreme inputs (``1e300``,
#: or a value millions of training standard deviations away) are clipped to it, so that
#: the float32 arithmetic of a model stays finite.
DENSE_CLIP = 1e6


def as_frame(X: Any, owner: str) -> pd.DataFrame:
    """Turn ``X`` into a DataFrame without changing any value.

    A DataFrame is returned as is. Anything else goes through :func:`numpy.asarray` and
    must be two-dimensional; its columns are named ``x0, x1, ...``.

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_samples, n_features)
        The input.
    owner : str
        Name of the estimator, for error messages.

    Returns
    -------
    DataFrame
        The same data, column by column.

    Raises
    ------
    ValueError
        If ``X`` is not two-dimensional, is complex, has no rows or no columns, or has
        duplicate column names.
    """
    if isinstance(X, pd.DataFrame):
        frame = X
    else:
        if hasattr(X, "toarray"):
            raise TypeError(
                f"{owner} does not accept sparse matrices: pass a DataFrame or a dense "
                "array (CTR columns are encoded by CTRFeatureTransformer itself)."
            )
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(
                f"{owner} expected a 2D array or a DataFrame, got {arr.ndim}D input of shape "
                f"{arr.shape}. Reshape your data with array.reshape(-1, 1) if it has a single "
                "feature or array.reshape(1, -1) if it contains a single sample."
            )
        frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])], copy=False)
    if frame.shape[1] == 0:
        raise ValueError(
            f"0 feature(s) (shape={frame.shape}) while a minimum of 1 is required by {owner}."
        )
    if frame.columns.duplicated().any():
        dups = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ValueError(
            f"{owner}: duplicate column names {dups}; columns are matched by name, so each "
            "name must be unique: rename or drop the duplicates."
        )
    for col, dtype in frame.dtypes.items():  # dtypes, not frame[col]: no Series built
        if pd.api.types.is_complex_dtype(dtype):
            raise ValueError(f"Complex data not supported: column {col!r} given to {owner}.")
    return frame


def _is_listlike(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def infer_kind(series: pd.Series) -> str:
    """The column kind inferred from a column's dtype.

    The rule: booleans, strings, categoricals and integers are ``"sparse"`` (integer
    columns in CTR logs are ids and codes far more often than quantities: declare
    count-like integer columns in ``dense_features``); floats are ``"dense"``; a column
    whose values are lists, tuples or arrays is a ``"sequence"``. An object column of
    numbers only is ``"dense"``.

    Parameters
    ----------
    series : Series
        The column.

    Returns
    -------
    {"sparse", "dense", "sequence"}
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "sparse"
    if pd.api.types.is_integer_dtype(dtype):
        return "sparse"
    if pd.api.types.is_float_dtype(dtype):
        return "dense"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "sparse"
    non_null = series.dropna()
    if len(non_null) == 0:
        return "sparse"
    if _is_listlike(non_null.iloc[0]):
        return "sequence"
    inferred = pd.api.types.infer_dtype(non_null, skipna=True)
    if inferred in ("floating", "mixed-integer-float", "decimal"):
        return "dense"
    return "sparse"


@dataclass
class _Vocabulary:
    """Codes of one vocabulary: categories ``3..`` in frequency order, or hash buckets."""

    categories: pd.Index | None
    hash_buckets: int | None
    has_missing: bool

    @property
    def size(self) -> int:
        n = self.hash_buckets if self.hash_buckets is not None else len(self.categories)
        return NUM_RESERVED + n

    def encode(self, values: pd.Series, numbers: pd.Series | None = None) -> np.ndarray:
        """Codes (int64) of ``values``; missing ones get the missing code (OOV if unseen).

        ``numbers``, when given, is ``_to_numbers(values)`` already computed (textual ids
        looked up in a numeric vocabulary are converted once per fit_transform).
        """
        missing = np.asarray(values.array.isna(), dtype=bool)  # no new Series
        if self.hash_buckets is not None:
            hashed = hash_values(values)
            codes = (hashed % np.uint64(self.hash_buckets)).astype(np.int64) + NUM_RESERVED
        else:
            codes = _lookup(self.categories, values, numbers)
        codes[missing] = MISSING if self.has_missing else OOV
        return codes

    def encode_factorized(self, positions: np.ndarray, uniques: pd.Index) -> np.ndarray:
        """Codes of a column given as :func:`pandas.factorize` gives it.

        ``positions`` index into the distinct values ``uniques`` (-1 where missing). Each
        distinct value is encoded once and the codes are gathered: the same codes as
        :meth:`encode` of the column, without hashing its rows a second time.
        """
        per_value = self.encode(pd.Series(uniques, copy=False))
        # the missing code last, where position -1 picks it
        table = np.append(per_value, MISSING if self.has_missing else OOV).astype(np.int64)
        return table[positions]


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _text(value: Any) -> str:
    """The text a non-integer value is hashed as (lone surrogates escaped, bytes decoded)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # e.g. a lone surrogate from a badly decoded log line
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _as_int64(value: Any) -> int | None:
    """``value`` as an int when it is an integer (or an integral float) within int64."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value) if _INT64_MIN <= value <= _INT64_MAX else None
    if isinstance(value, float | np.floating) and np.isfinite(value) and value == int(value):
        return int(value) if _INT64_MIN <= value <= _INT64_MAX else None
    return None


def hash_values(values: pd.Series) -> np.ndarray:
    """A stable 64-bit hash of each value, the same whatever the column's dtype.

    Integers within int64 (and floats holding integers, and booleans as 0/1) are hashed as
    int64, so an id column hashes alike whether it arrives as ``int64``, as ``float64``
    (after a missing value crept in) or as Python ints in an ``object`` column. Everything
    else is hashed as its text: strings as they are (lone surrogates escaped), other
    values through ``str`` (integers beyond int64 included). The hash is
    :func:`pandas.util.hash_array`'s, which does not depend on the process. Missing values
    get an arbitrary hash; callers give them their own code.

    Parameters
    ----------
    values : Series
        The values.

    Returns
    -------
    ndarray of shape (len(values),), dtype uint64
    """
    n = len(values)
    missing = values.isna().to_numpy()
    dtype = values.dtype
    kind = getattr(dtype, "kind", "O")
    if isinstance(dtype, pd.CategoricalDtype):
        per_category = hash_values(pd.Series(dtype.categories))
        return per_category[np.maximum(values.cat.codes.to_numpy(), 0)]
    if kind in "bi":
        return pd.util.hash_array(values.to_numpy(dtype=np.int64, na_value=0))
    inferred = pd.api.types.infer_dtype(values, skipna=True) if kind == "O" else None
    if inferred == "string" or (
        pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype)
    ):
        try:
            return pd.util.hash_array(values.to_numpy(dtype=object, na_value=None))
        except UnicodeEncodeError:
            pass  # lone surrogates: hashed value by value below
    elif kind in "uf":
        as_float = kind == "f"
        arr = values.to_numpy(
            dtype=np.float64 if as_float else np.uint64, na_value=np.nan if as_float else 0
        )
        with np.errstate(invalid="ignore"):
            fits = (
                (np.isfinite(arr) & (arr == np.floor(arr)) & (np.abs(arr) < 2.0**63))
                if as_float
                else arr <= np.uint64(_INT64_MAX)
            )
        fits |= missing
        out = np.empty(n, dtype=np.uint64)
        ints = np.where(fits & ~missing, arr, 0).astype(np.int64)
        out[fits] = pd.util.hash_array(ints[fits])
        if not fits.all():
            texts = [_text(v.item()) for v in arr[~fits]]
            out[~fits] = pd.util.hash_array(np.array(texts, dtype=object))
        return out
    items = values.to_numpy(dtype=object)
    out = np.empty(n, dtype=np.uint64)
    ints = np.zeros(n, dtype=np.int64)
    is_int = np.zeros(n, dtype=bool)
    texts = np.empty(n, dtype=object)
    for i, v in enumerate(items):
        if missing[i]:
            texts[i] = ""
            continue
        as_int = _as_int64(v)
        if as_int is None:
            texts[i] = _text(v)
        else:
            ints[i], is_int[i] = as_int, True
    out[is_int] = pd.util.hash_array(ints[is_int])
    out[~is_int] = pd.util.hash_array(texts[~is_int])
    return out


def _lookup(
    categories: pd.Index, values: pd.Series, numbers: pd.Series | None = None
) -> np.ndarray:
    """Positions of ``values`` in ``categories`` shifted past the reserved codes; OOV if absent.

    ``numbers`` is ``_to_numbers(values)`` if the caller has it already.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        per_category = _lookup(categories, pd.Series(values.cat.categories))
        cat_codes = values.cat.codes.to_numpy()
        return np.where(cat_codes >= 0, per_category[cat_codes], OOV).astype(np.int64)
    if pd.api.types.is_numeric_dtype(categories.dtype) and not pd.api.types.is_numeric_dtype(
        values.dtype
    ):
        # numeric vocabulary, textual values (e.g. "12|7" histories of integer item ids)
        numeric = numbers if numbers is not None else _to_numbers(values)
        if not numeric.isna().all() or values.isna().all():
            values = numeric
    elif isinstance(categories.dtype, pd.StringDtype) and pd.api.types.is_integer_dtype(
        values.dtype
    ):
        # textual vocabulary, integer values (ids read as text at fit, as numbers now)
        values = values.astype(str)
    if len(values) <= _SCALAR_LOOKUP_ROWS and values.dtype == categories.dtype:
        # a few rows (serving): one hash-table probe per value skips get_indexer's set-up,
        # which costs far more than the probes; same table, same dtype, same answers
        pos = np.array([_position(categories, v) for v in values.to_numpy()], dtype=np.int64)
    else:
        pos = categories.get_indexer(values)
    return np.where(pos >= 0, pos + NUM_RESERVED, OOV).astype(np.int64)


#: Up to this many rows, :func:`_lookup` probes the vocabulary value by value.
_SCALAR_LOOKUP_ROWS = 16


def _position(categories: pd.Index, value: Any) -> int:
    """Position of ``value`` in the unique ``categories``, or -1."""
    try:
        pos = categories.get_loc(value)
    except (KeyError, TypeError, pd.errors.InvalidIndexError):
        return -1
    return pos if isinstance(pos, int | np.integer) else -1


def _signed_log(values: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: a log for heavy tails that keeps 0 and the sign."""
    out = np.abs(values)
    np.log1p(out, out=out)
    return np.copysign(out, values, out=out)


#: The log-transform decision of a dense column looks at most this many of its values
#: (evenly spaced through the column): the sign of a skewness difference needs no more.
_SKEW_SAMPLE = 100_000


def _log_lowers_skewness(finite: np.ndarray) -> bool:
    """Whether the signed log makes the finite values of a column less skewed."""
    sample = finite[:: max(1, len(finite) // _SKEW_SAMPLE)]
    return abs(_skewness(_signed_log(sample))) < abs(_skewness(sample))


def _skewness(finite: np.ndarray) -> float:
    """Sample skewness of finite values (0 for fewer than 3 values or no spread).

    Skewness does not change with scale, so it is computed on the values divided by their
    largest magnitude: values near ``1e308`` do not overflow.
    """
    if len(finite) < 3:
        return 0.0
    top = float(np.max(np.abs(finite)))
    if top == 0.0:
        return 0.0
    centred = finite / top
    centred = centred - centred.mean()
    variance = float(np.mean(centred**2))
    if variance <= 1e-24:
        return 0.0
    return float(np.mean(centred**3)) / variance**1.5


def _location_scale(finite: np.ndarray, how: str) -> tuple[float, float, float]:
    """``(shift, scale, mean)`` of finite values, for ``(x - shift) / scale``.

    A mean or standard deviation that overflows float64 (values near ``1e308``) is
    computed again on the values divided by their largest magnitude. A spread that is zero
    or still not finite gives ``scale = 1``.
    """
    if len(finite) == 0:
        return 0.0, 1.0, 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        top = float(np.max(np.abs(finite)))
        mean = float(finite.mean())
        if not np.isfinite(mean):
            mean = float((finite / top).mean()) * top
        if how == "standard":
            shift, scale = mean, float(finite.std())
            if not np.isfinite(scale):
                scale = float((finite / top).std()) * top
        elif how == "minmax":
            shift, scale = float(finite.min()), float(finite.max() - finite.min())
        else:
            shift, scale = 0.0, 1.0
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return shift, scale, mean


def _fit_vocabulary(
    counts: pd.Series,
    has_missing: bool,
    *,
    min_frequency: int,
    max_categories: int | None,
    hash_buckets: int | None,
) -> _Vocabulary:
    if hash_buckets is not None:
        return _Vocabulary(None, hash_buckets, has_missing)
    # most frequent first; ties keep their order of first appearance (deterministic)
    order = np.argsort(-counts.to_numpy(), kind="stable")
    counts = counts.iloc[order]
    counts = counts[counts >= min_frequency]
    if max_categories is not None:
        counts = counts.iloc[:max_categories]
    return _Vocabulary(pd.Index(counts.index), None, has_missing)


def _split_sequences(series: pd.Series, separator: str, name: str) -> tuple[pd.Series, np.ndarray]:
    """Flatten a multi-valued column: (items with the row position as index, lengths)."""
    values = series.reset_index(drop=True)
    fast = _split_delimited(values, separator)
    if fast is not None:
        return fast
    if pd.api.types.is_string_dtype(values.dtype) or values.map(lambda v: isinstance(v, str)).any():
        as_text = values.map(lambda v: v if isinstance(v, str) else None)
        split = as_text.str.split(separator, regex=False)
        values = values.where(~values.map(lambda v: isinstance(v, str)), split)
    bad = values.map(lambda v: not (_is_listlike(v) or v is None or _is_na_scalar(v)))
    if bad.any():
        example = values[bad].iloc[0]
        raise ValueError(
            f"Sequence column {name!r} must hold lists, tuples, arrays or "
            f"{separator!r}-delimited strings (or None for empty); got {type(example).__name__} "
            f"{example!r}."
        )
    # flattened by hand: Series.explode infers the items' dtype, which pandas cannot always
    # store (see _item_series)
    parts = [v if _is_listlike(v) else () for v in values.to_numpy(dtype=object)]
    return _flattened(parts, _present_items)


def _present_items(items: np.ndarray) -> np.ndarray:
    """Which of the items (an object array) are neither missing nor empty strings."""
    keep = pd.notna(items)
    if any(isinstance(v, str) for v in items[keep]):
        keep &= np.array([v != "" for v in items], dtype=bool)
    return keep


def _split_delimited(values: pd.Series, separator: str) -> tuple[pd.Series, np.ndarray] | None:
    """The common case of :func:`_split_sequences`, fast: every value a string or missing.

    Returns None when some value is not a string (lists, arrays, numbers).
    """
    missing = values.isna().to_numpy()
    raw = values.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(raw[~missing], skipna=True) not in ("string", "empty"):
        return None
    parts = [v.split(separator) if v else [] for v in np.where(missing, "", raw)]
    return _flattened(parts, lambda items: items != "")


def _flattened(
    parts: list, keep: Callable[[np.ndarray], np.ndarray]
) -> tuple[pd.Series, np.ndarray]:
    """Every row's items (``parts``, one sized iterable per row) as one series indexed by
    the row, without the items ``keep`` rejects, and each row's count of those kept."""
    counts = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    items = np.fromiter(itertools.chain.from_iterable(parts), dtype=object, count=counts.sum())
    rows = np.repeat(np.arange(len(parts), dtype=np.int64), counts)
    kept = keep(items)
    items, rows = items[kept], rows[kept]
    return _item_series(items, rows), np.bincount(rows, minlength=len(parts)).astype(np.int64)


def _item_series(items: np.ndarray, rows: np.ndarray) -> pd.Series:
    """The items of sequences (an object array) indexed by their rows, in the dtype pandas
    infers for them, or as an object column where pandas cannot store that dtype: with
    pyarrow installed its ``str`` dtype keeps text as UTF-8, which has no lone surrogates
    (``"\\ud800"``)."""
    try:
        return pd.Series(items, index=rows).infer_objects()
    except UnicodeEncodeError:
        return pd.Series(items, index=rows, dtype=object)


def _to_numbers(values: pd.Series) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")``, fast for text that holds integers."""
    try:
        exact = values.to_numpy(dtype=object).astype(np.int64)
    except (ValueError, TypeError, OverflowError):
        return pd.to_numeric(values, errors="coerce")
    return pd.Series(exact, index=values.index)


def _is_na_scalar(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _pad_sequences(codes: np.ndarray, rows: np.ndarray, lengths: np.ndarray, maxlen: int):
    """Right-padded (n, maxlen) codes keeping each row's last ``maxlen`` items."""
    n = len(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(len(rows)) - starts[rows]
    drop = np.maximum(lengths - maxlen, 0)
    keep = pos >= drop[rows]
    out = np.zeros((n, maxlen), dtype=np.int64)
    out[rows[keep], (pos - drop[rows])[keep]] = codes[keep]
    return out, np.minimum(lengths, maxlen)


class CTRFeatureTransformer(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Encode raw sparse, dense and sequence columns for CTR models.

    Sparse (categorical) columns get a vocabulary fitted on the training rows, with reserved
    codes for padding, out-of-vocabulary and missing values, so categories unseen at fit
    time are encoded rather than rejected. Dense (numerical) columns are imputed and scaled,
    or discretised into quantile bins that become sparse fields. Sequence (multi-valued)
    columns, such as a user's behaviour history, become right-padded code arrays with their
    lengths; a sequence may share the vocabulary of a sparse column (``hist_item_id`` shares
    ``item_id``'s), so both look up the same embedding rows in a model.

    Parameters
    ----------
    sparse_features : list of str, default=None
        Categorical columns.
    dense_features : list of str, default=None
        Numerical columns.
    sequence_features : list of str or dict of str to (str or None), default=None
        Multi-valued columns. A dict maps each sequence column to the sparse column whose
        vocabulary it shares, or to None for a vocabulary of its own. In a list, a column
        ``hist_<col>`` shares ``<col>``'s vocabulary when ``<col>`` is a sparse column.
        When all three of ``sparse_features``, ``dense_features`` and ``sequence_features``
        are None, every column's kind is inferred from its dtype (see :func:`infer_kind`:
        bool, string, categorical and integer columns are sparse, float columns dense,
        columns of lists sequences, and so is a column ``hist_<col>`` of delimited strings
        when ``<col>`` is a column too). When any of them is given, exactly the listed columns
        are used and the others are ignored.
    min_frequency : int, default=1
        Categories seen fewer times than this in the training rows are folded into the
        out-of-vocabulary code.
    max_categories : int, default=None
        Keep at most this many of the most frequent categories per vocabulary.
    hash_buckets : int or dict of str to int, default=None
        Hash instead of building a vocabulary, into this many buckets: an int applies to
        every sparse and sequence vocabulary, a dict to the columns it names. Use it for
        huge cardinalities; the table size stays fixed whatever the data.
    dense_scaling : {"standard", "minmax", "none"}, default="standard"
        Scaling of dense columns, fitted on the finite training values.
    log_transform : bool or "auto", default="auto"
        Apply ``sign(x) * log1p(|x|)`` to dense values before scaling, which turns
        heavy-tailed counts (such as Criteo's integer features) into values a linear layer
        can use. ``"auto"`` decides per column: the transform is applied when it lowers the
        absolute skewness of the column's finite training values (see
        ``log_transformed_`` for the outcome). ``True`` and ``False`` apply it to every
        dense column or to none.
    n_bins : int, default=None
        When set, dense columns are discretised into at most this many quantile bins and
        become sparse fields instead of dense ones.
    missing_indicator : bool, default=True
        Add a 0/1 dense field ``<col>__missing`` for each dense column that had missing
        values during fit (in click logs a missing value is often informative: mean
        imputation alone would hide it). Missing and infinite dense values are always
        imputed with the training mean; finite values are clipped to
        ``[-DENSE_CLIP, DENSE_CLIP]`` (1e6) after scaling.
    maxlen : int or dict of str to int, default=50
        Maximum sequence length; longer sequences keep their most recent (last) items.
    sequence_separator : str, default="|"
        Separator of sequences given as delimited strings.

    Attributes
    ----------
    schema_ : FeatureSchema
        The fields produced, with vocabulary sizes.
    feature_kinds_ : dict of str to str
        The kind (sparse, dense or sequence) of each input column that is used.
    log_transformed_ : list of str
        The dense columns whose values are log-transformed (see ``log_transform``).
    n_features_in_ : int
        Number of input columns seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Input column names, when fitted on a DataFrame with string column names.

    See Also
    --------
    skctr.DeepFMClassifier : A model that consumes this transformer's output.

    Examples
    --------
    >>> import pandas as pd
    >>> from skctr import CTRFeatureTransformer
    >>> X = pd.DataFrame({"site": ["a", "b", "a"], "price": [1.0, None, 3.0],
    ...                   "hist_site": [["a"], [], ["b", "a"]]})
    >>> enc = CTRFeatureTransformer().fit(X)
    >>> [f.name for f in enc.schema_.sparse], enc.schema_.sequence[0].shares
    (['site'], 'site')
    >>> enc.transform(X).sparse.ravel().tolist()
    [3, 4, 3]
    """

    _parameter_constraints: ClassVar[dict] = {
        "sparse_features": [list, tuple, None],
        "dense_features": [list, tuple, None],
        "sequence_features": [list, tuple, dict, None],
        "min_frequency": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_categories": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "hash_buckets": [Interval(numbers.Integral, 1, None, closed="left"), dict, None],
        "dense_scaling": [StrOptions({"standard", "minmax", "none"})],
        "log_transform": ["boolean", StrOptions({"auto"})],
        "n_bins": [Interval(numbers.Integral, 2, None, closed="left"), None],
        "missing_indicator": ["boolean"],
        "maxlen": [Interval(numbers.Integral, 1, None, closed="left"), dict],
        "sequence_separator": [str],
    }

    def __init__(
        self,
        sparse_features: list[str] | None = None,
        dense_features: list[str] | None = None,
        sequence_features: list[str] | dict[str, str | None] | None = None,
        *,
        min_frequency: int = 1,
        max_categories: int | None = None,
        hash_buckets: int | dict[str, int] | None = None,
        dense_scaling: str = "standard",
        log_transform: bool | str = "auto",
        n_bins: int | None = None,
        missing_indicator: bool = True,
        maxlen: int | dict[str, int] = 50,
        sequence_separator: str = "|",
    ) -> None:
        self.sparse_features = sparse_features
        self.dense_features = dense_features
        self.sequence_features = sequence_features
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.hash_buckets = hash_buckets
        self.dense_scaling = dense_scaling
        self.log_transform = log_transform
        self.n_bins = n_bins
        self.missing_indicator = missing_indicator
        self.maxlen = maxlen
        self.sequence_separator = sequence_separator

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None) -> CTRFeatureTransformer:
        """Learn vocabularies, scaling and bins from the training rows.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Raw columns.
        y : None
            Ignored.

        Returns
        -------
        self : CTRFeatureTransformer
            The fitted transformer.
        """
        self._validate_params()
        frame = as_frame(X, type(self).__name__)
        if len(frame) == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={frame.shape}) while a minimum of 1 is "
                f"required by {type(self).__name__}."
            )
        validate_data(self, X, reset=True, skip_check_array=True)
        kinds, shares = self._resolve_kinds(frame)
        self._check_per_column_params(kinds, shares)
        self.feature_kinds_ = kinds
        self._fit_columns(frame, kinds, shares)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> EncodedBatch:
        """Fit on ``X`` and encode it, reading each column once.

        Each sequence and dense column is parsed once and each sparse column hashed once
        (factorised: its categories are counted and its codes gathered from one pass),
        where ``fit(X).transform(X)`` would repeat that work; the result is the same.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Raw columns.
        y : None
            Ignored.
        **fit_params : dict
            Ignored.

        Returns
        -------
        EncodedBatch
            What ``fit(X).transform(X)`` returns.
        """
        self._fit_cache: dict[tuple[str, str], Any] | None = {}
        try:
            return self.fit(X, y).transform(X)
        finally:
            self._fit_cache = None

    @property
    def _in_fit_transform(self) -> bool:
        return getattr(self, "_fit_cache", None) is not None

    def _remember(self, kind: str, name: str, value: Any) -> None:
        """Keep what fit computed from column ``name`` for the transform half of the
        current :meth:`fit_transform` call; nothing outside one."""
        if self._in_fit_transform:
            self._fit_cache[kind, name] = value

    def _recall(self, kind: str, name: str, *, pop: bool = False) -> Any:
        """What :meth:`_remember` kept under ``(kind, name)``, or None (``pop``: and forget
        it, for values used once)."""
        if not self._in_fit_transform:
            return None
        cache = self._fit_cache
        return cache.pop((kind, name), None) if pop else cache.get((kind, name))

    def _split(self, series: pd.Series, name: str) -> tuple[pd.Series, np.ndarray]:
        """:func:`_split_sequences`, remembered within one :meth:`fit_transform` call."""
        result = self._recall("split", name)
        if result is None:
            result = _split_sequences(series, self.sequence_separator, name)
            self._remember("split", name, result)
        return result

    def _resolve_kinds(self, frame: pd.DataFrame) -> tuple[dict[str, str], dict[str, str | None]]:
        columns = [str(c) for c in frame.columns]
        by_name = dict(zip(columns, frame.columns, strict=True))
        seq = self.sequence_features
        seq_shares: dict[str, str | None] = (
            dict(seq) if isinstance(seq, Mapping) else dict.fromkeys(seq or ())
        )
        explicit = {
            "sparse": list(self.sparse_features or ()),
            "dense": list(self.dense_features or ()),
            "sequence": list(seq_shares),
        }
        kinds: dict[str, str] = {}
        if self.sparse_features is None and self.dense_features is None and seq is None:
            for name in columns:
                kinds[name] = infer_kind(frame[by_name[name]])
                # a delimited-string history of another column: "hist_item_id" of "item_id"
                if kinds[name] == "sparse" and name.startswith("hist_") and name[5:] in by_name:
                    kinds[name] = "sequence"
        else:
            for kind, names in explicit.items():
                for name in names:
                    if name not in by_name:
                        raise ValueError(
                            f"CTRFeatureTransformer: column {name!r} listed in {kind}_features "
                            f"is not in X; X has columns {columns}."
                        )
                    if name in kinds:
                        raise ValueError(
                            f"CTRFeatureTransformer: column {name!r} is listed both in "
                            f"{kinds[name]}_features and in {kind}_features; give it one kind."
                        )
                    kinds[name] = kind
        sparse_cols = {c for c, k in kinds.items() if k == "sparse"}
        shares: dict[str, str | None] = {}
        for name, kind in kinds.items():
            if kind != "sequence":
                continue
            target = seq_shares.get(name)
            # a dict's explicit None means a vocabulary of its own; elsewhere hist_<col>
            # shares <col>'s
            declared = isinstance(seq, Mapping) and name in seq_shares
            if (
                target is None
                and not declared
                and name.startswith("hist_")
                and name[5:] in sparse_cols
            ):
                target = name[5:]
            if target is not None and target not in sparse_cols:
                raise ValueError(
                    f"CTRFeatureTransformer: sequence column {name!r} is declared to share the "
                    f"vocabulary of {target!r}, which is not a sparse column; sparse columns "
                    f"are {sorted(sparse_cols)}."
                )
            shares[name] = target
        self._columns = by_name
        return kinds, shares

    def _check_per_column_params(
        self, kinds: dict[str, str], shares: dict[str, str | None]
    ) -> None:
        """Refuse a dict ``hash_buckets`` or ``maxlen`` that names a column it cannot apply
        to (a misspelt key must not be silently ignored) or holds a value below 1."""
        own_vocab = [n for n, k in kinds.items() if k == "sparse"]
        own_vocab += [n for n, target in shares.items() if target is None]
        allowed = {"hash_buckets": own_vocab, "maxlen": list(shares)}
        for param, columns in allowed.items():
            value = getattr(self, param)
            if not isinstance(value, Mapping):
                continue
            where = f"The '{param}' parameter of {type(self).__name__}"
            for key, item in value.items():
                if key not in columns:
                    why = (
                        f"shares the vocabulary of {shares[key]!r}: hash that column instead"
                        if param == "hash_buckets" and shares.get(key)
                        else f"it applies to the columns {sorted(columns)}"
                    )
                    raise ValueError(f"{where} names the column {key!r}, but {why}.")
                if not isinstance(item, numbers.Integral) or isinstance(item, bool) or item < 1:
                    raise ValueError(
                        f"{where} must map each column to an int >= 1. Got {item!r} for "
                        f"{key!r} instead."
                    )

    def _param_for(self, param: Any, name: str, default: Any) -> Any:
        if isinstance(param, Mapping):
            return param.get(name, default)
        return param if param is not None else default

    def _fit_columns(
        self, frame: pd.DataFrame, kinds: dict[str, str], shares: dict[str, str | None]
    ) -> None:
        vocab_params = {
            "min_frequency": self.min_frequency,
            "max_categories": self.max_categories,
        }
        seq_items: dict[str, pd.Series] = {}
        for name, kind in kinds.items():
            if kind == "sequence":
                items, _ = self._split(frame[self._columns[name]], name)
                seq_items[name] = items

        self._vocabs: dict[str, _Vocabulary] = {}
        for name, kind in kinds.items():
            if kind != "sparse":
                continue
            col = frame[self._columns[name]]
            counts, has_missing = self._count_categories(col, name)
            for seq_name, target in shares.items():
                if target == name and len(seq_items[seq_name]):
                    extra = seq_items[seq_name]
                    if pd.api.types.is_numeric_dtype(col.dtype):
                        extra = _to_numbers(extra)
                        self._remember("numbers", seq_name, extra)  # transform looks them up
                        as_float = extra.to_numpy(dtype=np.float64, na_value=np.nan)
                        keep = np.isfinite(as_float)  # "inf" in a history is no id
                        if pd.api.types.is_integer_dtype(col.dtype):
                            keep &= as_float == np.floor(np.where(keep, as_float, 0.0))
                            extra = extra[keep].astype(col.dtype)
                        else:
                            extra = extra[keep]
                    counts = counts.add(extra.value_counts(sort=False), fill_value=0)
            self._vocabs[name] = _fit_vocabulary(
                counts,
                has_missing,
                hash_buckets=self._param_for(self.hash_buckets, name, None),
                **vocab_params,
            )
        for name, target in shares.items():
            if target is None:
                items = seq_items[name]
                self._vocabs[name] = _fit_vocabulary(
                    items.value_counts(sort=False),
                    False,
                    hash_buckets=self._param_for(self.hash_buckets, name, None),
                    **vocab_params,
                )

        self._dense_stats: dict[str, dict[str, Any]] = {}
        for name, kind in kinds.items():
            if kind == "dense":
                self._dense_stats[name] = self._fit_dense(frame[self._columns[name]], name)
        self.log_transformed_ = [n for n, st in self._dense_stats.items() if st["log"]]

        self._shares = shares
        self._maxlen = {n: int(self._param_for(self.maxlen, n, 50)) for n in shares}
        sparse = [SparseField(n, self._vocabs[n].size) for n, k in kinds.items() if k == "sparse"]
        dense: list[DenseField] = []
        for name, stats in self._dense_stats.items():
            if stats["edges"] is not None:
                sparse.append(SparseField(name, NUM_RESERVED + len(stats["edges"]) + 1))
            else:
                dense.append(DenseField(name))
        for name, stats in self._dense_stats.items():
            if stats["indicator"]:
                dense.append(DenseField(f"{name}__missing"))
        sequence = [
            SequenceField(
                name,
                self._vocabs[target or name].size,
                self._maxlen[name],
                target,
            )
            for name, target in shares.items()
        ]
        self.schema_ = FeatureSchema(tuple(sparse), tuple(dense), tuple(sequence))

    def _count_categories(self, col: pd.Series, name: str) -> tuple[pd.Series, bool]:
        """Count of each distinct non-missing value (in order of first appearance) and
        whether any value is missing.

        Within :meth:`fit_transform` the column is factorised once and :meth:`transform`
        gathers its codes from the factorisation: hashing the rows once, where counting and
        then looking the rows up would hash them twice (and test them for missing values
        three times).
        """
        if not self._in_fit_transform or isinstance(col.dtype, pd.CategoricalDtype):
            # a categorical's value_counts lists its categories in their own order
            return col.value_counts(dropna=True, sort=False), bool(col.isna().any())
        positions, uniques = pd.factorize(col, use_na_sentinel=True)
        if len(uniques) < 2**31 - 1:  # half the memory until transform has used them
            positions = positions.astype(np.int32)
        self._remember("factorized", name, (positions, uniques))
        counts = np.bincount(positions + 1, minlength=len(uniques) + 1)  # [0]: missing
        index = pd.Index(uniques, name=col.name)  # as value_counts names it
        return pd.Series(counts[1:], index=index), bool(counts[0])

    def _sparse_codes(self, col: pd.Series, name: str) -> np.ndarray:
        """Codes of a sparse column, from its factorisation when :meth:`fit` left one."""
        # used once: forget the positions as soon as the codes exist
        factorized = self._recall("factorized", name, pop=True)
        if factorized is not None:
            return self._vocabs[name].encode_factorized(*factorized)
        return self._vocabs[name].encode(col)

    def _numeric(self, series: pd.Series, name: str) -> np.ndarray:
        if pd.api.types.is_bool_dtype(series.dtype):
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiu":
            numeric = series  # already numbers: no pd.to_numeric
        else:
            numeric = self._to_numeric(series, name)
        values = np.array(numeric.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        values[~np.isfinite(values)] = np.nan
        return values

    @staticmethod
    def _to_numeric(series: pd.Series, name: str) -> pd.Series:
        """``pd.to_numeric`` of a dense column, with an error naming it."""
        try:
            return pd.to_numeric(series, errors="raise")
        except (ValueError, TypeError) as exc:
            bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            example = bad.iloc[0] if len(bad) else "?"
            raise ValueError(
                f"CTRFeatureTransformer: dense column {name!r} must hold numbers, got "
                f"{example!r} (dtype {series.dtype}). Declare it in sparse_features if it is "
                "categorical, or clean the values."
            ) from exc

    def _dense_values(self, series: pd.Series, name: str) -> np.ndarray:
        """A dense column as float64, non-finite values as NaN, log-transformed if fitted so
        (remembered from fit within one :meth:`fit_transform` call)."""
        remembered = self._recall("dense", name)
        if remembered is not None:
            return remembered
        values = self._numeric(series, name)
        # Files written before the per-column decision lack "log": the parameter decided.
        if self._dense_stats[name].get("log", self.log_transform is True):
            return _signed_log(values)
        return values

    def _fit_dense(self, series: pd.Series, name: str) -> dict[str, Any]:
        values = self._numeric(series, name)
        finite = values[~np.isnan(values)]
        if self.log_transform == "auto":
            # Quantile bins do not change under a monotone transform: no need to decide.
            log = self.n_bins is None and _log_lowers_skewness(finite)
        else:
            log = bool(self.log_transform)
        if log:
            values = _signed_log(values)  # NaN stays NaN
            finite = values[~np.isnan(values)]
        self._remember("dense", name, values)  # within fit_transform: transform reuses them
        stats: dict[str, Any] = {
            "edges": None,
            "log": bool(log),
            "indicator": bool(self.missing_indicator and len(finite) < len(values)),
        }
        if self.n_bins is not None:
            if len(finite):
                qs = np.quantile(finite, np.linspace(0, 1, self.n_bins + 1)[1:-1])
                stats["edges"] = np.unique(qs)
            else:
                stats["edges"] = np.zeros(0)
            stats["has_missing"] = len(finite) < len(values)
            return stats
        shift, scale, mean = _location_scale(finite, self.dense_scaling)
        fill = float(np.clip((mean - shift) / scale, -DENSE_CLIP, DENSE_CLIP))
        stats.update(shift=shift, scale=scale, fill=fill)
        return stats

    # ------------------------------------------------------------ transform
    def transform(self, X: Any) -> EncodedBatch:
        """Encode rows with the fitted vocabularies, scaling and bins.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Raw columns. A DataFrame (when the transformer was fitted on one) is read by
            column name: the columns may come in any order and columns unused during fit
            are ignored. An array is read by position and must have the columns of fit in
            their order.

        Returns
        -------
        EncodedBatch
            Codes, dense values and padded sequences with their schema.
        """
        check_is_fitted(self, "schema_")
        frame = as_frame(X, type(self).__name__)
        columns = self._input_columns(X, frame)
        n = len(frame)
        schema = self.schema_

        series: dict[str, pd.Series] = {}

        def column(name: str) -> pd.Series:
            if name not in series:
                if name not in columns:
                    raise ValueError(
                        f"CTRFeatureTransformer: column {name!r} seen during fit is missing from X."
                    )
                series[name] = frame[columns[name]]
            return series[name]

        numbers: dict[str, np.ndarray] = {}

        def parsed(name: str) -> np.ndarray:  # a dense column's values, parsed once
            if name not in numbers:
                numbers[name] = self._dense_values(column(name), name)
            return numbers[name]

        sparse = np.empty((n, len(schema.sparse)), dtype=np.int64)
        for j, f in enumerate(schema.sparse):
            if f.name in self._vocabs:
                sparse[:, j] = self._sparse_codes(column(f.name), f.name)
            else:
                sparse[:, j] = self._bin(parsed(f.name), f.name)
        dense = np.empty((n, len(schema.dense)), dtype=np.float32)
        j = 0
        missing = []  # one mask per dense column with an indicator, in order
        for name, stats in self._dense_stats.items():
            values = parsed(name)  # NaN where missing or not finite
            if stats["indicator"]:
                missing.append(np.isnan(values))
            if stats["edges"] is not None:
                continue  # binned: its codes are among the sparse fields
            with np.errstate(over="ignore"):
                values = (values - stats["shift"]) / stats["scale"]
            values = np.clip(values, -DENSE_CLIP, DENSE_CLIP)
            dense[:, j] = np.where(np.isnan(values), stats["fill"], values)
            j += 1
        for mask in missing:
            dense[:, j] = mask
            j += 1
        sequences = []
        lengths = np.empty((n, len(schema.sequence)), dtype=np.int64)
        for j, f in enumerate(schema.sequence):
            items, raw_lengths = self._split(column(f.name), f.name)
            seq_numbers = self._recall("numbers", f.name, pop=True)
            codes = self._vocabs[f.shares or f.name].encode(items, seq_numbers)
            padded, lengths[:, j] = _pad_sequences(
                codes, items.index.to_numpy(dtype=np.int64), raw_lengths, f.maxlen
            )
            sequences.append(padded)
        return EncodedBatch(schema, sparse, dense, tuple(sequences), lengths)

    def _input_columns(self, X: Any, frame: pd.DataFrame) -> dict[str, Any]:
        """Map each fitted column name to its label in ``frame``.

        A DataFrame whose column names are strings, given to a transformer fitted on one,
        is read by name: the order of its columns does not matter, columns not used during
        fit are ignored, and a used column that is absent raises an error naming it. Any
        other input (an array, a frame of unnamed or integer-named columns) is read by
        position and must have as many columns as during fit, as in scikit-learn.
        """
        by_name = isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_")
        if by_name and all(isinstance(c, str) for c in frame.columns):
            missing = [name for name in self.feature_kinds_ if name not in frame.columns]
            if missing:
                present = [str(c) for c in frame.columns]
                shown = present if len(present) <= 20 else [*present[:20], "..."]
                raise ValueError(
                    f"{type(self).__name__}: column(s) {missing} seen during fit are missing "
                    f"from X, which has columns {shown}. Columns are matched by name; "
                    "their order and any extra columns do not matter."
                )
            return {name: name for name in self.feature_kinds_}
        validate_data(self, X, reset=False, skip_check_array=True)
        return {name: frame.columns[i] for i, name in enumerate(self._columns)}

    def _bin(self, values: np.ndarray, name: str) -> np.ndarray:
        """Quantile-bin codes of a binned dense column's parsed ``values``."""
        stats = self._dense_stats[name]
        codes = np.searchsorted(stats["edges"], values, side="right") + NUM_RESERVED
        missing = np.isnan(values)
        codes[missing] = MISSING if stats["has_missing"] else OOV
        return codes.astype(np.int64)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the columns of the flat array view of the output.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Ignored; present for API consistency.

        Returns
        -------
        ndarray of str objects
            Sparse fields, then dense fields, then ``<sequence>[i]`` per padded position.
        """
        check_is_fitted(self, "schema_")
        return np.asarray(self.schema_.output_names(), dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.transformer_tags.preserves_dtype = []
        return tags
