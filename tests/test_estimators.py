"""Every built-in classifier in a Pipeline, in GridSearchCV and after a joblib round trip."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skctr import CTRFeatureTransformer, all_classifiers
from tests.frames import as_stored


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    n = 400
    item = rng.integers(0, 20, n)
    X = pd.DataFrame(
        {
            "user": rng.choice(list("abcdefgh"), n),
            "item_id": item,
            "price": rng.lognormal(size=n),
            "hist_item_id": [list(rng.integers(0, 20, rng.integers(0, 6))) for _ in range(n)],
        }
    )
    y = ((item % 3 == 0) ^ (X["user"] < "c")).astype(int)
    return X, y


@pytest.mark.parametrize("cls", all_classifiers(), ids=lambda c: c.__name__)
def test_pipeline_gridsearch_and_joblib(cls, frame):
    X, y = frame
    clf = cls(random_state=0, max_epochs=2)
    pipe = Pipeline([("feat", CTRFeatureTransformer()), ("clf", clf)])
    search = GridSearchCV(pipe, {"feat__min_frequency": [1, 2]}, cv=2, scoring="roc_auc")
    search.fit(X, y)
    best = search.best_estimator_
    proba = best.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.isfinite(proba).all()
    buffer = io.BytesIO()
    joblib.dump(best, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict_proba(X), proba)


@pytest.mark.parametrize("cls", all_classifiers(), ids=lambda c: c.__name__)
def test_dirty_rows_give_finite_predictions(cls, frame):
    X, y = frame
    clf = cls(random_state=0, max_epochs=1).fit(X, y)
    dirty = pd.DataFrame(
        {  # columns reordered; every value unseen, missing, extreme or odd
            "hist_item_id": [None, [], list(range(500)), [10**12, -1], "3|4", [2**70]],
            "price": pd.Series([np.nan, np.inf, -np.inf, 1e300, None, -1e300], dtype=object),
            "user": as_stored(["unseen", None, "", "🙂", "\ud800", "a"]),
            "item_id": pd.Series([10**12, -1, 2**70, None, 3.0, "7"], dtype=object),
        }
    )
    proba = clf.predict_proba(dirty)
    assert proba.shape == (6, 2) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.predict_proba(dirty.iloc[:0]).shape == (0, 2)
    assert clf.predict(dirty.iloc[:0]).shape == (0,)


@pytest.mark.parametrize("cls", all_classifiers(), ids=lambda c: c.__name__)
def test_a_rows_prediction_does_not_depend_on_the_rows_scored_with_it(cls, frame):
    X, y = frame
    big = pd.concat([X] * 12, ignore_index=True)  # 4800 rows: a pass of 4096, then 704
    clf = cls(random_state=0, max_epochs=1).fit(X, y)
    encoded = clf.features_.transform(big)
    full = clf.predict_proba(encoded)[:, 1]
    for start, n in ((0, 1), (7, 3), (100, 40), (4095, 2), (4096, 1), (1, 1000)):
        part = clf.predict_proba(encoded[start : start + n])[:, 1]
        np.testing.assert_array_equal(part, full[start : start + n], err_msg=f"{start}+{n}")
