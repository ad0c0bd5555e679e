"""CTRFeatureTransformer: vocabularies, OOV, missing values, dense scaling, sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skctr import CTRFeatureTransformer
from skctr.preprocessing.schema import MISSING, NUM_RESERVED, OOV, EncodedBatch
from skctr.preprocessing.transformer import DENSE_CLIP, infer_kind


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site": pd.Series(["a", "b", "a", "c", None, "a"], dtype="str"),
            "item_id": [10, 11, 10, 12, 13, 10],
            "price": [1.0, np.nan, 3.0, 5.0, np.inf, 2.0],
            "hist_item_id": [[10, 11], [], None, [12, 10, 11], [13], [10]],
            "tags": ["x|y", "", None, "y", "z|x|y", "x"],
        }
    )


def test_kinds_are_inferred_from_dtypes(frame):
    enc = CTRFeatureTransformer(sequence_features=None).fit(frame.drop(columns="tags"))
    assert enc.feature_kinds_ == {
        "site": "sparse",
        "item_id": "sparse",
        "price": "dense",
        "hist_item_id": "sequence",
    }
    assert infer_kind(pd.Series([True, False])) == "sparse"
    assert infer_kind(pd.Series(pd.Categorical(["a", "b"]))) == "sparse"
    assert infer_kind(pd.Series([1.5, 2.5], dtype=object)) == "dense"


def test_hist_column_shares_vocabulary_by_convention(frame):
    enc = CTRFeatureTransformer().fit(frame.drop(columns="tags"))
    (seq,) = enc.schema_.sequence
    assert seq.shares == "item_id"
    assert seq.vocab_size == enc.schema_.sparse[enc.schema_.sparse_index("item_id")].vocab_size
    out = enc.transform(frame.drop(columns="tags"))
    item_codes = out.sparse[:, enc.schema_.sparse_index("item_id")]
    # the history holds the same codes as the candidate column for the same ids
    assert out.sequences[0][0, 0] == item_codes[0]  # item 10
    assert out.sequences[0][3, 1] == item_codes[0]


def test_a_dict_mapping_a_history_to_none_gives_it_a_vocabulary_of_its_own(frame):
    data = frame.drop(columns="tags")
    kinds = {"sparse_features": ["item_id"]}
    own = CTRFeatureTransformer(**kinds, sequence_features={"hist_item_id": None}).fit(data)
    assert own.schema_.sequence[0].shares is None
    # the list form keeps the hist_<col> convention, and so does a dict naming the column
    for seq in (["hist_item_id"], {"hist_item_id": "item_id"}):
        enc = CTRFeatureTransformer(**kinds, sequence_features=seq).fit(data)
        assert enc.schema_.sequence[0].shares == "item_id"


def test_explicit_sharing_and_delimited_strings(frame):
    enc = CTRFeatureTransformer(
        sparse_features=["site"],
        sequence_features={"tags": None},
        maxlen=2,
        sequence_separator="|",
    ).fit(frame)
    out = enc.transform(frame)
    lengths = out.lengths[:, 0].tolist()
    assert lengths == [2, 0, 0, 1, 2, 1]  # "z|x|y" truncated to its last 2 items
    codes = out.sequences[0]
    vocab = enc._vocabs["tags"]
    x, y = (int(vocab.categories.get_loc(v)) + NUM_RESERVED for v in ("x", "y"))
    assert codes[4].tolist() == [x, y]  # the most recent items are kept, in order
    assert (codes[1] == 0).all()  # empty string -> empty sequence, all padding


def test_unseen_categories_map_to_oov_and_missing_to_its_own_code(frame):
    enc = CTRFeatureTransformer(sparse_features=["site"]).fit(frame[["site"]])
    new = pd.DataFrame({"site": pd.Series(["a", "zzz", None], dtype="str")})
    codes = enc.transform(new).sparse[:, 0]
    assert codes[0] >= NUM_RESERVED
    assert codes[1] == OOV
    assert codes[2] == MISSING


def test_missing_unseen_at_fit_maps_to_oov():
    enc = CTRFeatureTransformer(sparse_features=["c"]).fit(pd.DataFrame({"c": ["a", "b"]}))
    assert enc.transform(pd.DataFrame({"c": [None]})).sparse[0, 0] == OOV


def test_min_frequency_and_max_categories_fold_rare_values():
    X = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"]})
    enc = CTRFeatureTransformer(min_frequency=2).fit(X)
    assert enc.schema_.sparse[0].vocab_size == NUM_RESERVED + 3
    assert enc.transform(pd.DataFrame({"c": ["d"]})).sparse[0, 0] == OOV
    enc = CTRFeatureTransformer(max_categories=2).fit(X)
    codes = enc.transform(pd.DataFrame({"c": ["a", "b", "c"]})).sparse[:, 0]
    assert codes.tolist() == [NUM_RESERVED, NUM_RESERVED + 1, OOV]  # most frequent first


def test_hashing_keeps_the_table_at_its_size_and_is_deterministic():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"uid": rng.integers(0, 10**12, size=5000).astype(str)})
    enc = CTRFeatureTransformer(hash_buckets=64).fit(X)
    assert enc.schema_.sparse[0].vocab_size == NUM_RESERVED + 64
    codes = enc.transform(X).sparse[:, 0]
    assert codes.min() >= NUM_RESERVED and codes.max() < NUM_RESERVED + 64
    assert len(np.unique(codes)) > 50
    again = CTRFeatureTransformer(hash_buckets={"uid": 64}).fit(X.iloc[:10]).transform(X)
    np.testing.assert_array_equal(again.sparse[:, 0], codes)


def test_huge_integer_ids_stay_exact():
    ids = [2**53 + 1, 2**53 + 2, 2**63 + 5]
    X = pd.DataFrame({"id": pd.Series(ids, dtype=object)})
    enc = CTRFeatureTransformer(sparse_features=["id"]).fit(X)
    codes = enc.transform(X).sparse[:, 0]
    assert len(set(codes.tolist())) == 3 and codes.dtype == np.int64


def test_dense_standard_scaling_imputes_missing_and_infinite_with_the_mean(frame):
    enc = CTRFeatureTransformer(dense_features=["price"], log_transform=False).fit(frame)
    out = enc.transform(frame)
    finite = np.array([1.0, 3.0, 5.0, 2.0])
    expected = (frame["price"].to_numpy() - finite.mean()) / finite.std()
    expected[[1, 4]] = 0.0
    np.testing.assert_allclose(out.dense[:, 0], expected, rtol=1e-6)
    assert [f.name for f in enc.schema_.dense] == ["price", "price__missing"]
    assert out.dense[:, 1].tolist() == [0, 1, 0, 0, 1, 0]


def test_minmax_and_log_transform():
    X = pd.DataFrame({"v": [0.0, 9.0, 99.0]})
    out = CTRFeatureTransformer(dense_scaling="minmax", log_transform=True).fit_transform(X)
    np.testing.assert_allclose(out.dense[:, 0], [0.0, 0.5, 1.0], atol=1e-6)


def test_log_transform_auto_takes_the_log_of_heavy_tailed_columns_only():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "count": rng.geometric(0.01, size=2000).astype(float),  # heavy right tail
            "normal": rng.normal(5.0, 1.0, size=2000),
            "uniform": rng.uniform(0, 100, size=2000),
            "constant": np.full(2000, 3.0),
            "huge": rng.lognormal(0.0, 3.0, size=2000) * 1e290,  # would overflow a variance
        }
    )
    enc = CTRFeatureTransformer(dense_features=list(X.columns)).fit(X)
    assert enc.log_transformed_ == ["count", "huge"]
    out = enc.transform(X).dense
    logged = np.log1p(X["count"].to_numpy())
    expected = (logged - logged.mean()) / logged.std()
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-5, atol=1e-6)
    plain = X["uniform"].to_numpy()
    np.testing.assert_allclose(out[:, 2], (plain - plain.mean()) / plain.std(), atol=1e-5)
    assert np.isfinite(out).all()
    forced = CTRFeatureTransformer(dense_features=["normal"], log_transform=True).fit(X)
    assert forced.log_transformed_ == ["normal"]
    off = CTRFeatureTransformer(dense_features=["count"], log_transform=False).fit(X)
    assert off.log_transformed_ == []


def test_missing_indicator_is_on_by_default_for_columns_with_missing_values(frame):
    enc = CTRFeatureTransformer(dense_features=["price"]).fit(frame)
    assert [f.name for f in enc.schema_.dense] == ["price", "price__missing"]
    complete = frame.assign(price=np.arange(len(frame), dtype=float))
    enc = CTRFeatureTransformer(dense_features=["price"]).fit(complete)
    assert [f.name for f in enc.schema_.dense] == ["price"]


def test_discretisation_turns_dense_into_sparse_bins():
    X = pd.DataFrame({"v": np.arange(100, dtype=float)})
    enc = CTRFeatureTransformer(n_bins=4).fit(X)
    assert [f.name for f in enc.schema_.sparse] == ["v"] and not enc.schema_.dense
    codes = enc.transform(pd.DataFrame({"v": [0.0, 30.0, 60.0, 99.0, np.nan]})).sparse[:, 0]
    assert codes[:4].tolist() == [NUM_RESERVED + i for i in range(4)]
    assert codes[4] == OOV  # no missing value was seen during fit


def test_strings_in_a_dense_column_name_the_column(frame):
    enc = CTRFeatureTransformer(dense_features=["price"]).fit(frame)
    bad = frame.assign(price=["1.0", "cheap", "2", "3", "4", "5"])
    with pytest.raises(ValueError, match="'price'.*numbers.*'cheap'"):
        enc.transform(bad)


def test_missing_column_and_unknown_declared_column_are_named(frame):
    enc = CTRFeatureTransformer().fit(frame)
    with pytest.raises(ValueError, match=r"column\(s\) \['price', 'tags'\] seen during fit"):
        enc.transform(frame.drop(columns=["tags", "price"]))
    with pytest.raises(ValueError, match="'nope'"):
        CTRFeatureTransformer(sparse_features=["nope"]).fit(frame)


def test_a_column_cannot_have_two_kinds(frame):
    with pytest.raises(ValueError, match="'site'.*both"):
        CTRFeatureTransformer(sparse_features=["site"], dense_features=["site"]).fit(frame)


def test_duplicate_column_names_are_refused():
    X = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        CTRFeatureTransformer().fit(X)
    enc = CTRFeatureTransformer().fit(pd.DataFrame({"a": [1], "b": [2]}))
    with pytest.raises(ValueError, match=r"duplicate column names \['b'\]"):
        enc.transform(pd.DataFrame([[1, 2, 3]], columns=["a", "b", "b"]))


def test_columns_are_selected_by_name(frame):
    enc = CTRFeatureTransformer().fit(frame)
    expected = np.asarray(enc.transform(frame))
    shuffled = frame[["tags", "price", "site", "hist_item_id", "item_id"]]
    np.testing.assert_array_equal(np.asarray(enc.transform(shuffled)), expected)
    extra = shuffled.assign(unused=1.5, other="x")
    np.testing.assert_array_equal(np.asarray(enc.transform(extra)), expected)
    # columns not used at fit (explicit feature lists) are not required either
    only_site = CTRFeatureTransformer(sparse_features=["site"]).fit(frame)
    out = only_site.transform(frame[["site"]]).sparse
    np.testing.assert_array_equal(out, only_site.transform(frame).sparse)


def test_an_array_is_read_by_position(frame):
    X = frame[["site", "price"]]
    enc = CTRFeatureTransformer().fit(X)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        out = enc.transform(X.to_numpy())
    np.testing.assert_array_equal(np.asarray(out), np.asarray(enc.transform(X)))
    with pytest.raises(ValueError, match="X has 3 features"), pytest.warns(UserWarning):
        enc.transform(np.c_[X.to_numpy(), X.to_numpy()[:, :1]])


def test_transform_of_train_equals_fit_transform_and_names_match(frame):
    enc = CTRFeatureTransformer()
    a = np.asarray(enc.fit_transform(frame))
    b = np.asarray(enc.transform(frame))
    np.testing.assert_array_equal(a, b)
    assert len(enc.get_feature_names_out()) == a.shape[1]


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([None, None], dtype="str"),  # nothing but missing values: no categories
        pd.Series(["b", None, "a", "b", "a", "c"], dtype="str"),  # ties in first-seen order
        pd.Series([3, 1, 3, 2], dtype=np.int64),
        pd.Series([1, "1", 1.0, True, None, "x"], dtype=object),  # 1 == 1.0 == True
        pd.Series(pd.Categorical(["y", "x", None, "y"], categories=["z", "x", "y"])),
    ],
)
def test_fit_transform_codes_equal_fit_then_transform(column):
    # fit_transform counts a column from one factorisation, fit with value_counts
    frame = pd.DataFrame({"c": column})
    one_pass = CTRFeatureTransformer(sparse_features=["c"])
    two_pass = CTRFeatureTransformer(sparse_features=["c"]).fit(frame)
    together = one_pass.fit_transform(frame).sparse
    np.testing.assert_array_equal(together, two_pass.transform(frame).sparse)
    if column.isna().all():
        assert (together == MISSING).all()
    # the same vocabulary (order, dtype and name included), so new rows get the same codes
    pd.testing.assert_index_equal(
        one_pass._vocabs["c"].categories, two_pass._vocabs["c"].categories
    )
    assert one_pass._vocabs["c"].has_missing == two_pass._vocabs["c"].has_missing
    new = pd.DataFrame({"c": column.iloc[::-1].reset_index(drop=True)})
    np.testing.assert_array_equal(one_pass.transform(new).sparse, two_pass.transform(new).sparse)


def test_fit_transform_of_textual_histories_of_integer_ids_equals_fit_then_transform():
    # fit_transform converts the history items to numbers once, for counting and lookup
    frame = pd.DataFrame(
        {
            "item": pd.Series([12, 7, 12, 3], dtype=np.int64),
            "hist": ["12|7", None, "7|x|3|inf", "99|12"],
        }
    )
    kinds = {"sparse_features": ["item"], "sequence_features": {"hist": "item"}}
    together = CTRFeatureTransformer(**kinds).fit_transform(frame)
    apart = CTRFeatureTransformer(**kinds).fit(frame).transform(frame)
    np.testing.assert_array_equal(together.sequences[0], apart.sequences[0])
    np.testing.assert_array_equal(together.sparse, apart.sparse)
    assert (together.sequences[0][2, :3] > OOV).sum() == 2  # "x" and "inf" are no ids


def test_output_rows_can_be_indexed_and_concatenated(frame):
    out = CTRFeatureTransformer().fit_transform(frame)
    part = out[np.array([0, 2])]
    assert isinstance(part, EncodedBatch) and len(part) == 2
    both = EncodedBatch.concat([out[:3], out[3:]])
    np.testing.assert_array_equal(np.asarray(both), np.asarray(out))


def test_numpy_input_without_column_names():
    X = np.array([[1, 0.5], [2, 1.5], [1, 2.5]])
    enc = CTRFeatureTransformer().fit(X)
    assert enc.n_features_in_ == 2 and not hasattr(enc, "feature_names_in_")
    assert enc.transform(X).shape == (3, 2)


def test_integer_sequence_ids_given_as_text_share_an_integer_vocabulary():
    X = pd.DataFrame({"item_id": [1, 2, 3], "hist_item_id": ["1|2", "3", ""]})
    out = CTRFeatureTransformer().fit_transform(X)
    assert out.sequences[0][0, :2].tolist() == out.sparse[:2, 0].tolist()


def test_dense_missing_and_infinite_are_imputed_and_extremes_clipped():
    enc = CTRFeatureTransformer().fit(pd.DataFrame({"v": [1.0, 2.0, 3.0]}))
    raw = pd.Series([np.nan, None, np.inf, -np.inf, 1e300, -1e300, 2.0], dtype=object)
    out = enc.transform(pd.DataFrame({"v": raw})).dense[:, 0]
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out[:4], 0.0)  # the training mean, standardised
    assert out[4] == DENSE_CLIP and out[5] == -DENSE_CLIP and out[6] == 0.0


def test_dense_statistics_survive_values_near_the_float64_limit():
    X = pd.DataFrame({"v": [1e308, -1e308, 1.7e308, 0.0]})
    for scaling in ("standard", "minmax", "none"):
        out = CTRFeatureTransformer(dense_scaling=scaling).fit_transform(X).dense[:, 0]
        assert np.isfinite(out).all(), scaling
        if scaling != "minmax":  # a range beyond float64 leaves minmax with clipped values
            assert out[2] >= out[0] > out[3] >= out[1], scaling  # the order is kept


def test_a_categorical_column_that_is_all_missing():
    X = pd.DataFrame({"c": pd.Series([None, None, None], dtype=object), "d": ["a", "b", "a"]})
    enc = CTRFeatureTransformer().fit(X)
    assert enc.feature_kinds_["c"] == "sparse"
    assert enc.schema_.sparse[0].vocab_size == NUM_RESERVED  # only the reserved codes
    assert enc.transform(X).sparse[:, 0].tolist() == [MISSING] * 3
    assert enc.transform(X.assign(c=["x", None, "y"])).sparse[:, 0].tolist() == [
        OOV,
        MISSING,
        OOV,
    ]
    # a column that had values at fit and is all missing now
    all_missing = enc.transform(X.assign(d=pd.Series([None] * 3, dtype=object)))
    assert all_missing.sparse[:, 1].tolist() == [OOV] * 3  # no missing value at fit


def test_unicode_and_empty_strings_are_categories():
    values = ["", "é", "e\u0301", "🙂", "\ud800", "a b", " "]
    X = pd.DataFrame({"c": pd.Series(values, dtype=object)})
    for params in ({}, {"hash_buckets": 1000}):
        enc = CTRFeatureTransformer(**params).fit(X)
        codes = enc.transform(X).sparse[:, 0]
        assert len(set(codes.tolist())) == len(values), params  # "" is not missing
        assert (codes >= NUM_RESERVED).all()
        again = enc.transform(X.iloc[::-1]).sparse[::-1, 0]
        np.testing.assert_array_equal(again, codes)


def test_mixed_int_and_str_categories_stay_distinct():
    X = pd.DataFrame({"c": pd.Series([1, "1", "a", 2**70, 2], dtype=object)})
    enc = CTRFeatureTransformer().fit(X)
    codes = enc.transform(X).sparse[:, 0]
    assert len(set(codes.tolist())) == 5  # 1 and "1" are two categories
    new = pd.DataFrame({"c": pd.Series([2**70, "1", 1, "b", 3], dtype=object)})
    assert enc.transform(new).sparse[:, 0].tolist() == [codes[3], codes[1], codes[0], OOV, OOV]
    hashed = CTRFeatureTransformer(hash_buckets=10).fit(X).transform(X).sparse[:, 0]
    assert ((hashed >= NUM_RESERVED) & (hashed < NUM_RESERVED + 10)).all()
    # equal in Python, one category: 1, 1.0 and True; with a vocabulary or hashed
    same = pd.DataFrame({"c": pd.Series([1, 1.0, True, "1"], dtype=object)})
    for params in ({}, {"hash_buckets": 1 << 20}):
        codes = CTRFeatureTransformer(**params).fit(same).transform(same).sparse[:, 0]
        assert codes[0] == codes[1] == codes[2] != codes[3], params


@pytest.mark.parametrize("hash_buckets", [None, 1 << 20])
def test_huge_integer_ids_of_any_dtype(hash_buckets):
    big = [2**31 + 1, 2**40, 2**53 + 1, 2**53 + 2, 2**62]
    enc = CTRFeatureTransformer(hash_buckets=hash_buckets).fit(pd.DataFrame({"id": big}))
    codes = enc.transform(pd.DataFrame({"id": big})).sparse[:, 0]
    assert len(set(codes.tolist())) == len(big)
    # the same ids as Python ints in an object column, or beyond int64 next to them
    as_object = pd.Series([*big, 2**64 + 1, None], dtype=object)
    out = enc.transform(pd.DataFrame({"id": as_object})).sparse[:, 0]
    np.testing.assert_array_equal(out[:5], codes)
    assert out[6] == OOV  # missing, unseen at fit
    if hash_buckets is None:
        assert out[5] == OOV


def test_hashing_does_not_depend_on_the_dtype_the_ids_arrive_in():
    ids = pd.Series([3, 10**12, 2**53 + 1, 7])
    enc = CTRFeatureTransformer(hash_buckets=1 << 16).fit(pd.DataFrame({"id": ids}))
    expected = enc.transform(pd.DataFrame({"id": ids})).sparse[:, 0]
    drifted = [
        pd.Series([3.0, 1e12, np.nan, 7.0]),  # a missing value made it float64
        pd.Series([3, 10**12, 2**53 + 1, 7], dtype=object),
        pd.Series([3, 10**12, 2**53 + 1, 7], dtype="Int64"),
        pd.Series([3, 10**12, 2**53 + 1, 7], dtype="uint64"),
        pd.Series([3, 10**12, 2**53 + 1, 7], dtype="category"),
    ]
    for values in drifted:
        out = enc.transform(pd.DataFrame({"id": values})).sparse[:, 0]
        keep = values.notna().to_numpy()
        np.testing.assert_array_equal(out[keep], expected[keep], err_msg=str(values.dtype))


def test_id_columns_read_as_text_or_as_numbers_match_their_vocabulary():
    as_int = CTRFeatureTransformer().fit(pd.DataFrame({"id": [10, 11, 12]}))
    codes = as_int.transform(pd.DataFrame({"id": [10, 11, 12]})).sparse[:, 0]
    as_text = pd.DataFrame({"id": ["10", "11", "12"]})
    np.testing.assert_array_equal(as_int.transform(as_text).sparse[:, 0], codes)
    as_float = pd.DataFrame({"id": [10.0, 11.0, np.nan]})
    assert as_int.transform(as_float).sparse[:, 0].tolist() == [*codes[:2], OOV]
    garbage = pd.DataFrame({"id": ["abc", "", "12"]})
    assert as_int.transform(garbage).sparse[:, 0].tolist() == [OOV, OOV, codes[2]]
    text = CTRFeatureTransformer().fit(as_text)
    np.testing.assert_array_equal(
        text.transform(pd.DataFrame({"id": [10, 11, 12]})).sparse[:, 0],
        text.transform(as_text).sparse[:, 0],
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"hash_buckets": {"site": 0}}, "'hash_buckets'.*int >= 1.*0 for 'site'"),
        ({"hash_buckets": {"sitee": 8}}, "'hash_buckets'.*'sitee'.*applies to"),
        ({"hash_buckets": {"hist_item_id": 8}}, "shares the vocabulary of 'item_id'"),
        ({"maxlen": {"hist_item_id": -1}}, "'maxlen'.*int >= 1.*-1 for 'hist_item_id'"),
        ({"maxlen": {"site": 3}}, "'maxlen'.*'site'.*applies to the columns"),
        ({"maxlen": {"hist_item_id": 2.5}}, "'maxlen'.*2.5"),
        ({"min_frequency": 0}, "'min_frequency'"),
        ({"n_bins": 1}, "'n_bins'"),
        ({"dense_scaling": "log"}, "'dense_scaling'"),
    ],
)
def test_per_column_parameters_are_validated(frame, params, match):
    with pytest.raises(ValueError, match=match):
        CTRFeatureTransformer(**params).fit(frame.drop(columns="tags"))


def test_a_million_distinct_values_keep_the_table_at_its_configured_size():
    ids = pd.DataFrame({"uid": np.arange(1_000_000, dtype=np.int64) * 7919 + 2**40})
    hashed = CTRFeatureTransformer(hash_buckets=1000).fit(ids)
    assert hashed.schema_.sparse[0].vocab_size == NUM_RESERVED + 1000
    codes = hashed.transform(ids).sparse[:, 0]
    assert codes.min() >= NUM_RESERVED and codes.max() < NUM_RESERVED + 1000
    assert len(np.unique(codes)) == 1000  # a million ids spread over every bucket
    capped = CTRFeatureTransformer(max_categories=1000).fit(ids)
    assert capped.schema_.sparse[0].vocab_size == NUM_RESERVED + 1000
    assert capped.schema_.embedding_rows == NUM_RESERVED + 1000
    full = CTRFeatureTransformer().fit(ids)
    assert full.schema_.embedding_rows == NUM_RESERVED + 1_000_000


def test_a_bare_value_in_a_sequence_column_is_refused():
    X = pd.DataFrame({"hist": [["a", "b"], 5, None, "c|d"]})
    with pytest.raises(ValueError, match=r"Sequence column 'hist' must hold lists.*int 5"):
        CTRFeatureTransformer(sequence_features=["hist"]).fit(X)


def test_delimited_fast_path_equals_the_same_histories_given_as_lists():
    texts = ["3|1|4", "", None, "1||5", "9", np.nan, "ü|é|3"]
    lists = [["3", "1", "4"], [], None, ["1", "5"], ["9"], None, ["ü", "é", "3"]]
    fast = CTRFeatureTransformer(sequence_features=["h"], maxlen=4).fit(pd.DataFrame({"h": texts}))
    slow = CTRFeatureTransformer(sequence_features=["h"], maxlen=4).fit(pd.DataFrame({"h": lists}))
    a = fast.transform(pd.DataFrame({"h": texts}))
    b = slow.transform(pd.DataFrame({"h": lists}))
    np.testing.assert_array_equal(a.sequences[0], b.sequences[0])
    np.testing.assert_array_equal(a.lengths, b.lengths)
    np.testing.assert_array_equal(a.lengths[:, 0], [3, 0, 0, 2, 1, 0, 3])


def test_integer_text_histories_match_an_integer_vocabulary():
    frame = pd.DataFrame({"item": [5, 7, 2**40], "hist_item": ["5|7", "1.0|7", f"{2**40}|x"]})
    out = CTRFeatureTransformer().fit_transform(frame)
    item_codes = dict(zip(frame["item"], out.sparse[:, 0], strict=True))
    hist = out.sequences[0]
    assert hist[0, 0] == item_codes[5] and hist[0, 1] == item_codes[7]
    assert hist[1, 1] == item_codes[7]  # "1.0" is the number 1, unseen among the items
    assert hist[2, 0] == item_codes[2**40]


def test_log_transform_auto_decides_on_a_sample_of_long_columns():
    rng = np.random.default_rng(1)
    n = 350_000  # above the sample size: the decision looks at every 3rd value
    X = pd.DataFrame({"count": rng.lognormal(2.0, 1.5, n), "uniform": rng.uniform(0, 9, n)})
    enc = CTRFeatureTransformer(dense_features=["count", "uniform"]).fit(X)
    assert enc.log_transformed_ == ["count"]
    logged = np.log1p(X["count"].to_numpy())
    out = enc.transform(X.iloc[:5]).dense[:, 0]
    expected = (logged[:5] - logged.mean()) / logged.std()  # the full column's statistics
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_non_finite_and_fractional_history_items_of_an_integer_vocabulary_are_not_ids():
    X = pd.DataFrame({"a": [1, 2, 3], "hist_a": ["1|inf", "INF|2", "2.5|3"]})
    enc = CTRFeatureTransformer(sparse_features=["a"], sequence_features=["hist_a"]).fit(X)
    assert enc.schema_.sparse[0].vocab_size == NUM_RESERVED + 3  # 1, 2 and 3 only
    codes = enc.transform(X).sequences[0]
    assert (codes[:, :2] != 0).all() and codes[0, 1] == codes[1, 0]  # inf -> OOV both times
