"""Build a new model from skctr.nn blocks, train it and tune it like any sklearn estimator.

The model, "FM + cross": a factorization machine (first-order weights and every pairwise
interaction) plus a cross network on the stacked embeddings for the higher-order ones.
Wrapped in CTRClassifier it gets skctr's feature encoding, training loop, early stopping
and sklearn API, so GridSearchCV tunes it directly. Runs in under a minute on a laptop CPU.

Run: python examples/custom_model.py
"""

from __future__ import annotations

import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV

from skctr import CTRFeatureTransformer
from skctr.datasets import load_criteo_8k
from skctr.estimators import CTRClassifier
from skctr.nn import CrossNetwork, FactorizationMachine
from skctr.nn.embedding import FieldEmbedding, LinearTerm


class FMCross(torch.nn.Module):
    """logit = linear(x) + FM(E) + w . CrossNetwork(flatten(E)), E: (B, F, K) embeddings."""

    def __init__(self, schema, *, embedding_dim=8, cross_layers=2):
        super().__init__()
        self.embedding = FieldEmbedding(schema, embedding_dim)  # one fused table, all fields
        self.linear = LinearTerm(schema)  # first-order weights and bias
        self.fm = FactorizationMachine()
        self.cross = CrossNetwork(schema.num_fields * embedding_dim, cross_layers)
        self.head = torch.nn.Linear(self.cross.output_dim, 1)

    def forward(self, batch):  # returns logits (B,): no sigmoid, the training loop owns the loss
        fields = self.embedding(batch)  # (B, F, K)
        cross = self.head(self.cross(fields.flatten(1))).squeeze(-1)
        return self.linear(batch) + self.fm(fields) + cross


X, y = load_criteo_8k(return_X_y=True)
X_test, y_test = load_criteo_8k("test", return_X_y=True)

clf = CTRClassifier(
    core=FMCross,
    embedding_dim=8,  # a shared parameter: it reaches the core because the core names it
    features=CTRFeatureTransformer(log_transform=True),
    n_jobs=1,
    random_state=0,
)
grid = {
    "core_params": [{"cross_layers": 1}, {"cross_layers": 3}],  # the core's own arguments
    "features__min_frequency": [1, 5],  # the encoder is tuned together with the model
}
search = GridSearchCV(clf, grid, scoring="roc_auc", cv=2, n_jobs=2).fit(X, y)
print(f"best parameters: {search.best_params_} (cross-validated AUC {search.best_score_:.4f})")
auc = roc_auc_score(y_test, search.predict_proba(X_test)[:, 1])
print(f"test AUC of the refitted best model: {auc:.4f}")
