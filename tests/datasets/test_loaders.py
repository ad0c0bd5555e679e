"""Tests of the bundled real datasets and their loaders."""

from __future__ import annotations

import fnmatch
import hashlib
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
from sklearn.utils import Bunch

from skctr.datasets import load_avazu_9k, load_criteo_8k, load_movielens, load_taobao_tiny

DATA = files("skctr.datasets") / "data"

# sha256 values copied from each folder's PROVENANCE.md.
SHA256 = {
    "criteo_8k/train.tsv": "2b0614035f6c931dc4ac2c1a1a26fa954f2b9231703f3a77bcdd53d9d9f29872",
    "criteo_8k/dev.tsv": "7ac8a164e43a9903be3d43e640bcd464cfa0d96d7a652ec8ef8a33fe97cac6b9",
    "criteo_8k/test.tsv": "3a7a78b694945482aede520e68300b0e2748603363072822cfbbb9f72d0dfd9a",
    "avazu_9k/train.csv": "49fb8cdcadfd9030a6fcb8cd97fe8205d94b84723ee8292e229d741ce1362e4f",
    "avazu_9k/dev.csv": "1dbd14ef356202a106766d175ab20dfa182838c8cf77e6b018dd18df05c7e757",
    "avazu_9k/test.csv": "9c81e37b0766fb1daa430706c0c8188046e6daf6a295ab667687d87dada32f35",
    "ml-latest-small/ratings.csv": (
        "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"
    ),
    "ml-latest-small/movies.csv": (
        "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07"
    ),
    "ml-latest-small/README.txt": (
        "e165937702ae1fac9237b6bd377f03d027f7ef97175d4a04a203e8b12d5516ea"
    ),
    "taobao_ad_tiny/train_sample.csv": (
        "5cd2f94d82b2bd62ff276c501f605d20cedf466de465ebb1358000eea73c443d"
    ),
    "taobao_ad_tiny/test_sample.csv": (
        "ff14b96587a0a50d847400fea86249fd92b3a375f0bced1d771c68f0e01dfb73"
    ),
}

# (rows, positives) per split, from the PROVENANCE.md tables.
CRITEO_COUNTS = {"train": (7200, 1549), "dev": (409, 93), "test": (391, 86)}
AVAZU_COUNTS = {"train": (8087, 1397), "dev": (480, 86), "test": (432, 80)}
TAOBAO_COUNTS = {"train": (100, 4), "test": (100, 4)}

LOADERS = [load_criteo_8k, load_avazu_9k, load_movielens, load_taobao_tiny]
BUNCH_KEYS = {
    "data",
    "target",
    "frame",
    "feature_names",
    "target_names",
    "sparse_features",
    "dense_features",
    "sequence_features",
    "DESCR",
}


def _bundled_files() -> list[str]:
    return sorted(
        f"{folder.name}/{f.name}"
        for folder in DATA.iterdir()
        if folder.is_dir()
        for f in folder.iterdir()
        if f.is_file()
    )


def _assert_str_column(col: pd.Series) -> None:
    assert pd.api.types.is_string_dtype(col.dtype), (col.name, col.dtype)
    assert not pd.api.types.is_numeric_dtype(col.dtype), (col.name, col.dtype)
    assert all(isinstance(v, str) for v in col.dropna()), col.name


def _assert_list_column(col: pd.Series) -> None:
    assert col.dtype == object, (col.name, col.dtype)
    assert all(isinstance(v, list) for v in col), col.name
    assert all(isinstance(item, str) for v in col for item in v), col.name


def _assert_roles_cover_features(bunch: Bunch) -> None:
    roles = bunch.sparse_features + bunch.dense_features + bunch.sequence_features
    assert sorted(roles) == sorted(bunch.data.columns)
    assert len(set(roles)) == len(roles)


@pytest.fixture(scope="module")
def movielens_all() -> Bunch:
    return load_movielens(split="all")


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    with (DATA / "ml-latest-small" / "ratings.csv").open("rb") as fh:
        return pd.read_csv(fh)


# -- bundled files ------------------------------------------------------------------------------


def test_bundled_files_are_exactly_the_expected_ones():
    provenance = [f"{d}/PROVENANCE.md" for d in sorted({k.split("/")[0] for k in SHA256})]
    assert _bundled_files() == sorted([*SHA256, *provenance])
    # MovieLens-1M terms forbid redistribution: its sample must never be bundled.
    assert not (DATA / "movielens_sample").is_dir()


@pytest.mark.parametrize("relpath", sorted(SHA256))
def test_bundled_file_sha256_matches_provenance(relpath):
    folder, name = relpath.split("/")
    content = (DATA / folder / name).read_bytes()
    assert hashlib.sha256(content).hexdigest() == SHA256[relpath]
    # The same value is written in the bundled PROVENANCE.md.
    assert SHA256[relpath] in (DATA / folder / "PROVENANCE.md").read_text(encoding="utf-8")


def test_bundled_files_match_package_data_pattern():
    # setup.cfg: [options.package_data] skctr.datasets = data/*/*
    for relpath in _bundled_files():
        assert fnmatch.fnmatch(f"data/{relpath}", "data/*/*")
        assert relpath.count("/") == 1


def test_skipped_files_are_noted_in_provenance():
    ml = (DATA / "ml-latest-small" / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "links.csv" in ml and "tags.csv" in ml and "left out" in ml
    taobao = (DATA / "taobao_ad_tiny" / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "valid_sample.csv" in taobao and "left out" in taobao


# -- common behaviour ---------------------------------------------------------------------------


@pytest.mark.parametrize("loader", LOADERS)
def test_bunch_and_return_X_y(loader):
    bunch = loader()
    assert isinstance(bunch, Bunch)
    assert set(bunch) == BUNCH_KEYS
    assert bunch.target.dtype == np.int64
    assert bunch.target.name == bunch.target_names[0]
    assert set(bunch.target.unique()) == {0, 1}
    assert list(bunch.frame.columns) == [*bunch.data.columns, bunch.target.name]
    assert bunch.feature_names == list(bunch.data.columns)
    assert bunch.DESCR.startswith("# ") and "sha256" in bunch.DESCR
    _assert_roles_cover_features(bunch)

    X, y = loader(return_X_y=True)
    pd.testing.assert_frame_equal(X, bunch.data)
    pd.testing.assert_series_equal(y, bunch.target)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("split", ["validation", "TRAIN", "", None, 0])
def test_bad_split_raises(loader, split):
    with pytest.raises(ValueError, match=r"'split'.*'train'.*'test'.*'all'"):
        loader(split=split)


@pytest.mark.parametrize("loader", [load_movielens, load_taobao_tiny])
def test_dev_split_not_offered_where_there_is_none(loader):
    with pytest.raises(ValueError, match="'split'"):
        loader(split="dev")


# -- criteo -------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", sorted(CRITEO_COUNTS))
def test_criteo_counts(split):
    X, y = load_criteo_8k(split, return_X_y=True)
    assert (len(X), int(y.sum())) == CRITEO_COUNTS[split]
    assert y.name == "label"


def test_criteo_columns_and_dtypes():
    bunch = load_criteo_8k("all")
    dense = [f"I{i}" for i in range(1, 14)]
    sparse = [f"C{i}" for i in range(1, 27)]
    assert list(bunch.data.columns) == dense + sparse
    assert bunch.dense_features == dense and bunch.sparse_features == sparse
    assert bunch.sequence_features == []
    assert (bunch.data[dense].dtypes == np.float64).all()
    for c in sparse:
        _assert_str_column(bunch.data[c])
    # Missing values are empty fields: NaN for counts, missing (not "") for categories.
    assert bunch.data["I12"].isna().any()
    assert bunch.data[sparse].isna().any().any()
    assert not (bunch.data[sparse] == "").any().any()
    # First line of train.tsv: 0 1 1 5 0 1382 4 15 2 181 1 2 <empty> 2 68fd1e64 ...
    first = bunch.data.iloc[0]
    assert first["I1"] == 1.0 and first["I5"] == 1382.0 and np.isnan(first["I12"])
    assert first["C1"] == "68fd1e64" and first["C26"] == "9727dd16"
    assert (bunch.data["I2"] < 0).any()  # raw counts can be negative


def test_criteo_all_is_concatenation():
    parts = [load_criteo_8k(s).frame for s in ("train", "dev", "test")]
    expected = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(load_criteo_8k("all").frame, expected)


# -- avazu --------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", sorted(AVAZU_COUNTS))
def test_avazu_counts(split):
    X, y = load_avazu_9k(split, return_X_y=True)
    assert (len(X), int(y.sum())) == AVAZU_COUNTS[split]
    assert y.name == "click"


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_avazu_columns_and_dtypes(split):
    bunch = load_avazu_9k(split)
    assert "id" not in bunch.data and "hour" not in bunch.data and "click" not in bunch.data
    assert bunch.data.shape[1] == 21
    assert bunch.sparse_features == list(bunch.data.columns)
    assert bunch.dense_features == [] and bunch.sequence_features == []
    for c in bunch.data.columns:
        _assert_str_column(bunch.data[c])
    # dev/test have no header: their first row must be data, read with train's names.
    assert bunch.data["C1"].iloc[0] == "1005"
    assert bunch.data["C14"].str.fullmatch(r"\d+").all()


def test_avazu_first_train_row():
    X = load_avazu_9k(return_X_y=True)[0]
    row = X.iloc[0]
    assert row["site_id"] == "1fbe01fe" and row["C14"] == "15704" and row["C20"] == "100084"
    assert row["banner_pos"] == "0" and row["device_type"] == "1"


def test_avazu_all_is_concatenation():
    parts = [load_avazu_9k(s).frame for s in ("train", "dev", "test")]
    expected = pd.concat(parts, ignore_index=True)
    got = load_avazu_9k("all").frame
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) == 8999


# -- movielens ----------------------------------------------------------------------------------


def test_movielens_counts(movielens_all):
    y = movielens_all.target
    assert len(y) == 100_836
    assert y.name == "label"
    assert round(float(y.mean()), 3) == 0.482
    train = load_movielens(split="train")
    test = load_movielens(split="test")
    assert len(test.data) == 20_168  # ceil(0.2 * 100,836)
    assert len(train.data) + len(test.data) == 100_836
    pd.testing.assert_frame_equal(
        pd.concat([train.frame, test.frame], ignore_index=True), movielens_all.frame
    )


def test_movielens_columns_and_dtypes(movielens_all):
    bunch = movielens_all
    assert list(bunch.data.columns) == ["userId", "movieId", "genres", "hist_movieId"]
    assert bunch.sparse_features == ["userId", "movieId"]
    assert bunch.sequence_features == ["genres", "hist_movieId"]
    assert bunch.dense_features == []
    for c in bunch.sparse_features:
        _assert_str_column(bunch.data[c])
        assert not bunch.data[c].isna().any()
    for c in bunch.sequence_features:
        _assert_list_column(bunch.data[c])
    assert bunch.data["userId"].nunique() == 610
    assert bunch.data["movieId"].nunique() == 9724
    assert "README.txt" in bunch.DESCR


def test_movielens_genres(movielens_all, ratings):
    data = movielens_all.data
    toy_story = data.loc[data["movieId"] == "1", "genres"].iloc[0]
    assert toy_story == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    lengths = data["genres"].map(len)
    assert lengths.max() == 10
    # 47 ratings are of movies with "(no genres listed)": they get an empty list.
    assert (lengths == 0).sum() == 47
    assert "(no genres listed)" not in {g for gs in data["genres"] for g in gs}
    assert len({g for gs in data["genres"] for g in gs}) == 19
    # Rows do not share one list object, so mutating one row cannot change another.
    same_movie = data.index[data["movieId"] == "1"][:2]
    assert data.at[same_movie[0], "genres"] is not data.at[same_movie[1], "genres"]


def test_movielens_temporal_split(ratings):
    train = load_movielens(split="train", test_fraction=0.3)
    test = load_movielens(split="test", test_fraction=0.3)
    assert len(test.data) == int(np.ceil(0.3 * len(ratings)))
    ts = ratings.set_index(["userId", "movieId"])["timestamp"]

    def times(bunch):
        keys = pd.MultiIndex.from_arrays(
            [bunch.data["userId"].astype(int), bunch.data["movieId"].astype(int)]
        )
        return ts.loc[keys].to_numpy()

    train_t, test_t = times(train), times(test)
    assert train_t.max() <= test_t.min()
    assert (np.diff(train_t) >= 0).all() and (np.diff(test_t) >= 0).all()
    # Labels follow the joined rows.
    rating = ratings.set_index(["userId", "movieId"])["rating"]
    keys = pd.MultiIndex.from_arrays(
        [test.data["userId"].astype(int), test.data["movieId"].astype(int)]
    )
    np.testing.assert_array_equal(test.target.to_numpy(), (rating.loc[keys] >= 4).astype(int))


def _brute_force_history(ratings, user, movie, maxlen):
    own = ratings[(ratings["userId"] == user) & (ratings["movieId"] == movie)]
    t = own["timestamp"].iloc[0]
    earlier = ratings[
        (ratings["userId"] == user) & (ratings["timestamp"] < t) & (ratings["rating"] >= 4)
    ].sort_values("timestamp", kind="stable")
    items = [str(m) for m in earlier["movieId"]]
    return items if maxlen is None else items[-maxlen:]


@pytest.mark.parametrize("maxlen", [50, 3, None])
def test_movielens_histories_by_brute_force(ratings, maxlen):
    data = load_movielens(split="all", history_maxlen=maxlen).data
    rng = np.random.default_rng(0)
    picks = set(rng.choice(len(data), size=40, replace=False).tolist())
    # Rows whose user has other positive ratings at the very same timestamp (ties excluded).
    pos = ratings[ratings["rating"] >= 4]
    tied = pos[pos.duplicated(["userId", "timestamp"], keep=False)].head(5)
    keys = set(zip(data["userId"], data["movieId"], strict=True))
    index = {k: i for i, k in enumerate(zip(data["userId"], data["movieId"], strict=True))}
    for u, m in zip(tied["userId"], tied["movieId"], strict=True):
        assert (str(u), str(m)) in keys
        picks.add(index[str(u), str(m)])
    # The longest histories, where truncation matters.
    picks.update(data["hist_movieId"].map(len).nlargest(3).index.tolist())
    # The first rating of the first user in time has no history.
    picks.add(0)
    for i in sorted(picks):
        user, movie = int(data["userId"].iat[i]), int(data["movieId"].iat[i])
        expected = _brute_force_history(ratings, user, movie, maxlen)
        assert data["hist_movieId"].iat[i] == expected, (i, user, movie)
    if maxlen is not None:
        assert data["hist_movieId"].map(len).max() == maxlen


def test_movielens_histories_exclude_ties_and_self(ratings, movielens_all):
    data = movielens_all.data
    ts = ratings.set_index(["userId", "movieId"])["timestamp"]
    hist = data["hist_movieId"]
    lengths = hist.map(len)
    assert lengths.iat[0] == 0
    assert lengths.max() == 50
    # No row's history holds its own movie or a movie rated at the same time or later.
    sample = data.sample(2000, random_state=1)
    for user, movie, items in zip(
        sample["userId"], sample["movieId"], sample["hist_movieId"], strict=True
    ):
        t = ts[int(user), int(movie)]
        assert movie not in items
        assert all(ts[int(user), int(m)] < t for m in items)
    # A row tied in time with a positive rating of the same user does not see it.
    pos = ratings[ratings["rating"] >= 4]
    tied = pos[pos.duplicated(["userId", "timestamp"], keep=False)]
    u, t = tied[["userId", "timestamp"]].iloc[0]
    group = tied[(tied["userId"] == u) & (tied["timestamp"] == t)]
    m1, m2 = (str(m) for m in group["movieId"].iloc[:2])
    for mine, other in [(m1, m2), (m2, m1)]:
        row = data[(data["userId"] == str(u)) & (data["movieId"] == mine)]
        assert other not in row["hist_movieId"].iat[0]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"history_maxlen": 0}, "history_maxlen"),
        ({"history_maxlen": 2.5}, "history_maxlen"),
        ({"history_maxlen": True}, "history_maxlen"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": "0.2"}, "test_fraction"),
    ],
)
def test_movielens_bad_parameters(kwargs, param):
    with pytest.raises(ValueError, match=f"'{param}'"):
        load_movielens(**kwargs)


# -- taobao -------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", sorted(TAOBAO_COUNTS))
def test_taobao_counts(split):
    X, y = load_taobao_tiny(split, return_X_y=True)
    assert (len(X), int(y.sum())) == TAOBAO_COUNTS[split]
    assert y.name == "clk"
    X_all, y_all = load_taobao_tiny("all", return_X_y=True)
    assert (len(X_all), int(y_all.sum())) == (200, 8)


def test_taobao_columns_and_dtypes():
    bunch = load_taobao_tiny()
    data = bunch.data
    assert "time_stamp" not in data and "clk" not in data
    assert bunch.dense_features == ["price"]
    assert bunch.sequence_features == ["click_sequence"]
    assert len(bunch.sparse_features) == 15
    assert data["price"].dtype == np.float64
    for c in bunch.sparse_features:
        _assert_str_column(data[c])
    assert data["pvalue_level"].isna().any()
    assert not (data[bunch.sparse_features] == "").any().any()
    _assert_list_column(data["click_sequence"])
    lengths = data["click_sequence"].map(len)
    assert (lengths == 0).sum() == 75
    assert lengths.max() <= 6
    first = data.iloc[0]
    assert first["userid"] == "874257" and first["pid"] == "430548_1007"
    assert first["click_sequence"] == ["170301", "573514"]
    assert first["price"] == 3.9
