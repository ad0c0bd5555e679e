"""The classifiers: each names its core and the parameters it adds to the shared ones.

Adding an architecture = a core in :mod:`skctr.cores` plus a short class here; tests and
docs find every classifier through :func:`all_classifiers`.
"""

from __future__ import annotations

import numbers
import sys
from types import MappingProxyType

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._compat import Interval, StrOptions
from ._params import MODEL_PARAMS, Param
from .base import BaseCTRClassifier
from .cores import DeepFM, FactorizationMachineModel, LogisticRegression
from .cores.afm import AFM
from .cores.autoint import AutoInt
from .cores.dcn import DCN
from .cores.din import DIN
from .cores.fnn import FNN
from .cores.mlr import MixedLogisticRegression
from .cores.nfm import NFM
from .cores.pnn import PNN
from .cores.wdl import WideDeep
from .cores.xdeepfm import XDeepFM
from .nn import pairwise_indices
from .training.intercept import base_rate_logit, init_intercept
from .training.loop import TrainState, make_optimizers, to_tensors, torch_threads, train

INTERACT_DENSE = Param(
    "interact_dense",
    True,
    ["boolean"],
    "bool",
    """Whether dense fields take part in the interaction layers as vectors ``x * v`` (the
    paper's model) or reach only the MLP (and the linear term where there is one), as in
    DeepCTR. False makes the interaction layers, whose cost grows with the square of the
    number of fields, cheaper when there are many dense columns (13 of Criteo's 39 fields);
    it needs ``hidden_units`` when the model has no linear term.""",
)

SEQUENCE_POOLING = Param(
    "sequence_pooling",
    "mean",
    [StrOptions({"mean", "sum", "max"})],
    "{'mean', 'sum', 'max'}",
    "How each sequence column is pooled into one field vector.",
)
EMBEDDING_DIM = MODEL_PARAMS[0]
LINEAR_LEARNING_RATE = Param(
    "linear_learning_rate",
    "auto",
    [StrOptions({"auto"}), Interval(numbers.Real, 0, None, closed="neither")],
    "float or 'auto'",
    """Step size of the first-order weights (one per category and per dense field, the
    bias, and Wide & Deep's cross weights: the parameters of every module of the core
    whose ``first_order`` attribute is True, as :class:`~skctr.nn.embedding.LinearTerm`'s
    is). ``'auto'``: 3 x ``learning_rate``. That part is a logistic regression, convex
    and slow to converge at the step of the rest of the model, which early stopping
    halts after a few passes; :class:`LRClassifier` takes ``learning_rate=3e-3`` for the
    same reason. FNN's first-order weights, inputs of its MLP, take it too: they are the
    first-order weights of the FM it is pre-trained as.""",
)


class CTRClassifier(BaseCTRClassifier):
    """Any torch core as a scikit-learn classifier, with skctr's training and encoding.

    Build a core from :mod:`skctr.nn` blocks, with ``__init__(self, schema, *, ...)`` taking
    the :class:`~skctr.preprocessing.FeatureSchema` positionally and hyper-parameters as
    keyword-only arguments, and ``forward(batch)`` returning logits of shape (B,). The
    shared parameters below (``embedding_dim``, ``hidden_units``, ...) reach the core when
    its ``__init__`` names them; anything else goes in ``core_params``.

    {parameters}
    {attributes}
    Examples
    --------
    >>> import torch
    >>> from skctr import CTRClassifier
    >>> from skctr.nn import MLP
    >>> from skctr.nn.embedding import FieldEmbedding
    >>> class Tiny(torch.nn.Module):
    ...     def __init__(self, schema, *, embedding_dim=8):
    ...         super().__init__()
    ...         self.embed = FieldEmbedding(schema, embedding_dim)
    ...         self.mlp = MLP(schema.num_fields * embedding_dim, (16,), output_dim=1)
    ...     def forward(self, batch):
    ...         return self.mlp(self.embed(batch).flatten(1)).squeeze(-1)
    >>> clf = CTRClassifier(core=Tiny, embedding_dim=4, max_epochs=2, random_state=0)
    """

    _model_params = (
        Param(
            "core",
            None,
            "no_validation",
            "type of torch.nn.Module",
            "The core class; it is instantiated in ``fit`` with the schema.",
        ),
        Param(
            "core_params",
            None,
            [dict, None],
            "dict or None",
            "Extra keyword arguments for the core.",
        ),
        *MODEL_PARAMS,
        LINEAR_LEARNING_RATE,
    )


class LRClassifier(BaseCTRClassifier):
    """Logistic regression on embeddings of size 1: the baseline every model must beat.

    One weight per category (a one-hot logistic regression trained by Adam with early
    stopping), per dense field and per sequence item (pooled). Its loss is convex in its
    weights and it takes a larger default step (``learning_rate=3e-3``) than most models:
    at 1e-3 it ran out of ``max_epochs`` with the validation loss still falling, and the
    larger step scored better on all three benchmark sets (docs: "Default parameters and
    why"). By default the first-order term of the other models takes the same step
    (``linear_learning_rate='auto'``).

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr import LRClassifier
    >>> from skctr.datasets import load_avazu_9k
    >>> X, y = load_avazu_9k(return_X_y=True)
    >>> LRClassifier(random_state=0).fit(X, y).predict_proba(X.head(3)).shape
    (3, 2)
    """

    _core = LogisticRegression
    _model_params = (SEQUENCE_POOLING,)
    _training_defaults = MappingProxyType({"learning_rate": 3e-3, "refit": True})
    _omitted_params = frozenset({"linear_fallback"})  # it is the fallback


class FMClassifier(BaseCTRClassifier):
    """Factorization machine: first-order weights plus factorised pairwise interactions.

    Paper: Rendle, "Factorization Machines", ICDM 2010.

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr import FMClassifier
    >>> from skctr.datasets import load_avazu_9k
    >>> X, y = load_avazu_9k(return_X_y=True)
    >>> FMClassifier(random_state=0).fit(X, y).predict_proba(X.head(3)).shape
    (3, 2)
    """

    _core = FactorizationMachineModel
    _model_params = (EMBEDDING_DIM, SEQUENCE_POOLING, LINEAR_LEARNING_RATE)
    _training_defaults = MappingProxyType({"refit": True})


class DeepFMClassifier(BaseCTRClassifier):
    """DeepFM: factorization machine + deep network on one shared embedding.

    The FM part models first-order effects and all pairwise interactions between fields in
    O(k·n); the MLP part learns higher-order interactions from the same embeddings.
    Sequence columns are pooled into one vector each and take part in both.
    Paper: Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR
    Prediction", IJCAI 2017 (arXiv:1703.04247).

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr import DeepFMClassifier
    >>> from skctr.datasets import load_criteo_8k
    >>> X, y = load_criteo_8k(return_X_y=True)
    >>> clf = DeepFMClassifier(random_state=0).fit(X, y)
    >>> clf.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _core = DeepFM
    _model_params = (*MODEL_PARAMS, SEQUENCE_POOLING, LINEAR_LEARNING_RATE)


_POSITIVE_INT = [Interval(numbers.Integral, 1, None, closed="left")]
_ACTIVATION = MODEL_PARAMS[3].constraints


class DCNClassifier(BaseCTRClassifier):
    """Deep & Cross Network: a cross network and an MLP in parallel on the embeddings.

    The cross network multiplies the stacked embeddings ``x0`` with each layer's output, so
    ``cross_num`` layers model every feature interaction up to degree ``cross_num + 1`` with
    few parameters; an MLP on the same ``x0`` learns implicit interactions, and a linear
    layer on both outputs gives the logit. ``cross_parameterization="matrix"`` gives each
    cross layer a full weight matrix (DCN-M / DCN-V2). Sequence columns are pooled into one
    vector each.
    Paper: Wang, Fu, Fu and Wang, "Deep & Cross Network for Ad Click Predictions", ADKDD 2017
    (arXiv:1708.05123); matrix form: Wang et al., "DCN V2: Improved Deep & Cross Network and
    Practical Lessons for Web-scale Learning to Rank Systems", WWW 2021 (arXiv:2008.13535).

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr.estimators import DCNClassifier
    >>> from skctr.datasets import load_criteo_8k
    >>> X, y = load_criteo_8k(return_X_y=True)
    >>> clf = DCNClassifier(cross_num=3, random_state=0).fit(X, y)
    >>> clf.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _core = DCN
    _model_params = (
        *MODEL_PARAMS,
        Param(
            "cross_num",
            2,
            _POSITIVE_INT,
            "int",
            "Number of cross layers; layer ``l`` models interactions up to degree ``l + 1``.",
        ),
        Param(
            "cross_parameterization",
            "vector",
            [StrOptions({"vector", "matrix"})],
            "{'vector', 'matrix'}",
            """Weight of each cross layer: a vector of size D (DCN, ``x0 * (x_l . w_l)``) or
            a D x D matrix (DCN-M / DCN-V2, ``x0 ⊙ (W_l x_l)``), where D is the number of
            fields times ``embedding_dim``.""",
        ),
        SEQUENCE_POOLING,
    )


class DINClassifier(BaseCTRClassifier):
    """Deep Interest Network: the user's behaviour history weighted by its relevance to the ad.

    For each candidate field in ``history_features`` (such as ``item_id`` and ``cate_id``)
    the history column that shares its vocabulary (``hist_item_id``, ``hist_cate_id``: a
    column ``hist_<col>`` of lists shares ``<col>``'s by default) is pooled with attention:
    a local activation unit scores each past item against the candidate and the history
    becomes the score-weighted sum of its items, unnormalised as in the paper so that it
    keeps the intensity of the interest. Several histories are attended to jointly, item by
    item, with the candidate's fields concatenated. All field vectors then feed an MLP
    (Dice activations by default, as in the paper). Other sequence columns are pooled by
    ``sequence_pooling``; without any history the model is an embedding + MLP network.
    Paper: Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018
    (arXiv:1706.06978).

    {parameters}
    {attributes}
    Examples
    --------
    >>> import pandas as pd
    >>> from skctr.estimators import DINClassifier
    >>> X = pd.DataFrame({
    ...     "item_id": [1, 2, 3, 2], "cate_id": [10, 20, 10, 20],
    ...     "hist_item_id": [[2, 3], [1], [3, 1, 2], []],
    ...     "hist_cate_id": [[20, 10], [10], [10, 10, 20], []],
    ... })
    >>> clf = DINClassifier(hidden_units=(16,), random_state=0).fit(X, [1, 0, 1, 0])
    >>> clf.predict_proba(X).shape
    (4, 2)
    """

    _core = DIN
    _model_params = (
        *MODEL_PARAMS[:3],
        Param(
            "activation",
            "dice",
            _ACTIVATION,
            "str",
            "Activation of the MLP's hidden layers (Dice, the paper's data-adaptive PReLU).",
        ),
        Param(
            "history_features",
            None,
            [list, tuple, None],
            "tuple of str or None",
            """Candidate sparse columns whose behaviour histories are attended to, e.g.
            ``("item_id", "cate_id")``. Each needs a sequence column sharing its vocabulary
            (``hist_item_id``). ``None``: every sparse column that a sequence shares.""",
        ),
        Param(
            "att_hidden_units",
            (80, 40),
            [list, tuple],
            "tuple of int",
            "Widths of the hidden layers of the local activation unit (the attention MLP).",
        ),
        Param(
            "att_activation",
            "dice",
            _ACTIVATION,
            "str",
            "Activation of the local activation unit's hidden layers.",
        ),
        Param(
            "att_weight_normalization",
            False,
            ["boolean"],
            "bool",
            """Softmax the attention scores over each history. The paper keeps them
            unnormalised, so that the pooled history reflects how strong the interest is.""",
        ),
        SEQUENCE_POOLING,
    )


class XDeepFMClassifier(BaseCTRClassifier):
    """xDeepFM: linear term + Compressed Interaction Network + MLP on one shared embedding.

    The CIN builds explicit interactions between whole field vectors: each layer takes the
    outer products of the previous layer's feature maps with the field embeddings and
    compresses them into ``cin_layer_sizes[k]`` maps, so layer ``k`` holds interactions of
    degree ``k + 2``; the maps are sum-pooled into a logit. The MLP learns implicit
    interactions from the same embeddings; the linear, CIN and MLP logits are added.
    Sequence columns are pooled into one vector each.
    Paper: Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for
    Recommender Systems", KDD 2018 (arXiv:1803.05170).

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr.estimators import XDeepFMClassifier
    >>> from skctr.datasets import load_criteo_8k
    >>> X, y = load_criteo_8k(return_X_y=True)
    >>> clf = XDeepFMClassifier(cin_layer_sizes=(64, 64), random_state=0).fit(X, y)
    >>> clf.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _core = XDeepFM
    _model_params = (
        *MODEL_PARAMS,
        Param(
            "cin_layer_sizes",
            (128, 128),
            [list, tuple],
            "tuple of int",
            "Number of feature maps of each CIN layer (even, but for the last, when "
            "``cin_split_half``).",
        ),
        Param(
            "cin_split_half",
            True,
            ["boolean"],
            "bool",
            """Each CIN layer but the last passes half of its maps to the next layer and
            sum-pools the other half into the output (the paper's setting); False: every map
            does both.""",
        ),
        Param(
            "cin_activation",
            "identity",
            _ACTIVATION,
            "str",
            "Activation of the CIN feature maps; the paper finds none (identity) works best.",
        ),
        INTERACT_DENSE,
        SEQUENCE_POOLING,
        LINEAR_LEARNING_RATE,
    )


class AutoIntClassifier(BaseCTRClassifier):
    """AutoInt: multi-head self-attention between fields learns their interactions.

    Each interacting layer lets every field vector attend to all the others (``att_head_num``
    heads of width ``att_embedding_dim``, with a residual connection), so ``att_layer_num``
    stacked layers model interactions of growing order; the last layer's field vectors are
    concatenated into a linear output. With the default ``hidden_units=(256, 128)`` an MLP
    on the embeddings runs next to the attention and its logit is summed in: the paper's
    AutoInt+, its strongest variant; ``hidden_units=()`` is the paper's plain AutoInt.
    Sequence columns are pooled into one vector each.
    Paper: Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive
    Neural Networks", CIKM 2019 (arXiv:1810.11921).

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr.estimators import AutoIntClassifier
    >>> from skctr.datasets import load_criteo_8k
    >>> X, y = load_criteo_8k(return_X_y=True)
    >>> clf = AutoIntClassifier(att_layer_num=2, random_state=0).fit(X, y)
    >>> clf.predict_proba(X.head(2)).shape
    (2, 2)
    >>> plain = AutoIntClassifier(hidden_units=())  # the paper's AutoInt, no MLP
    """

    _core = AutoInt
    _model_params = (
        EMBEDDING_DIM,
        Param(
            "hidden_units",
            (256, 128),
            [list, tuple],
            "tuple of int",
            """Widths of the hidden layers of an MLP run next to the attention layers, its
            logit added (AutoInt+, the default); ``()`` is the paper's plain AutoInt.""",
        ),
        *MODEL_PARAMS[2:],
        Param(
            "att_layer_num",
            3,
            _POSITIVE_INT,
            "int",
            "Number of stacked interacting (self-attention) layers.",
        ),
        Param("att_head_num", 2, _POSITIVE_INT, "int", "Attention heads per layer."),
        Param(
            "att_embedding_dim",
            8,
            _POSITIVE_INT,
            "int",
            "Width of each head; a layer outputs ``att_head_num * att_embedding_dim`` per field.",
        ),
        Param(
            "att_res",
            True,
            ["boolean"],
            "bool",
            "Add a projection of each layer's input to its output (residual connection).",
        ),
        INTERACT_DENSE,
        SEQUENCE_POOLING,
    )


_DROPOUT_RATE = [Interval(numbers.Real, 0, 1, closed="left")]


class FNNClassifier(BaseCTRClassifier):
    """FNN: an MLP on the field vectors of a factorization machine, pre-trained as one.

    Each field enters the MLP as its FM parameters, a first-order weight and a factor
    vector. With ``pretrain_fm=True`` (the paper's recipe), ``fit`` first trains a
    factorization machine of the same ``embedding_dim`` for ``pretrain_epochs`` epochs on
    the training rows (the same loop, learning rates, batch size and seed) and copies its
    weights and vectors into the network before training it; ``partial_fit`` and
    ``warm_start`` continuation skip that stage. Sequence columns are pooled into one vector
    (and one weight) each.
    Paper: Zhang, Du and Wang, "Deep Learning over Multi-field Categorical Data: A Case
    Study on User Response Prediction", ECIR 2016 (arXiv:1601.02376).

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr.estimators import FNNClassifier
    >>> from skctr.datasets import load_criteo_8k
    >>> X, y = load_criteo_8k(return_X_y=True)
    >>> clf = FNNClassifier(pretrain_epochs=2, random_state=0).fit(X, y)
    >>> clf.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _core = FNN
    _model_params = (
        *MODEL_PARAMS,
        Param(
            "pretrain_fm",
            True,
            ["boolean"],
            "bool",
            """Initialise the first-order weights and the embeddings from a factorization
            machine trained first on the same rows; False starts from random vectors.""",
        ),
        Param(
            "pretrain_epochs",
            2,
            _POSITIVE_INT,
            "int",
            "Epochs of the factorization-machine pre-training.",
        ),
        SEQUENCE_POOLING,
        LINEAR_LEARNING_RATE,
    )

    def _pretrain(self, data, targets, weights, generator) -> None:
        if not self.pretrain_fm:
            return
        fm = FactorizationMachineModel(
            self._schema,
            embedding_dim=self.embedding_dim,
            sequence_pooling=self.sequence_pooling,
        ).to(self._device)
        init_intercept(fm, base_rate_logit(targets, weights))
        config = self._config()
        config.max_epochs = self.pretrain_epochs
        config.owner = f"{type(self).__name__} (FM pre-training)"
        state = TrainState(make_optimizers(fm, *self._learning_rates()))
        train(fm, data, targets, weights, state, config, generator)
        self.core_.linear.load_state_dict(fm.linear.state_dict())
        self.core_.embedding.load_state_dict(fm.embedding.state_dict())


class PNNClassifier(BaseCTRClassifier):
    """PNN: products of every field pair, next to the embeddings, feed an MLP.

    The product layer passes the MLP the concatenated field vectors (the linear signal) and
    one number per field pair: the inner product of the two vectors (IPNN), a learnt kernel
    product ``e_i^T W_ij e_j`` (OPNN, in the kernel form of the journal version) or both.
    Sequence columns are pooled into one vector each.
    Paper: Qu et al., "Product-based Neural Networks for User Response Prediction",
    ICDM 2016 (arXiv:1611.00144); kernel products: Qu et al., "Product-Based Neural
    Networks for User Response Prediction over Multi-Field Categorical Data", ACM TOIS 2018.

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr.estimators import PNNClassifier
    >>> from skctr.datasets import load_criteo_8k
    >>> X, y = load_criteo_8k(return_X_y=True)
    >>> clf = PNNClassifier(product_type="both", kernel_type="vec", random_state=0).fit(X, y)
    >>> clf.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _core = PNN
    _model_params = (
        *MODEL_PARAMS,
        Param(
            "product_type",
            "inner",
            [StrOptions({"inner", "outer", "both"})],
            "{'inner', 'outer', 'both'}",
            """Pairwise products fed to the MLP: inner products (IPNN), kernel products
            (OPNN) or both.""",
        ),
        Param(
            "kernel_type",
            "mat",
            [StrOptions({"mat", "vec", "num"})],
            "{'mat', 'vec', 'num'}",
            """Kernel of each field pair's outer product: a full K x K matrix, a diagonal
            (K weights) or a scalar; used with ``product_type`` 'outer' or 'both'.""",
        ),
        SEQUENCE_POOLING,
    )


class WDLClassifier(BaseCTRClassifier):
    """Wide & Deep: a linear model on raw and crossed columns plus an MLP on embeddings.

    The wide part is a logistic regression on every field and on the declared crosses:
    each cross (a tuple of sparse columns) is hashed, from the columns' codes inside the
    model, into ``cross_buckets`` weights of its own, so a specific combination such as
    (user segment, ad category) gets its own weight with no extra preprocessing step. The
    deep part is an MLP on the field embeddings; the two logits are added and trained
    jointly. Sequence columns are pooled into one vector (and one wide weight) each.
    Paper: Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016
    (arXiv:1606.07792).

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr.estimators import WDLClassifier
    >>> from skctr.datasets import load_avazu_9k
    >>> X, y = load_avazu_9k(return_X_y=True)
    >>> clf = WDLClassifier(
    ...     cross_features=(("site_category", "app_category"), ("device_type", "C1")),
    ...     random_state=0,
    ... ).fit(X, y)
    >>> clf.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _core = WideDeep
    _model_params = (
        *MODEL_PARAMS,
        Param(
            "cross_features",
            (),
            [list, tuple],
            "tuple of tuple of str",
            """Crosses of the wide part, each a tuple of sparse column names, e.g.
            ``(("user_segment", "ad_category"),)``. A numerical column must be binned
            (``features=CTRFeatureTransformer(n_bins=...)``) to be crossed.""",
        ),
        Param(
            "cross_buckets",
            10000,
            _POSITIVE_INT,
            "int",
            """Hash buckets (wide weights) of each cross; combinations that hash alike share
            a weight.""",
        ),
        SEQUENCE_POOLING,
        LINEAR_LEARNING_RATE,
    )


class MLRClassifier(BaseCTRClassifier):
    """MLR / LS-PLM: a softmax over regions, a logistic regression in each.

    The model divides the feature space softly into ``region_num`` regions with a linear
    softmax gate and fits one logistic regression per region:
    ``p = sum_i softmax(u·x)_i * sigmoid(w_i·x)``, a piece-wise linear model that can learn
    effects whose sign depends on a context column (the gate may see other columns than the
    regional models: ``region_features`` and ``base_features``). ``decision_function``
    returns the logit of that mixture. Sequence columns are pooled into one weight each.
    Paper: Gai et al., "Learning Piece-wise Linear Models from Large Scale Data for Ad
    Click Prediction", 2017 (arXiv:1704.05194).

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr.estimators import MLRClassifier
    >>> from skctr.datasets import load_avazu_9k
    >>> X, y = load_avazu_9k(return_X_y=True)
    >>> clf = MLRClassifier(region_num=4, region_features=["site_category", "device_type"],
    ...                     random_state=0).fit(X, y)
    >>> clf.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _core = MixedLogisticRegression
    _training_defaults = MappingProxyType({"refit": True})
    _model_params = (
        Param("region_num", 4, _POSITIVE_INT, "int", "Number of regions (pieces); 1 is LR."),
        Param(
            "region_features",
            None,
            [list, tuple, None],
            "list of str or None",
            "Columns that feed the region gate (softmax); ``None``: every column.",
        ),
        Param(
            "base_features",
            None,
            [list, tuple, None],
            "list of str or None",
            "Columns that feed each region's logistic regression; ``None``: every column.",
        ),
        SEQUENCE_POOLING,
    )


class NFMClassifier(BaseCTRClassifier):
    """NFM: an MLP over the bi-interaction pooling of the field embeddings, plus a linear term.

    The bi-interaction layer sums the element-wise products of every pair of field vectors
    into one vector of size ``embedding_dim`` (a factorization machine that keeps the
    dimensions apart); an MLP on it models higher-order interactions, and its logit is
    added to the first-order term. With ``hidden_units=()`` it is a factorization machine
    with a learnt weight per dimension. Sequence columns are pooled into one vector each.
    Paper: He and Chua, "Neural Factorization Machines for Sparse Predictive Analytics",
    SIGIR 2017 (arXiv:1708.05027).

    {parameters}
    {attributes}
    Examples
    --------
    >>> from skctr.estimators import NFMClassifier
    >>> from skctr.datasets import load_criteo_8k
    >>> X, y = load_criteo_8k(return_X_y=True)
    >>> clf = NFMClassifier(hidden_units=(64,), bi_dropout=0.2, random_state=0).fit(X, y)
    >>> clf.predict_proba(X.head(2)).shape
    (2, 2)
    """

    _core = NFM
    _model_params = (
        *MODEL_PARAMS,
        Param("bi_dropout", 0.0, _DROPOUT_RATE, "float", "Dropout on the bi-interaction vector."),
        SEQUENCE_POOLING,
        LINEAR_LEARNING_RATE,
    )


class AFMClassifier(BaseCTRClassifier):
    """AFM: a factorization machine whose pairwise interactions are weighted by attention.

    The element-wise product of every pair of field vectors is scored by a small attention
    network; the products are summed with the softmax of those scores as weights and
    projected to a logit, added to the first-order term. The weights say which field pairs
    matter for a row: :meth:`attention_weights` returns them and ``pair_names_`` names the
    pairs. Sequence columns are pooled into one vector each.
    Paper: Xiao et al., "Attentional Factorization Machines: Learning the Weight of Feature
    Interactions via Attention Networks", IJCAI 2017 (arXiv:1708.04617).

    {parameters}
    {attributes}
    pair_names_ : list of tuple of str
        The two fields of each pair, in the column order of :meth:`attention_weights`.

    Examples
    --------
    >>> import pandas as pd
    >>> from skctr.estimators import AFMClassifier
    >>> from skctr.datasets import load_avazu_9k
    >>> X, y = load_avazu_9k(return_X_y=True)
    >>> clf = AFMClassifier(random_state=0).fit(X, y)
    >>> weights = clf.attention_weights(X.head(100))
    >>> weights.shape == (100, len(clf.pair_names_))
    True
    >>> mean = pd.Series(weights.mean(axis=0), index=pd.MultiIndex.from_tuples(clf.pair_names_))
    """

    _core = AFM
    _training_defaults = MappingProxyType({"refit": True})
    _model_params = (
        EMBEDDING_DIM,
        Param("attention_dim", 8, _POSITIVE_INT, "int", "Width of the attention network."),
        Param(
            "attention_dropout",
            0.0,
            _DROPOUT_RATE,
            "float",
            "Dropout on the attention-pooled interaction vector.",
        ),
        SEQUENCE_POOLING,
        LINEAR_LEARNING_RATE,
    )

    @property
    def pair_names_(self) -> list[tuple[str, str]]:
        """The (field, field) names of each pair, in the order of :meth:`attention_weights`."""
        check_is_fitted(self, "core_")
        schema = self._schema
        names = [f.name for f in (*schema.sparse, *schema.dense, *schema.sequence)]
        row, col = pairwise_indices(len(names))
        return [(names[i], names[j]) for i, j in zip(row.tolist(), col.tolist(), strict=True)]

    def attention_weights(self, X) -> np.ndarray:
        """Attention weight of each field pair for each row.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features) or EncodedBatch
            Rows to explain, encoded as :meth:`predict_proba` encodes them.

        Returns
        -------
        ndarray of shape (n_samples, n_pairs)
            Each row sums to one (with at least two fields); column ``p`` is the pair
            ``pair_names_[p]``.
        """
        check_is_fitted(self, "core_")
        data = to_tensors(self._encode(X, fit=False))
        n_pairs = len(self.pair_names_)
        chunks = [torch.zeros(0, n_pairs)]
        self.core_.eval()
        with torch_threads(self.n_jobs), torch.no_grad():
            for start in range(0, data.num_rows, 65536):
                batch = data.slice(start, start + 65536).to(self._device)
                chunks.append(self.core_.attention(batch).float().cpu())
        return torch.cat(chunks).double().numpy()


def all_classifiers() -> list[type[BaseCTRClassifier]]:
    """Every built-in classifier with a fixed architecture, in definition order.

    Returns
    -------
    list of type
        The classes; :class:`CTRClassifier` (which needs a user core) is not included.
    """
    module = sys.modules[__name__]
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseCTRClassifier)
        and obj.__module__ == __name__
        and obj._core is not None
    ]
