"""BaseCTRClassifier through DeepFMClassifier: the sklearn contract on real data."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from skctr import CTRFeatureTransformer, DeepFMClassifier, LRClassifier
from skctr.datasets import load_criteo_8k

FAST = {"max_epochs": 2, "hidden_units": (32,), "embedding_dim": 4, "random_state": 0}


@pytest.fixture(scope="module")
def criteo():
    X, y = load_criteo_8k(split="train", return_X_y=True)
    return X.iloc[:1500].reset_index(drop=True), y.iloc[:1500].reset_index(drop=True)


def test_pipeline_gridsearch_and_cross_val_score(criteo):
    X, y = criteo
    pipe = Pipeline([("feat", CTRFeatureTransformer()), ("clf", DeepFMClassifier(**FAST))])
    pipe.fit(X, y)
    proba = pipe.predict_proba(X.iloc[:7])
    assert proba.shape == (7, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    search = GridSearchCV(
        pipe,
        {"clf__embedding_dim": [2, 4], "feat__min_frequency": [1, 3]},
        cv=2,
        scoring="roc_auc",
    ).fit(X, y)
    assert set(search.best_params_) == {"clf__embedding_dim", "feat__min_frequency"}
    scores = cross_val_score(pipe, X, y, cv=2, scoring="roc_auc")
    assert scores.shape == (2,) and np.all(scores > 0.55)


def test_features_parameter_is_tunable_without_a_pipeline(criteo):
    X, y = criteo
    clf = DeepFMClassifier(features=CTRFeatureTransformer(min_frequency=5), **FAST).fit(X, y)
    assert clf.features_.min_frequency == 5 and clf.features is not clf.features_
    assert clf.get_params()["features__min_frequency"] == 5
    assert list(clf.feature_names_in_) == list(X.columns)


def test_same_seed_same_predictions_and_numpy_input():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    a = DeepFMClassifier(**FAST).fit(X, y).predict_proba(X)
    b = DeepFMClassifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    c = DeepFMClassifier(**{**FAST, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "labels", [np.array(["no", "yes"]), np.array([False, True]), np.array([-1, 7])]
)
def test_any_two_labels(labels):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"c": rng.choice(list("abc"), 200), "v": rng.normal(size=200)})
    y = labels[(X["c"] == "a").to_numpy().astype(int)]
    clf = DeepFMClassifier(**{**FAST, "max_epochs": 60, "learning_rate": 0.01}).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    assert set(clf.predict(X)) <= set(labels)
    assert (clf.predict(X) == y).mean() > 0.9


def test_joblib_round_trip_in_a_new_process(criteo, tmp_path):
    X, y = criteo
    pipe = Pipeline([("feat", CTRFeatureTransformer()), ("clf", DeepFMClassifier(**FAST))])
    pipe.fit(X, y)
    path = tmp_path / "m.joblib"
    joblib.dump(pipe, path)
    X.iloc[:50].to_pickle(tmp_path / "X.pkl")
    expected = pipe.predict_proba(X.iloc[:50])
    code = textwrap.dedent(
        f"""
        import joblib, pandas as pd, numpy as np
        pipe = joblib.load({str(path)!r})
        X = pd.read_pickle({str(tmp_path / "X.pkl")!r})
        np.save({str(tmp_path / "p.npy")!r}, pipe.predict_proba(X))
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)
    clf = joblib.load(path).named_steps["clf"]
    assert all(p.device.type == "cpu" for p in clf.core_.parameters())


def test_history_and_early_stopping(criteo):
    X, y = criteo
    clf = DeepFMClassifier(**{**FAST, "max_epochs": 30, "early_stopping": True}).fit(X, y)
    assert 1 <= len(clf.history_) < 30
    assert {"epoch", "train_loss", "val_logloss", "val_auc"} <= set(clf.history_[0])
    best = min(h["val_logloss"] for h in clf.history_)
    assert clf.history_[-1]["val_logloss"] >= best  # stopped after no improvement
    no_es = DeepFMClassifier(**{**FAST, "early_stopping": False}).fit(X, y)
    assert len(no_es.history_) == 2 and "val_logloss" not in no_es.history_[0]


def test_partial_fit_and_warm_start(criteo):
    X, y = criteo
    clf = DeepFMClassifier(**FAST)
    clf.partial_fit(X.iloc[:700], y.iloc[:700], classes=[0, 1])
    clf.partial_fit(X.iloc[700:], y.iloc[700:])
    assert [h["epoch"] for h in clf.history_] == [1, 2]
    warm = DeepFMClassifier(**{**FAST, "warm_start": True, "early_stopping": False}).fit(X, y)
    before = warm.predict_proba(X)
    features = warm.features_
    warm.fit(X, y)
    assert warm.features_ is features and len(warm.history_) == 4
    assert not np.array_equal(before, warm.predict_proba(X))


def test_sample_weight_changes_the_fit_and_is_validated(criteo):
    X, y = criteo
    w = np.where(y == 1, 5.0, 1.0)
    plain = DeepFMClassifier(**FAST).fit(X, y).predict_proba(X)[:, 1].mean()
    weighted = DeepFMClassifier(**FAST).fit(X, y, sample_weight=w).predict_proba(X)[:, 1].mean()
    assert weighted > plain + 0.05
    with pytest.raises(ValueError, match="sample_weight"):
        DeepFMClassifier(**FAST).fit(X, y, sample_weight=w[:10])
    with pytest.raises(ValueError, match="[Nn]egative"):
        DeepFMClassifier(**FAST).fit(X, y, sample_weight=-w)
    with pytest.raises(ValueError, match="non-zero"):
        DeepFMClassifier(**FAST).fit(X, y, sample_weight=0 * w)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"batch_size": -5}, "batch_size"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"hidden_units": (64, 0)}, "hidden_units"),
        ({"activation": "swish"}, "activation"),
        ({"device": "tpu9"}, "device"),
        ({"features": "yes"}, "features"),
    ],
)
def test_bad_parameters_are_named(params, match):
    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        DeepFMClassifier(**params).fit(X, y)


def test_bad_targets():
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="Only binary classification.*3 classes"):
        LRClassifier().fit(X, np.arange(30) % 3)
    with pytest.raises(ValueError, match="one class"):
        LRClassifier().fit(X, np.zeros(30))
    with pytest.raises(ValueError, match="NaN"):
        LRClassifier().fit(X, np.r_[np.nan, np.arange(29) % 2.0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LRClassifier().fit(X, np.arange(29) % 2)
    with pytest.raises(ValueError, match="Unknown label type"):
        LRClassifier().fit(X, np.linspace(0, 1, 30))


def test_not_fitted_and_zero_rows(criteo):
    X, y = criteo
    with pytest.raises(NotFittedError):
        DeepFMClassifier().predict_proba(X)
    clf = DeepFMClassifier(**FAST).fit(X, y)
    assert clf.predict_proba(X.iloc[:0]).shape == (0, 2)


def test_encoded_input_must_match_the_fitted_schema(criteo):
    X, y = criteo
    enc = CTRFeatureTransformer().fit(X)
    clf = DeepFMClassifier(**FAST).fit(enc.transform(X), y)
    other = CTRFeatureTransformer(min_frequency=10).fit(X).transform(X)
    with pytest.raises(ValueError, match="different schema"):
        clf.predict_proba(other)
    with pytest.raises(ValueError, match="encoded data"):
        clf.predict_proba(X)


def test_n_jobs_sets_and_restores_torch_threads(criteo):
    import torch

    X, y = criteo
    before = torch.get_num_threads()
    DeepFMClassifier(**{**FAST, "n_jobs": 1}).fit(X, y)
    assert torch.get_num_threads() == before


def test_clone_keeps_parameters_unchanged():
    clf = DeepFMClassifier(hidden_units=(8, 4), features=CTRFeatureTransformer(maxlen=3))
    twin = clone(clf)
    assert twin.hidden_units == (8, 4) and twin.features.maxlen == 3
