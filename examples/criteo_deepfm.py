"""Train DeepFM on the bundled Criteo sample and evaluate it on the held-out test rows.

Run: python examples/criteo_deepfm.py
"""

from __future__ import annotations

import time

import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from skctr import CTRFeatureTransformer, DeepFMClassifier, LRClassifier
from skctr.datasets import load_criteo_8k

train = load_criteo_8k(split="train")
dev = load_criteo_8k(split="dev")
test = load_criteo_8k(split="test")
X = pd.concat([train.data, dev.data], ignore_index=True)
y = pd.concat([train.target, dev.target], ignore_index=True)
print(
    f"criteo_8k: {len(X)} training rows, {len(test.data)} test rows, "
    f"{len(train.sparse_features)} sparse + {len(train.dense_features)} dense columns"
)

for name, model in [("LR (baseline)", LRClassifier), ("DeepFM", DeepFMClassifier)]:
    pipe = Pipeline(
        [
            ("feat", CTRFeatureTransformer(log_transform=True, min_frequency=2)),
            ("clf", model(random_state=0)),
        ]
    )
    started = time.perf_counter()
    pipe.fit(X, y)
    proba = pipe.predict_proba(test.data)[:, 1]
    history = pipe.named_steps["clf"].history_
    refit = sum(bool(h.get("refit")) for h in history)  # LR refits on every row
    print(
        f"{name:14s} test AUC {roc_auc_score(test.target, proba):.4f}  "
        f"logloss {log_loss(test.target, proba):.4f}  "
        f"({len(history) - refit} epochs" + (f" + {refit} refit" if refit else "") + ", "
        f"{time.perf_counter() - started:.1f} s)"
    )
