"""Property-based tests: CTRFeatureTransformer on generated dirty frames.

Frames mix dtypes (int64, huge Python ints, floats with NaN and infinities, text with
unicode, empty strings and lone surrogates, mixed objects, booleans, sequences as lists or
delimited strings) and missing values. For every such frame and every combination of
parameters, fitting and transforming must not raise, and the output must be well formed
and must not depend on how the rows or columns are presented.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import skctr
from skctr import CTRFeatureTransformer
from skctr.preprocessing.schema import NUM_RESERVED, EncodedBatch
from tests.frames import as_stored

SETTINGS = settings(max_examples=40, deadline=None)

TEXT = st.one_of(
    st.text(max_size=4),
    st.sampled_from(["", " ", "é", "e\u0301", "🙂", "\ud800", "a|b", "None", "nan", "1"]),
)
INTS = st.one_of(st.integers(-5, 5), st.integers(-(2**63), 2**63 - 1))
HUGE_INTS = st.integers(-(2**70), 2**70)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-10, 10),
    st.sampled_from([0.0, -0.0, 1e300, -1e300, 5e-324]),
)
SCALARS = st.one_of(INTS, HUGE_INTS, FLOATS, TEXT, st.booleans())


def _maybe_none(values: st.SearchStrategy, n: int) -> st.SearchStrategy:
    return st.lists(st.one_of(values, st.none()), min_size=n, max_size=n)


@st.composite
def dirty_column(draw: st.DrawFn, n: int) -> pd.Series:
    kind = draw(st.sampled_from(["int", "huge_int", "float", "text", "mixed", "bool", "sequence"]))
    if kind == "int":
        values = draw(st.lists(INTS, min_size=n, max_size=n))
        return pd.Series(values, dtype=np.int64)
    if kind == "huge_int":
        return pd.Series(draw(_maybe_none(HUGE_INTS, n)), dtype=object)
    if kind == "float":
        return pd.Series(draw(_maybe_none(FLOATS, n)), dtype=np.float64)
    if kind == "text":
        dtype = draw(st.sampled_from([object, "str"]))
        values = draw(_maybe_none(TEXT, n))
        if dtype == "str":  # pandas' str dtype cannot hold lone surrogates with pyarrow
            values = [v.replace("\ud800", "?") if isinstance(v, str) else v for v in values]
        return pd.Series(values, dtype=dtype)
    if kind == "mixed":
        return pd.Series(draw(_maybe_none(SCALARS, n)), dtype=object)
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    item = draw(st.sampled_from([st.integers(0, 6), TEXT, st.one_of(INTS, TEXT)]))
    sequence = st.one_of(st.none(), st.lists(item, max_size=5))
    return pd.Series(draw(st.lists(sequence, min_size=n, max_size=n)), dtype=object)


@st.composite
def dirty_frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 25))
    n_cols = draw(st.integers(1, 4))
    names = draw(
        st.lists(
            st.sampled_from(["a", "b", "ü", "🙂 col", "x y", "0", "c"]),
            min_size=n_cols,
            max_size=n_cols,
            unique=True,
        )
    )
    frame = pd.DataFrame({name: draw(dirty_column(n)) for name in names})
    if draw(st.booleans()):
        # a delimited-string history of the first column shares its vocabulary
        history = st.one_of(st.none(), st.lists(TEXT, max_size=4).map("|".join))
        frame[f"hist_{names[0]}"] = as_stored(draw(st.lists(history, min_size=n, max_size=n)))
    return frame


PARAMS = st.fixed_dictionaries(
    {
        "min_frequency": st.integers(1, 3),
        "max_categories": st.one_of(st.none(), st.integers(1, 4)),
        "hash_buckets": st.one_of(st.none(), st.integers(1, 7)),
        "dense_scaling": st.sampled_from(["standard", "minmax", "none"]),
        "log_transform": st.booleans(),
        "n_bins": st.one_of(st.none(), st.integers(2, 4)),
        "missing_indicator": st.booleans(),
        "maxlen": st.integers(1, 4),
    }
)


def _assert_same(a: EncodedBatch, b: EncodedBatch) -> None:
    assert a.schema == b.schema
    np.testing.assert_array_equal(a.sparse, b.sparse)
    np.testing.assert_array_equal(a.dense, b.dense)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert len(a.sequences) == len(b.sequences)
    for x, y in zip(a.sequences, b.sequences, strict=True):
        np.testing.assert_array_equal(x, y)


def _assert_well_formed(out: EncodedBatch, n: int) -> None:
    schema = out.schema
    assert out.sparse.shape == (n, len(schema.sparse)) and out.sparse.dtype == np.int64
    for j, field in enumerate(schema.sparse):
        codes = out.sparse[:, j]
        assert ((codes >= 1) & (codes < field.vocab_size)).all(), field  # 0 pads sequences
    assert out.dense.shape == (n, len(schema.dense)) and out.dense.dtype == np.float32
    assert np.isfinite(out.dense).all()
    for j, field in enumerate(schema.sequence):
        codes, lengths = out.sequences[j], out.lengths[:, j]
        assert codes.shape == (n, field.maxlen) and codes.dtype == np.int64
        assert ((lengths >= 0) & (lengths <= field.maxlen)).all()
        filled = np.arange(field.maxlen) < lengths[:, None]
        assert (codes[~filled] == 0).all()  # padding after the items
        assert ((codes[filled] >= 1) & (codes[filled] < field.vocab_size)).all()
    for field in schema.sparse:
        assert field.vocab_size >= NUM_RESERVED


@SETTINGS
@given(frame=dirty_frames(), params=PARAMS)
def test_fit_transform_never_fails_and_transform_reproduces_it(frame, params):
    enc = CTRFeatureTransformer(**params)
    fitted = enc.fit_transform(frame)
    _assert_well_formed(fitted, len(frame))
    _assert_same(enc.transform(frame), fitted)
    # fit_transform counts categories from one factorisation, fit with value_counts: the
    # vocabularies (order included) and codes must not depend on which path built them
    apart = CTRFeatureTransformer(**params).fit(frame)
    _assert_same(apart.transform(frame), fitted)
    for name, vocab in enc._vocabs.items():
        if vocab.categories is not None:
            pd.testing.assert_index_equal(vocab.categories, apart._vocabs[name].categories)


@SETTINGS
@given(frame=dirty_frames(), params=PARAMS, data=st.data())
def test_a_row_is_encoded_alike_whatever_comes_with_it(frame, params, data):
    enc = CTRFeatureTransformer(**params).fit(frame)
    full = enc.transform(frame)
    rows = data.draw(st.lists(st.integers(0, len(frame) - 1), min_size=1, max_size=5))
    _assert_same(enc.transform(frame.iloc[rows]), full[np.array(rows)])
    # columns by name: any order, extra columns ignored
    shuffled = frame[list(reversed(frame.columns))].assign(unused_extra=1)
    _assert_same(enc.transform(shuffled), full)


@settings(max_examples=25, deadline=None)
@given(frame=dirty_frames(), params=PARAMS)
def test_save_and_load_reproduce_the_encoding(frame, params):
    enc = CTRFeatureTransformer(**params).fit(frame)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "enc.skctr")
        skctr.save(enc, path)
        loaded = skctr.load(path)
    _assert_same(loaded.transform(frame), enc.transform(frame))


@SETTINGS
@given(frame=dirty_frames(), params=PARAMS)
def test_the_value_by_value_lookup_of_few_rows_equals_the_vectorised_one(frame, params):
    from skctr.preprocessing import transformer

    enc = CTRFeatureTransformer(**params).fit(frame)
    saved = transformer._SCALAR_LOOKUP_ROWS
    try:
        transformer._SCALAR_LOOKUP_ROWS = 0  # get_indexer for every column
        vectorised = enc.transform(frame)
        transformer._SCALAR_LOOKUP_ROWS = 10**9  # one probe per value
        by_value = enc.transform(frame)
    finally:
        transformer._SCALAR_LOOKUP_ROWS = saved
    _assert_same(by_value, vectorised)
