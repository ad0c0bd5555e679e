"""BaseCTRClassifier through DeepFMClassifier: the sklearn contract on real data."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

import skctr
from skctr import (
    AFMClassifier,
    CTRClassifier,
    CTRFeatureTransformer,
    DCNClassifier,
    DeepFMClassifier,
    FMClassifier,
    LRClassifier,
    MLRClassifier,
)
from skctr.base import EmbeddingMemoryWarning
from skctr.cores import FactorizationMachineModel, LogisticRegression
from skctr.datasets import load_criteo_8k
from tests.cores.planted import interaction_data

#: The classifiers without an MLP: their validation loss is flat near its minimum
REFIT_BY_DEFAULT = {"LRClassifier", "FMClassifier", "MLRClassifier", "AFMClassifier"}

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


def _steps(clf) -> set[tuple[bool, float]]:
    """(first-order group?, step) of every param group of a fitted estimator, after
    checking that the first-order groups hold exactly the LinearTerm's parameters."""
    groups = [g for opt in clf._state.optimizers for g in opt.param_groups]
    linear = {id(p) for p in clf.core_.linear.parameters()}
    assert all((id(p) in linear) == g["first_order"] for g in groups for p in g["params"])
    return {(g["first_order"], g["lr"]) for g in groups}


def test_a_plateau_decays_the_steps_for_that_fit_only(criteo):
    X, y = criteo
    clf = DeepFMClassifier(**{**FAST, "max_epochs": "auto"}).fit(X, y)  # early stopping on
    scales = [h["step_scale"] for h in clf.history_]
    assert scales[0] == 1.0 and min(scales) < 1.0  # it went on with smaller steps
    assert _steps(clf) == {(False, 1e-3), (True, 3e-3)}  # given back for the next fit


def test_a_model_pickled_before_a_parameter_existed_gets_its_default(criteo):
    X, y = criteo
    clf = DeepFMClassifier(**FAST).fit(X, y)
    expected = clf.predict_proba(X.iloc[:20])
    state = clf.__getstate__()
    del state["linear_learning_rate"]  # as skctr 0.1 pickled it
    old = DeepFMClassifier.__new__(DeepFMClassifier)
    old.__setstate__(state)
    assert old.get_params()["linear_learning_rate"] == "auto"
    assert clone(old).get_params()["linear_learning_rate"] == "auto"
    assert "DeepFMClassifier(" in repr(old)
    np.testing.assert_array_equal(old.predict_proba(X.iloc[:20]), expected)


def test_history_and_early_stopping(criteo):
    X, y = criteo
    clf = DeepFMClassifier(**{**FAST, "max_epochs": 30, "early_stopping": True}).fit(X, y)
    assert 1 <= len(clf.history_) < 30
    assert {"epoch", "train_loss", "val_logloss", "val_auc"} <= set(clf.history_[0])
    best = min(h["val_logloss"] for h in clf.history_)
    assert clf.history_[-1]["val_logloss"] >= best  # stopped after no improvement
    no_es = DeepFMClassifier(**{**FAST, "early_stopping": False}).fit(X, y)
    assert len(no_es.history_) == 2 and "val_logloss" not in no_es.history_[0]


def test_refit_trains_again_on_every_row_along_the_kept_path(criteo, monkeypatch):
    X, y = criteo
    rows = []
    real_train = skctr.base.train

    def recording_train(core, data, *args, **kwargs):
        rows.append(data.num_rows)
        return real_train(core, data, *args, **kwargs)

    monkeypatch.setattr(skctr.base, "train", recording_train)
    clf = LRClassifier(random_state=0).fit(X, y)  # LR refits by default
    assert clf.refit is True
    assert rows == [1350, 1500]  # early stopping on 90 % of the rows, then every row
    selection = [h for h in clf.history_ if not h.get("refit")]
    replay = [h for h in clf.history_ if h.get("refit")]
    assert selection and replay and clf.history_ == selection + replay
    assert [h["epoch"] for h in clf.history_] == list(range(1, len(clf.history_) + 1))
    assert all("val_logloss" in h for h in selection)
    assert not any("val_logloss" in h for h in replay)
    # the replay retraces the path to the kept epoch: at most as long, smaller steps last
    scales = [h["step_scale"] for h in replay]
    assert len(replay) <= len(selection) and scales == sorted(scales, reverse=True)

    rows.clear()
    plain = LRClassifier(random_state=0, refit=False).fit(X, y)
    assert rows == [1350] and not any(h.get("refit") for h in plain.history_)
    assert [h["val_logloss"] for h in plain.history_] == [h["val_logloss"] for h in selection]
    assert not np.allclose(plain.predict_proba(X), clf.predict_proba(X))
    # nothing to refit without early stopping, nor when a warm start continues
    rows.clear()
    LRClassifier(random_state=0, early_stopping=False, max_epochs=2).fit(X, y)
    warm = LRClassifier(random_state=0, warm_start=True, max_epochs=2).fit(X, y)
    assert rows == [1500, 1350, 1500]
    warm.fit(X, y)
    assert rows[3:] == [1350]


class _Constant(torch.nn.Module):
    """A core that can learn only its bias: any logistic regression validates better."""

    def __init__(self, schema, *, scale=1.0):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(()))
        self.scale = scale

    def forward(self, batch):
        return self.bias.expand(batch.num_rows) * self.scale


def test_linear_fallback_keeps_the_logistic_regression_where_it_validates_better(criteo, tmp_path):
    X, y = criteo
    shared = {"random_state": 0, "batch_size": 128, "max_epochs": 40, "early_stopping": True}
    clf = CTRClassifier(core=_Constant, core_params={"scale": 1.0}, linear_fallback=True, **shared)
    clf.fit(X, y)
    assert clf.linear_fallback_ is True
    assert isinstance(clf.core_, LogisticRegression)
    # it is LRClassifier with the same shared parameters: same split, seed, step and refit
    lr = LRClassifier(**shared).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), lr.predict_proba(X))
    model = [h for h in clf.history_ if not h.get("linear")]
    linear = [h for h in clf.history_ if h.get("linear")]
    assert model and linear and clf.history_ == model + linear  # the model's epochs first
    losses = [(h["train_loss"], h.get("val_logloss")) for h in linear]
    assert losses == [(h["train_loss"], h.get("val_logloss")) for h in lr.history_]
    assert any(h.get("refit") for h in linear)  # refitted on every row, as LRClassifier is
    assert [h["epoch"] for h in clf.history_] == list(range(1, len(clf.history_) + 1))
    # it saves, loads, pickles and continues training as what it is
    expected = clf.predict_proba(X.iloc[:50])
    skctr.save(clf, tmp_path / "m.skctr")
    loaded = skctr.load(tmp_path / "m.skctr", cores={"_Constant": _Constant})
    assert loaded.linear_fallback_ is True
    np.testing.assert_array_equal(loaded.predict_proba(X.iloc[:50]), expected)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(clf)).predict_proba(X.iloc[:50]), expected
    )
    loaded.set_params(warm_start=True, max_epochs=1).fit(X, y)
    assert isinstance(loaded.core_, LogisticRegression) and loaded.linear_fallback_ is True
    assert not np.array_equal(loaded.predict_proba(X.iloc[:50]), expected)
    # a fresh fit starts from the model again
    clf.set_params(linear_fallback=False).fit(X, y)
    assert clf.linear_fallback_ is False and isinstance(clf.core_, _Constant)
    assert not any(h.get("linear") for h in clf.history_)


def test_linear_fallback_keeps_the_model_where_it_validates_better():
    X, y = interaction_data(2000, seed=0)  # a product of two columns: no main effects
    clf = FMClassifier(random_state=0, embedding_dim=4, learning_rate=0.01, linear_fallback=True)
    clf.fit(X, y)
    assert clf.linear_fallback_ is False and not isinstance(clf.core_, LogisticRegression)
    selection = [h for h in clf.history_ if not h.get("refit")]
    model = [h for h in selection if not h.get("linear")]
    linear = [h for h in selection if h.get("linear")]
    assert min(h["val_logloss"] for h in model) < min(h["val_logloss"] for h in linear) - 0.05
    # FM refits by default: the model, along its own path, after the linear candidate
    refit = [h for h in clf.history_ if h.get("refit")]
    assert refit and not any(h.get("linear") for h in refit)
    assert clf.history_ == model + linear + refit


def test_no_linear_fallback_without_early_stopping_or_by_default_or_for_lr(criteo):
    X, y = criteo
    clf = CTRClassifier(core=_Constant, random_state=0, early_stopping=False, max_epochs=2)
    clf.set_params(linear_fallback=True).fit(X, y)
    assert clf.linear_fallback_ is False and isinstance(clf.core_, _Constant)
    assert not any(h.get("linear") for h in clf.history_)
    default = CTRClassifier(core=_Constant, random_state=0, early_stopping=True, max_epochs=3)
    default.fit(X, y)  # a model that learns nothing, kept: the fallback is asked for
    assert default.linear_fallback_ is False and isinstance(default.core_, _Constant)
    assert not any(h.get("linear") for h in default.history_)
    assert "linear_fallback" not in LRClassifier().get_params()
    assert "linear_fallback_" not in LRClassifier.__doc__
    assert all(
        cls().get_params()["linear_fallback"] is False and "linear_fallback_" in cls.__doc__
        for cls in skctr.all_classifiers()
        if cls is not LRClassifier
    )


def test_the_models_without_an_mlp_refit_by_default():
    refitting = {cls.__name__ for cls in skctr.all_classifiers() if cls().get_params()["refit"]}
    assert refitting == REFIT_BY_DEFAULT


def test_auto_early_stopping_from_800_rows_and_auto_epoch_cap(criteo):
    X, y = criteo
    fast = {"random_state": 0}
    with_val = LRClassifier(**fast, max_epochs=1).fit(X.iloc[:800], y.iloc[:800])
    without = LRClassifier(**fast, max_epochs=1).fit(X.iloc[:799], y.iloc[:799])
    assert "val_logloss" in with_val.history_[0]
    assert "val_logloss" not in without.history_[0]
    short = LRClassifier(**fast, early_stopping=False).fit(X.iloc[:300], y.iloc[:300])
    assert short.max_epochs == "auto" and len(short.history_) == 20
    # a cap only, when the validation loss decides; the length of training, when not
    assert short._config(early_stopping=True).max_epochs == 100
    assert short._config(early_stopping=False).max_epochs == 20
    assert with_val._config(early_stopping=True).max_epochs == 1
    # a plateau of the validation loss decays the steps (twice at most) before stopping
    assert short._config(early_stopping=True).step_decays == 2
    assert short._config(early_stopping=False).step_decays == 0


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
    with pytest.raises(ValueError, match="sample_weight contains NaN"):
        DeepFMClassifier(**FAST).fit(X, y, sample_weight=np.r_[np.nan, w[1:]])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"batch_size": -5}, "batch_size"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"linear_learning_rate": 0.0}, "linear_learning_rate"),
        ({"linear_learning_rate": "fast"}, "linear_learning_rate"),
        ({"hidden_units": (64, 0)}, "hidden_units"),
        ({"activation": "swish"}, "activation"),
        ({"device": "tpu9"}, "device"),
        ({"features": "yes"}, "features"),
        ({"clip_grad_norm": 0}, "clip_grad_norm"),
        ({"checkpoint_dir": 3}, "checkpoint_dir"),
        ({"dropout": 1.0}, "dropout"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"early_stopping": "yes"}, "early_stopping"),
        ({"n_jobs": -2}, "n_jobs"),
    ],
)
def test_bad_parameters_are_named(params, match):
    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        DeepFMClassifier(**params).fit(X, y)


def test_first_order_weights_take_linear_learning_rate_and_warm_start_applies_changes(criteo):
    X, y = criteo
    clf = DeepFMClassifier(**FAST, learning_rate=2e-3, warm_start=True).fit(X, y)
    # 'auto': 3 x learning_rate for the LinearTerm (its table and its bias)
    assert _steps(clf) == {(False, 2e-3), (True, 6e-3)}
    clf.set_params(learning_rate=1e-3, linear_learning_rate=0.05).fit(X, y)
    assert _steps(clf) == {(False, 1e-3), (True, 0.05)}
    restored = pickle.loads(pickle.dumps(clf))  # the optimisers are rebuilt, with both steps
    assert _steps(restored.set_params(linear_learning_rate=0.02).fit(X, y)) == {
        (False, 1e-3),
        (True, 0.02),
    }
    clf.set_params(linear_learning_rate=-1.0)  # partial_fit's later calls validate too
    with pytest.raises(ValueError, match="linear_learning_rate"):
        clf.partial_fit(X, y)
    assert AFMClassifier().get_params()["learning_rate"] == 1e-3  # was 3e-3 for every weight
    # LR's weights are all first-order: learning_rate is their step
    lr = LRClassifier(max_epochs=1, random_state=0).fit(X, y)
    assert {g["lr"] for opt in lr._state.optimizers for g in opt.param_groups} == {3e-3}
    assert "linear_learning_rate" not in LRClassifier().get_params()
    assert "linear_learning_rate" not in DCNClassifier().get_params()  # no first-order term


def test_a_subclass_changes_a_shared_training_default_in_signature_and_docstring():
    class Slow(CTRClassifier):
        """A model.

        {parameters}
        """

        _training_defaults = MappingProxyType({"learning_rate": 0.25, "max_epochs": 7})

    params = Slow().get_params()
    assert (params["learning_rate"], params["max_epochs"]) == (0.25, 7)
    assert "learning_rate : float, default=0.25" in Slow.__doc__
    assert CTRClassifier().learning_rate == 1e-3  # the parent keeps the shared default
    assert LRClassifier().learning_rate == 3e-3  # see docs/defaults.rst

    class ShortLR(LRClassifier):  # adds to LR's own defaults
        _training_defaults = MappingProxyType({"max_epochs": 3})

    assert (ShortLR().learning_rate, ShortLR().max_epochs) == (3e-3, 3)
    with pytest.raises(TypeError, match=r"\['embedding_dimm'\], not shared training"):

        class Typo(CTRClassifier):
            _training_defaults = MappingProxyType({"embedding_dimm": 4})


@pytest.mark.parametrize(
    ("y", "match"),
    [
        pytest.param(np.arange(30) % 3, "Only binary classification.*3 classes", id="3-classes"),
        pytest.param(np.zeros(30), "one class", id="one-class"),
        pytest.param(np.r_[np.nan, np.arange(29) % 2.0], "NaN", id="nan-label"),
        pytest.param(np.arange(29) % 2, "inconsistent numbers of samples", id="length-mismatch"),
        pytest.param(np.linspace(0, 1, 30), "Unknown label type", id="continuous"),
    ],
)
def test_bad_targets(y, match):
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match=match):
        LRClassifier().fit(X, y)


def test_empty_input_is_refused():
    X = pd.DataFrame({"c": pd.Series([], dtype=str), "v": pd.Series([], dtype=float)})
    with pytest.raises(ValueError, match=r"0 sample\(s\).*minimum of 1 is required"):
        LRClassifier().fit(X, np.array([], dtype=int))
    with pytest.raises(ValueError, match="0 feature"):
        LRClassifier().fit(np.empty((5, 0)), np.arange(5) % 2)


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


# ------------------------------------------------------------------ dirty production logs
@pytest.fixture(scope="module")
def logs():
    """A small log with every column kind, and a DeepFM fitted on it."""
    rng = np.random.default_rng(0)
    n = 600
    item = rng.integers(0, 30, n)
    X = pd.DataFrame(
        {
            "site": rng.choice(["news", "sport", "météo", ""], n),
            "item_id": item,
            "price": rng.lognormal(size=n),
            "hist_item_id": [list(rng.integers(0, 30, rng.integers(0, 6))) for _ in range(n)],
        }
    )
    y = ((item % 3 == 0) ^ (X["site"] == "news")).astype(int).to_numpy()
    return X, y, DeepFMClassifier(**FAST).fit(X, y)


def test_missing_column_is_named(logs):
    X, _, clf = logs
    with pytest.raises(ValueError, match=r"\['price'\] seen during fit are missing from X"):
        clf.predict_proba(X.drop(columns="price"))


def test_reordered_columns_give_identical_predictions(logs):
    X, _, clf = logs
    reordered = X[["hist_item_id", "price", "site", "item_id"]]
    np.testing.assert_array_equal(clf.predict_proba(reordered), clf.predict_proba(X))


def test_extra_columns_are_ignored(logs):
    X, _, clf = logs
    extra = X.assign(new_feature=1.0, another="x")
    np.testing.assert_array_equal(clf.predict_proba(extra), clf.predict_proba(X))


def test_duplicate_column_names_are_refused(logs):
    X, _, clf = logs
    with pytest.raises(ValueError, match=r"duplicate column names \['site'\]"):
        clf.predict_proba(pd.concat([X, X[["site"]]], axis=1))


def test_strings_in_a_numeric_column_are_named(logs):
    X, _, clf = logs
    with pytest.raises(ValueError, match=r"dense column 'price' must hold numbers, got 'n/a'"):
        clf.predict_proba(X.assign(price=X["price"].astype(object).where(X.index > 0, "n/a")))


def test_unseen_categories_give_finite_predictions(logs):
    X, _, clf = logs
    unseen = X.assign(
        site="brand-new", item_id=10**9, hist_item_id=[[10**9, -1]] * len(X), price=1.0
    )
    proba = clf.predict_proba(unseen)
    assert np.isfinite(proba).all()
    # every row now looks the same to the model: one out-of-vocabulary row, repeated
    np.testing.assert_array_equal(proba, np.repeat(proba[:1], len(X), axis=0))


def test_all_missing_category_column(logs):
    X, y, clf = logs
    proba = clf.predict_proba(X.assign(site=None))
    assert np.isfinite(proba).all()
    fitted = DeepFMClassifier(**FAST).fit(X.assign(site=None), y)
    assert np.isfinite(fitted.predict_proba(X)).all()


def test_dirty_dense_values_give_finite_predictions(logs):
    X, _, clf = logs
    dirty = [np.nan, None, np.inf, -np.inf, 1e300, -1e300, 0.0]
    rows = X.iloc[[0] * len(dirty)].assign(price=pd.Series(dirty, dtype=object).to_numpy())
    proba = clf.predict_proba(rows)
    assert np.isfinite(proba).all()
    np.testing.assert_array_equal(proba[1:4], np.repeat(proba[:1], 3, axis=0))  # all imputed
    assert not np.array_equal(proba[4], proba[1])  # clipped, not imputed


def test_none_empty_and_overlong_sequences(logs):
    X, _, clf = logs
    rows = X.iloc[[0] * 4].assign(hist_item_id=[None, [], list(range(500)), [1, 2]])
    proba = clf.predict_proba(rows)
    assert np.isfinite(proba).all()
    np.testing.assert_array_equal(proba[0], proba[1])  # None is an empty history
    # an overlong history keeps its last maxlen (50) items
    last = X.iloc[[0]].assign(hist_item_id=[list(range(450, 500))])
    np.testing.assert_array_equal(clf.predict_proba(last)[0], proba[2])


def test_huge_learning_rate_stops_with_a_message_and_keeps_good_weights(logs):
    X, y, _ = logs
    clf = DeepFMClassifier(**{**FAST, "learning_rate": 1e12})
    with pytest.warns(RuntimeWarning, match=r"non-finite in epoch 1;.*initial weights"):
        clf.fit(X, y)
    assert clf.history_ == [] and np.isfinite(clf.predict_proba(X)).all()
    # after two good epochs, a blow-up in the third keeps the weights of the second
    clf = DeepFMClassifier(**FAST).fit(X, y)
    good = clf.predict_proba(X)
    clf.set_params(warm_start=True, learning_rate=1e12)
    with pytest.warns(
        RuntimeWarning, match=r"non-finite in epoch 3;.*after epoch 2.*learning_rate is probably"
    ):
        clf.fit(X, y)
    assert len(clf.history_) == 2
    np.testing.assert_array_equal(clf.predict_proba(X), good)


def test_clip_grad_norm_reaches_every_step(logs, monkeypatch):
    from skctr.training import loop

    X, y, _ = logs
    seen = []
    original = loop.clip_gradients
    monkeypatch.setattr(
        loop, "clip_gradients", lambda core, norm: seen.append(norm) or original(core, norm)
    )
    DeepFMClassifier(**{**FAST, "clip_grad_norm": 0.5}).fit(X, y)
    assert seen == [0.5] * (2 * 3)  # 2 epochs of 3 batches of 256 rows
    seen.clear()
    DeepFMClassifier(**FAST).fit(X, y)
    assert seen == []


class _InterruptedFM(FactorizationMachineModel):
    """An FM whose ``interrupt_at``-th training forward pass raises KeyboardInterrupt."""

    def __init__(self, schema, *, interrupt_at=None, embedding_dim=4):
        super().__init__(schema, embedding_dim=embedding_dim)
        self.interrupt_at, self.calls = interrupt_at, 0

    def forward(self, batch):
        if self.training:
            self.calls += 1
            if self.calls == self.interrupt_at:
                raise KeyboardInterrupt
        return super().forward(batch)


def test_keyboard_interrupt_keeps_a_usable_model_with_history(logs):
    X, y, _ = logs
    params = {"core": _InterruptedFM, "random_state": 0, "early_stopping": False}
    clf = CTRClassifier(**params, max_epochs=5, core_params={"interrupt_at": 3 * 2 + 2})
    with pytest.warns(RuntimeWarning, match="interrupted in epoch 3"):
        clf.fit(X, y)  # 3 batches per epoch: interrupted in the 2nd batch of epoch 3
    assert [h["epoch"] for h in clf.history_] == [1, 2]
    # an interrupted fit is not followed by a refit
    refitting = {**params, "early_stopping": True, "refit": True, "max_epochs": 5}
    stopped = CTRClassifier(**refitting, core_params={"interrupt_at": 3 * 2 + 2})
    with pytest.warns(RuntimeWarning, match="interrupted in epoch 3"):
        stopped.fit(X, y)
    assert [h["epoch"] for h in stopped.history_] == [1, 2]
    assert not any(h.get("refit") for h in stopped.history_)
    two_epochs = CTRClassifier(**params, max_epochs=2).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), two_epochs.predict_proba(X))


def test_checkpoints_each_epoch_and_warm_start_resumes(logs, tmp_path):
    X, y, _ = logs
    directory = tmp_path / "checkpoints" / "run1"  # a Path, created by fit
    clf = DeepFMClassifier(**{**FAST, "max_epochs": 3, "checkpoint_dir": directory}).fit(X, y)
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["epoch_0001.skctr", "epoch_0002.skctr", "epoch_0003.skctr"]
    np.testing.assert_array_equal(
        skctr.load(directory / "epoch_0003.skctr").predict_proba(X), clf.predict_proba(X)
    )
    second = skctr.load(directory / "epoch_0002.skctr")
    assert [h["epoch"] for h in second.history_] == [1, 2]
    assert second.checkpoint_dir == directory  # a Path parameter survives the file format
    two_epochs = DeepFMClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(second.predict_proba(X), two_epochs.predict_proba(X))
    # resume from the checkpoint: one more epoch, numbered on, checkpointed again
    second.set_params(warm_start=True, max_epochs=1).fit(X, y)
    assert [h["epoch"] for h in second.history_] == [1, 2, 3]
    resumed = skctr.load(directory / "epoch_0003.skctr")
    np.testing.assert_array_equal(resumed.predict_proba(X), second.predict_proba(X))
    with pytest.raises(FileExistsError, match="epoch_0001.skctr"):
        DeepFMClassifier(**{**FAST, "checkpoint_dir": directory / "epoch_0001.skctr"}).fit(X, y)


def test_partial_fit_writes_checkpoints(logs, tmp_path):
    X, y, _ = logs
    clf = LRClassifier(random_state=0, checkpoint_dir=str(tmp_path))
    clf.partial_fit(X.iloc[:300], y[:300], classes=[0, 1]).partial_fit(X.iloc[300:], y[300:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001.skctr", "epoch_0002.skctr"]


def test_memory_budget_warning_names_the_size_and_the_remedy(logs, monkeypatch):
    import skctr.base
    from skctr.nn.embedding import FieldEmbedding

    X, y, clf = logs
    schema = clf.features_.schema_
    assert schema.embedding_rows == FieldEmbedding(schema, 4).num_rows
    monkeypatch.setattr(skctr.base, "EMBEDDING_MEMORY_BUDGET", 1000)
    with pytest.warns(EmbeddingMemoryWarning) as record:
        clf = DeepFMClassifier(**{**FAST, "embedding_dim": 16, "max_epochs": 1}).fit(X, y)
    # every table the core holds: the embedding (16 wide) and the first-order weights
    tables = [m.weight for m in clf.core_.modules() if isinstance(m, torch.nn.Embedding)]
    size = sum(t.numel() * 4 for t in tables) / 2**20
    first_order_rows = FieldEmbedding(schema, 1, shared_rows=False).num_rows  # own history rows
    assert len(tables) == 2
    assert size == (schema.embedding_rows * 16 + first_order_rows) * 4 / 2**20
    message = str(record[0].message)
    assert (
        f"{size:,.0f} MiB ({schema.embedding_rows:,} vocabulary rows, embedding_dim=16" in message
    )
    for remedy in ("max_categories", "hash_buckets", "embedding_dim", "'item_id' (33 rows)"):
        assert remedy in message
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmbeddingMemoryWarning)
        DeepFMClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)


def test_memory_budget_counts_every_table_of_the_core(logs, monkeypatch):
    # MLR has no embedding_dim: its two tables of region_num columns are counted as built
    import skctr.base

    X, y, _ = logs
    settings = {k: v for k, v in FAST.items() if k not in ("embedding_dim", "hidden_units")}
    clf = MLRClassifier(**{**settings, "max_epochs": 1, "region_num": 4})
    clf.fit(X, y)
    built = sum(
        m.weight.numel() * 4 for m in clf.core_.modules() if isinstance(m, torch.nn.Embedding)
    )
    assert clf._table_bytes() == built
    monkeypatch.setattr(skctr.base, "EMBEDDING_MEMORY_BUDGET", built - 1)
    with pytest.warns(EmbeddingMemoryWarning, match="MLRClassifier"):
        clf.fit(X, y)


def test_predict_proba_from_several_threads_equals_serial(logs):
    import torch

    X, _, clf = logs
    chunks = [X.iloc[i : i + 37] for i in range(0, len(X), 37)] * 3
    serial = [clf.predict_proba(c) for c in chunks]
    threaded = copy.deepcopy(clf).set_params(n_jobs=1)
    before = torch.get_num_threads()
    for model in (clf, threaded):
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(model.predict_proba, chunks))
        for got, expected in zip(results, serial, strict=True):
            np.testing.assert_array_equal(got, expected)
    assert torch.get_num_threads() == before
    assert not clf.core_.training


def test_same_seed_same_predictions_in_fresh_processes(logs, tmp_path):
    """Bit-identical across processes (and string hash seeds) with the thread count pinned."""
    X, y, _ = logs
    X.to_pickle(tmp_path / "X.pkl")
    np.save(tmp_path / "y.npy", y)
    params = {**FAST, "n_jobs": 1}
    code = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from skctr import DeepFMClassifier
        X = pd.read_pickle({str(tmp_path / "X.pkl")!r})
        y = np.load({str(tmp_path / "y.npy")!r})
        clf = DeepFMClassifier(**{params!r}).fit(X, y)
        np.save({str(tmp_path / "p.npy")!r}, clf.predict_proba(X))
        """
    )
    expected = DeepFMClassifier(**params).fit(X, y).predict_proba(X)
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)
