"""skctr.save / skctr.load: exact round trips, and files that are refused."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import skctr
from skctr import CTRClassifier, CTRFeatureTransformer, DeepFMClassifier, LRClassifier
from skctr.io import FORMAT_VERSION, SkctrFormatError
from skctr.nn.embedding import FieldEmbedding

SMALL = {"embedding_dim": 4, "hidden_units": (8,), "max_epochs": 1, "random_state": 0}


def small(cls, **extra):
    """An instance of ``cls`` with the SMALL settings it accepts."""
    est = cls()
    names = est.get_params(deep=False)
    return est.set_params(**{k: v for k, v in {**SMALL, **extra}.items() if k in names})


def make_frame(n: int = 80, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 15, n)
    cates = np.array([f"c{i % 4}" for i in items], dtype=object)
    price = rng.normal(10, 3, n)
    price[rng.random(n) < 0.1] = np.nan
    hist_items = [rng.integers(0, 15, rng.integers(0, 6)).tolist() for _ in range(n)]
    X = pd.DataFrame(
        {
            "item_id": items,
            "cate_id": pd.Series(cates, dtype="str"),
            "price": price,
            "hist_item_id": hist_items,
            "hist_cate_id": [[f"c{i % 4}" for i in h] for h in hist_items],
        }
    )
    y = ((items % 3 == 0) ^ (rng.random(n) < 0.2)).astype(np.int64)
    return X, y


@pytest.fixture(scope="module")
def data():
    return make_frame()


@pytest.fixture(scope="module")
def saved_deepfm(data, tmp_path_factory):
    X, y = data
    clf = small(DeepFMClassifier, max_epochs=2).fit(X, y)
    path = tmp_path_factory.mktemp("io") / "deepfm.skctr"
    skctr.save(clf, path)
    return clf, path


def assert_same_batch(a, b):
    assert a.schema == b.schema
    np.testing.assert_array_equal(a.sparse, b.sparse)
    np.testing.assert_array_equal(a.dense, b.dense)
    assert len(a.sequences) == len(b.sequences)
    for s, t in zip(a.sequences, b.sequences, strict=True):
        np.testing.assert_array_equal(s, t)
    np.testing.assert_array_equal(a.lengths, b.lengths)


def assert_same_index(a: pd.Index, b: pd.Index):
    assert type(a) is type(b)
    assert a.dtype == b.dtype
    assert a.name == b.name
    assert a.equals(b)
    assert [type(v) for v in a.tolist()] == [type(v) for v in b.tolist()]


def rewrite(path: Path, out: Path, replace: dict[str, bytes], *, update_manifest=True) -> Path:
    """Copy the archive at ``path`` to ``out`` with members replaced."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members.update(replace)
    if update_manifest:
        manifest = json.loads(members["manifest.json"])
        for name, data in members.items():
            if name != "manifest.json":
                manifest["members"][name] = hashlib.sha256(data).hexdigest()
        members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out


def document(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("skctr.json"))


# ------------------------------------------------------------------------- round trips
def test_deepfm_round_trip_on_raw_frame(saved_deepfm, data):
    clf, path = saved_deepfm
    X, _ = data
    before = torch.get_rng_state()
    loaded = skctr.load(path)
    assert torch.equal(torch.get_rng_state(), before)  # building the core drew no numbers
    assert type(loaded) is DeepFMClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.get_params() == clf.get_params()
    assert isinstance(loaded.hidden_units, tuple)
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert loaded.history_ == clf.history_ and loaded.history_ is loaded._state.history
    assert loaded._state.epochs_done == clf._state.epochs_done == 2
    assert loaded._state.optimizers == []  # optimiser moments are not saved
    assert loaded._schema == clf._schema
    assert loaded.n_features_in_ == clf.n_features_in_
    np.testing.assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    assert loaded.features_.feature_kinds_ == clf.features_.feature_kinds_
    assert_same_batch(loaded.features_.transform(X), clf.features_.transform(X))
    for name, vocab in clf.features_._vocabs.items():
        assert_same_index(loaded.features_._vocabs[name].categories, vocab.categories)
    # training goes on after loading (with fresh optimisers)
    loaded.partial_fit(X, data[1])
    assert loaded._state.epochs_done == 3


def test_taobao_round_trip(tmp_path):
    from skctr.datasets import load_taobao_tiny

    X, y = load_taobao_tiny(return_X_y=True)
    clf = small(DeepFMClassifier).fit(X, y)
    skctr.save(clf, tmp_path / "taobao.skctr")
    loaded = skctr.load(tmp_path / "taobao.skctr")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_pipeline_round_trip(data, tmp_path):
    X, y = data
    pipe = Pipeline(
        [
            ("features", CTRFeatureTransformer(n_bins=4, missing_indicator=True)),
            ("clf", small(DeepFMClassifier)),
        ]
    ).fit(X, y)
    skctr.save(pipe, tmp_path / "pipe.skctr")
    loaded = skctr.load(tmp_path / "pipe.skctr")
    assert type(loaded) is Pipeline
    assert [name for name, _ in loaded.steps] == ["features", "clf"]
    assert isinstance(loaded.steps[0], tuple)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    edges = pipe[0]._dense_stats["price"]["edges"]
    np.testing.assert_array_equal(loaded[0]._dense_stats["price"]["edges"], edges)
    assert loaded[-1].features_ is None


def test_classifier_fitted_on_encoded_batch(data, tmp_path):
    X, y = data
    enc = CTRFeatureTransformer().fit(X)
    batch = enc.transform(X)
    clf = small(LRClassifier).fit(batch, y)
    skctr.save(clf, tmp_path / "lr.skctr")
    loaded = skctr.load(tmp_path / "lr.skctr")
    assert loaded.features_ is None
    # the schema check of predict passes: the restored schema equals the transformer's
    np.testing.assert_array_equal(loaded.predict_proba(batch), clf.predict_proba(batch))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"n_bins": 3, "missing_indicator": True, "dense_scaling": "minmax"},
        {"hash_buckets": {"cate_id": 7}, "min_frequency": 2, "maxlen": {"hist_item_id": 3}},
    ],
)
def test_transformer_alone(data, tmp_path, params):
    X, _ = data
    enc = CTRFeatureTransformer(**params).fit(X)
    skctr.save(enc, tmp_path / "enc.skctr")
    loaded = skctr.load(tmp_path / "enc.skctr")
    assert type(loaded) is CTRFeatureTransformer
    assert loaded.get_params() == enc.get_params()
    assert loaded.schema_ == enc.schema_
    assert loaded._columns == enc._columns
    assert_same_batch(loaded.transform(X), enc.transform(X))
    np.testing.assert_array_equal(loaded.get_feature_names_out(), enc.get_feature_names_out())


@pytest.mark.parametrize("frame", [False, True], ids=["array", "int-labels"])
def test_transformer_fitted_on_array(tmp_path, frame):
    X = np.array([[1, 2.5], [2, np.nan], [1, 0.5]], dtype=object)
    if frame:
        X = pd.DataFrame({7: [1, 2, 1], 9: [2.5, np.nan, 0.5]})
    enc = CTRFeatureTransformer().fit(X)
    skctr.save(enc, tmp_path / "enc.skctr")
    loaded = skctr.load(tmp_path / "enc.skctr")
    assert not hasattr(loaded, "feature_names_in_")
    assert loaded._columns == enc._columns
    assert [type(v) for v in loaded._columns.values()] == [type(v) for v in enc._columns.values()]
    assert_same_batch(loaded.transform(X), enc.transform(X))


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["no", "yes"]),
        np.array([False, True]),
        np.array(["no", "yes"], dtype=object),
        np.array([-1, 1], dtype=np.int32),
    ],
    ids=["str", "bool", "object", "int32"],
)
def test_labels(data, tmp_path, labels):
    X, y = data
    clf = small(LRClassifier).fit(X, labels[y])
    skctr.save(clf, tmp_path / "labels.skctr")
    loaded = skctr.load(tmp_path / "labels.skctr")
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert [type(c) for c in loaded.classes_] == [type(c) for c in clf.classes_]
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_categories_survive_exactly(tmp_path):
    huge = 2**64 + 7
    X = pd.DataFrame(
        {
            "ints": np.array([5, 7, 5, -3, 2**62, 7], dtype=np.int64),
            "mixed": pd.Series([1, "1", 2, "x", 1, "1"], dtype=object),
            "huge": pd.Series([huge, 5, huge, 2**63, 3, 5], dtype=object),
            "strs": pd.Series(["a", "b", None, "a", "é", "b"], dtype="str"),
            "flags": [True, False, True, True, False, True],
            "floats": [0.1, 0.2, 0.1, np.nan, 1e300, 0.1],
            "cats": pd.Series(["u", "v", "u", "w", "v", "u"], dtype="category"),
            "nullable": pd.Series([1, 2, None, 1, 2, 1], dtype="Int64"),
            "uint": np.array([2**64 - 1, 3, 3, 4, 5, 6], dtype=np.uint64),
        }
    )
    enc = CTRFeatureTransformer(sparse_features=[str(c) for c in X.columns]).fit(X)
    skctr.save(enc, tmp_path / "cats.skctr")
    loaded = skctr.load(tmp_path / "cats.skctr")
    assert loaded._columns == enc._columns
    for name, vocab in enc._vocabs.items():
        got = loaded._vocabs[name]
        assert_same_index(got.categories, vocab.categories)
        assert got.has_missing == vocab.has_missing
    mixed = loaded._vocabs["mixed"].categories.tolist()
    assert 1 in mixed and "1" in mixed and len(mixed) == 4
    assert huge in loaded._vocabs["huge"].categories.tolist()
    assert_same_batch(loaded.transform(X), enc.transform(X))


def test_user_core_needs_cores_argument(data, tmp_path):
    class TinyCore(torch.nn.Module):
        def __init__(self, schema, *, embedding_dim=8, scale=1.0):
            super().__init__()
            self.embed = FieldEmbedding(schema, embedding_dim)
            self.out = torch.nn.Linear(schema.num_fields * embedding_dim, 1)
            self.scale = scale

        def forward(self, batch):
            return self.scale * self.out(self.embed(batch).flatten(1)).squeeze(-1)

    X, y = data
    clf = CTRClassifier(core=TinyCore, core_params={"scale": 0.5}, **SMALL).fit(X, y)
    skctr.save(clf, tmp_path / "user.skctr")
    with pytest.raises(SkctrFormatError, match=r"cores=\{'TinyCore': TinyCore\}"):
        skctr.load(tmp_path / "user.skctr")
    loaded = skctr.load(tmp_path / "user.skctr", cores={"TinyCore": TinyCore})
    assert loaded.core is TinyCore and loaded.core_params == {"scale": 0.5}
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(SkctrFormatError, match="must be a torch.nn.Module"):
        skctr.load(tmp_path / "user.skctr", cores={"TinyCore": object})


def test_unfitted_estimator_round_trip(tmp_path):
    clf = DeepFMClassifier(
        hidden_units=(4, 2),
        random_state=np.random.RandomState(3),
        features=CTRFeatureTransformer(sequence_features={"h": None}, maxlen={"h": 4}),
    )
    skctr.save(clf, tmp_path / "unfitted.skctr")
    loaded = skctr.load(tmp_path / "unfitted.skctr")
    assert not hasattr(loaded, "core_")
    assert loaded.features.get_params() == clf.features.get_params()
    assert loaded.random_state.randint(1000) == np.random.RandomState(3).randint(1000)


@pytest.mark.parametrize("cls", skctr.all_classifiers(), ids=lambda c: c.__name__)
def test_every_classifier_round_trips(cls, data, tmp_path):
    X, y = data
    clf = small(cls).fit(X, y)
    skctr.save(clf, tmp_path / "model.skctr")
    loaded = skctr.load(tmp_path / "model.skctr")
    assert type(loaded) is cls
    assert loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------------------------------- refused files
def test_unsupported_objects_are_refused_at_save(data, tmp_path):
    with pytest.raises(SkctrFormatError, match="StandardScaler"):
        skctr.save(Pipeline([("scale", StandardScaler())]), tmp_path / "x.skctr")

    class MyDeepFM(DeepFMClassifier):
        pass

    with pytest.raises(SkctrFormatError, match="MyDeepFM"):
        skctr.save(MyDeepFM(), tmp_path / "x.skctr")
    with pytest.raises(SkctrFormatError, match="not supported"):
        skctr.save(DeepFMClassifier(hidden_units=[object()]), tmp_path / "x")
    assert not (tmp_path / "x.skctr").exists() and not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_not_a_zip_and_truncated(saved_deepfm, tmp_path):
    _, path = saved_deepfm
    text = tmp_path / "text.skctr"
    text.write_text("hello")
    with pytest.raises(SkctrFormatError, match="not a zip archive"):
        skctr.load(text)
    data = path.read_bytes()
    for keep in (len(data) // 2, len(data) - 10, 100):
        cut = tmp_path / f"cut{keep}.skctr"
        cut.write_bytes(data[:keep])
        with pytest.raises(SkctrFormatError, match="cut"):
            skctr.load(cut)
    with pytest.raises(FileNotFoundError):
        skctr.load(tmp_path / "missing.skctr")


@pytest.mark.parametrize("member", ["manifest.json", "skctr.json", "tensors.pt", "arrays/0.npy"])
def test_flipped_byte_is_detected(saved_deepfm, tmp_path, member):
    _, path = saved_deepfm
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    # data starts after the 30-byte local header, the name and the extra field
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0x10
    flipped = tmp_path / "flipped.skctr"
    flipped.write_bytes(bytes(data))
    with pytest.raises(SkctrFormatError, match="flipped.skctr"):
        skctr.load(flipped)


def test_digest_mismatch(saved_deepfm, tmp_path):
    _, path = saved_deepfm
    doc = document(path)
    doc["object"]["params"]["max_epochs"] = 7
    new = {"skctr.json": json.dumps(doc).encode()}
    edited = rewrite(path, tmp_path / "edited.skctr", new, update_manifest=False)
    with pytest.raises(SkctrFormatError, match="digest of the member 'skctr.json'"):
        skctr.load(edited)


def test_missing_and_extra_members(saved_deepfm, tmp_path):
    _, path = saved_deepfm
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    out = tmp_path / "missing.skctr"
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            if name != "tensors.pt":
                archive.writestr(name, data)
    with pytest.raises(SkctrFormatError, match="'tensors.pt' is missing"):
        skctr.load(out)
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("extra.bin", b"x")
    with pytest.raises(SkctrFormatError, match="unexpected members"):
        skctr.load(out)


class _Payload:
    """Unpickling this object would create a file: what a malicious model file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused(saved_deepfm, tmp_path):
    _, path = saved_deepfm
    # the payload works: plain unpickling runs it
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(proof))).close()
    assert proof.exists()

    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"est0.core.linear.bias": _Payload(marker)}, buffer)
    evil = rewrite(path, tmp_path / "evil.skctr", {"tensors.pt": buffer.getvalue()})
    with pytest.raises(SkctrFormatError, match="refused to load tensors.pt"):
        skctr.load(evil)
    assert not marker.exists()

    # the same through an array member
    buffer = io.BytesIO()
    np.save(buffer, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    evil = rewrite(path, tmp_path / "evil_npy.skctr", {"arrays/0.npy": buffer.getvalue()})
    with pytest.raises(SkctrFormatError, match="refused to load the array member"):
        skctr.load(evil)
    assert not marker.exists()


def edited(path: Path, out: Path, edit) -> Path:
    doc = document(path)
    edit(doc)
    return rewrite(path, out, {"skctr.json": json.dumps(doc).encode()})


def test_unknown_format_version(saved_deepfm, tmp_path):
    _, path = saved_deepfm
    out = edited(path, tmp_path / "v.skctr", lambda d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(SkctrFormatError, match="unknown format_version 2.*upgrade skctr"):
        skctr.load(out)
    out = edited(path, tmp_path / "v0.skctr", lambda d: d.update(format_version="1"))
    with pytest.raises(SkctrFormatError, match="unknown format_version '1'"):
        skctr.load(out)
    out = edited(path, tmp_path / "fmt.skctr", lambda d: d.update(format="other"))
    with pytest.raises(SkctrFormatError, match="does not describe a skctr file"):
        skctr.load(out)


def test_newer_major_version(saved_deepfm, tmp_path):
    _, path = saved_deepfm
    major = int(skctr.__version__.split(".")[0])
    out = edited(path, tmp_path / "new.skctr", lambda d: d.update(skctr_version=f"{major + 1}.0"))
    with pytest.raises(SkctrFormatError, match="newer major version"):
        skctr.load(out)
    # a newer minor version of the same major loads
    out = edited(path, tmp_path / "minor.skctr", lambda d: d.update(skctr_version=f"{major}.99"))
    assert type(skctr.load(out)) is DeepFMClassifier


def test_unknown_class_and_tags(saved_deepfm, tmp_path):
    _, path = saved_deepfm

    def rename(doc):
        doc["object"]["class"] = "os.system"

    with pytest.raises(SkctrFormatError, match="unknown class 'os.system'"):
        skctr.load(edited(path, tmp_path / "cls.skctr", rename))

    def tag(doc):
        doc["object"]["params"]["hidden_units"] = {"$t": "eval", "v": "1"}

    with pytest.raises(SkctrFormatError, match="unknown value tag 'eval'"):
        skctr.load(edited(path, tmp_path / "tag.skctr", tag))

    def method(doc):
        doc["object"]["attributes"]["predict"] = 1

    with pytest.raises(SkctrFormatError, match="refusing to set the attribute 'predict'"):
        skctr.load(edited(path, tmp_path / "attr.skctr", method))

    def weights(doc):
        doc["object"]["params"]["embedding_dim"] = 5

    with pytest.raises(SkctrFormatError, match="stored weights do not fit"):
        skctr.load(edited(path, tmp_path / "dim.skctr", weights))
