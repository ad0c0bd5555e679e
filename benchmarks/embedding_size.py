#!/usr/bin/env python
"""Screen: an embedding size per field from its cardinality, against one size for all.

Run from the repository root (about 3 min on one core)::

    python benchmarks/embedding_size.py [--rules fixed8,card25] [--repeats 2]

Most skctr architectures need one embedding size for every field (dot products, attention,
CIN); a size per field can only reach models whose fields first meet in an MLP or a cross
network (DCN, Wide & Deep). This screens the idea on such a model, built here as a
:class:`skctr.CTRClassifier` core: one embedding table per field, its vectors and the dense
values concatenated into an MLP (256, 128), plus first-order weights, trained with skctr's
defaults (the first-order weights here are plain tables, not marked ``first_order``, so they
take ``learning_rate`` like the rest, as when this screen was run). Same protocol as
``benchmarks/quality.py`` (repeated stratified 3-fold on
criteo_8k and avazu_9k, MovieLens' temporal split without the histories). Prints one line
per data set and rule: mean AUC, log-loss, epochs, the sizes chosen. The results are in
``docs/defaults.rst``.

Rules (``c`` is the field's vocabulary size, reserved codes included):

* ``fixed8`` / ``fixed4``: 8 (skctr's default) or 4 for every field;
* ``card25``: ``max(2, round(c ** 0.25))``;
* ``2card25``: ``max(2, round(2 * c ** 0.25))``;
* ``6card25``: ``max(1, round(6 * c ** 0.25))`` (DeepCTR's ``"auto"``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import quality
from benchlib import seed_everything

from skctr import CTRClassifier, CTRFeatureTransformer
from skctr.nn import MLP

RULES = {
    "fixed8": lambda c: 8,
    "fixed4": lambda c: 4,
    "card25": lambda c: max(2, round(c**0.25)),
    "2card25": lambda c: max(2, round(2 * c**0.25)),
    "6card25": lambda c: max(1, round(6 * c**0.25)),
}


class PerFieldDNN(nn.Module):
    """MLP over per-field embeddings of per-field sizes, plus first-order weights.

    Parameters
    ----------
    schema : FeatureSchema
        The encoded columns (sparse and dense fields; sequences are not used).
    rule : str, default="fixed8"
        Key of :data:`RULES`: the embedding size of a field from its vocabulary size.
    """

    def __init__(self, schema, *, rule: str = "fixed8") -> None:
        super().__init__()
        cards = [f.vocab_size for f in schema.sparse]
        self.dims = [RULES[rule](c) for c in cards]
        self.tables = nn.ModuleList(
            nn.Embedding(c, d) for c, d in zip(cards, self.dims, strict=True)
        )
        for table in self.tables:
            nn.init.normal_(table.weight, std=0.01)
        self.linear_tables = nn.ModuleList(nn.Embedding(c, 1) for c in cards)
        for table in self.linear_tables:
            nn.init.zeros_(table.weight)
        n_dense = len(schema.dense)
        self.dense_linear = nn.Linear(n_dense, 1) if n_dense else None
        self.mlp = MLP(sum(self.dims) + n_dense, (256, 128), output_dim=1)

    def forward(self, batch) -> torch.Tensor:
        """Logits of shape (B,)."""
        codes = batch.sparse
        vectors = [table(codes[:, j]) for j, table in enumerate(self.tables)]
        logit = self.mlp(torch.cat([*vectors, batch.dense], dim=1)).squeeze(-1)
        for j, table in enumerate(self.linear_tables):
            logit = logit + table(codes[:, j]).squeeze(-1)
        if self.dense_linear is not None:
            logit = logit + self.dense_linear(batch.dense).squeeze(-1)
        return logit


def main() -> None:
    """Run the screen and print one line per data set and rule."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--datasets", default="criteo_8k,avazu_9k,movielens")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)

    for name in args.datasets.split(","):
        data = quality.load_dataset(name)
        if name == "movielens":
            data = quality.without_history(data)
        folds = quality.folds_of(data, 3, args.repeats, 0)
        for rule in args.rules.split(","):
            aucs, losses, epochs, started = [], [], [], time.perf_counter()
            for i, (train, test) in enumerate(folds):
                seed_everything(i)
                clf = CTRClassifier(
                    core=PerFieldDNN,
                    core_params={"rule": rule},
                    features=CTRFeatureTransformer(**data["kinds"]),
                    random_state=i,
                    n_jobs=1,
                )
                clf.fit(data["X"].iloc[train], data["y"][train])
                proba = clf.predict_proba(data["X"].iloc[test])[:, 1]
                fold = quality.scores(data["y"][test], proba)
                aucs.append(fold["auc"])
                losses.append(fold["logloss"])
                epochs.append(len(clf.history_))
            print(
                f"{name:10s} {rule:8s} AUC {np.mean(aucs):.4f} logloss {np.mean(losses):.4f} "
                f"epochs {np.mean(epochs):.1f}  {time.perf_counter() - started:.0f} s  "
                f"sizes {clf.core_.dims}",
                flush=True,
            )


if __name__ == "__main__":
    main()
