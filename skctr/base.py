"""BaseCTRClassifier: the scikit-learn side shared by every skctr model."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    assert_all_finite,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)
from torch import nn

from ._params import MODEL_PARAMS, TRAINING_PARAMS, Param, build_init, params_docstring
from .cores.linear import LogisticRegression
from .nn.embedding import TensorBatch
from .preprocessing.schema import EncodedBatch
from .preprocessing.transformer import CTRFeatureTransformer
from .training.intercept import base_rate_logit, init_intercept
from .training.loop import (
    TrainConfig,
    TrainState,
    make_optimizers,
    predict_logits,
    set_learning_rates,
    to_tensors,
    torch_threads,
    train,
)

_EARLY_STOPPING_MIN_ROWS = 800
#: What ``max_epochs='auto'`` means without and with early stopping.
_AUTO_MAX_EPOCHS = {False: 20, True: 100}
#: With early stopping, a plateau of the validation loss goes back to the best epoch's
#: weights and goes on with every step multiplied by 0.2, up to twice, before training stops
#: (scikit-learn's MLPClassifier divides its step by 5 in its "adaptive" schedule).
_STEP_DECAYS = 2
#: ``linear_learning_rate='auto'``: this many times ``learning_rate``, the ratio of
#: LRClassifier's default step (3e-3) to the other models' (1e-3).
_AUTO_LINEAR_STEP = 3.0

#: Size in bytes of an embedding table above which ``fit`` warns before allocating it
#: (an :class:`EmbeddingMemoryWarning`). Change it with
#: ``skctr.base.EMBEDDING_MEMORY_BUDGET = 8 * 2**30``.
EMBEDDING_MEMORY_BUDGET = 2 * 2**30

#: File name of the checkpoint written after an epoch into ``checkpoint_dir``.
CHECKPOINT_NAME = "epoch_{epoch:04d}.skctr"


class EmbeddingMemoryWarning(UserWarning):
    """An embedding table about to be allocated exceeds :data:`EMBEDDING_MEMORY_BUDGET`."""


_ATTRIBUTES = """    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels; ``classes_[1]`` is the positive class.
    core_ : {core}
        The trained torch module.
    features_ : CTRFeatureTransformer or None
        The fitted encoder (None when fitted on already encoded data).
    history_ : list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``time`` and, with early stopping,
        ``val_logloss``, ``val_auc`` and ``step_scale`` (1, or 0.2 and 0.04 after the
        plateaus that sent training back to the best epoch with smaller steps).
{fallback}    n_features_in_ : int
        Number of input columns seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Input column names, when fitted on a DataFrame with string column names.
"""
_FALLBACK_ATTRIBUTE = """    linear_fallback_ : bool
        Whether ``linear_fallback`` replaced the model by its logistic regression, which
        ``core_`` then is (a :class:`~skctr.cores.LogisticRegression`).
"""


def resolve_device(device: str, owner: str) -> torch.device:
    """The torch device named by the ``device`` parameter (``'auto'``: CUDA if available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"The 'device' parameter of {owner} must name a torch device such as 'cpu', "
            f"'cuda', 'cuda:1', 'mps' or 'auto'. Got {device!r} instead."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{owner}: device={device!r} was requested but CUDA is not available here; "
            "use device='cpu' or device='auto'."
        )
    return resolved


class BaseCTRClassifier(ClassifierMixin, BaseEstimator):
    """Base of every skctr classifier: validation, training, prediction and persistence.

    A subclass names its core (``_core``, a ``torch.nn.Module`` class whose
    ``__init__(schema, *, ...)`` takes hyper-parameters as keyword-only arguments and whose
    ``forward(batch)`` returns logits of shape (B,)) and the parameters it adds to the shared
    ones (``_model_params``), and may change the default of a shared training parameter
    (``_training_defaults``, name to value, added to its parents' own), and leave out
    shared training parameters that mean nothing for it (``_omitted_params``). Its
    ``__init__``,
    ``_parameter_constraints`` and the Parameters section of its docstring (the
    ``{parameters}`` placeholder) are generated from those and from :mod:`skctr._params`.
    Estimator parameters whose names match the core's keyword-only arguments are passed to
    the core.

    ``X`` may be a raw DataFrame or array (encoded by ``features``, a
    :class:`CTRFeatureTransformer`) or the :class:`EncodedBatch` that a transformer earlier
    in a Pipeline produced.
    """

    _core: ClassVar[type[nn.Module] | None] = None
    _model_params: ClassVar[tuple[Param, ...]] = MODEL_PARAMS
    _training_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    _omitted_params: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # a subclass's defaults add to (and may override) its parents'
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            defaults.update(klass.__dict__.get("_training_defaults", {}))
        unknown = set(defaults) - {p.name for p in TRAINING_PARAMS}
        if unknown:
            raise TypeError(
                f"{cls.__name__}._training_defaults names {sorted(unknown)}, not shared "
                "training parameters."
            )
        cls._training_defaults = MappingProxyType(defaults)
        if "__init__" in cls.__dict__:
            return  # a subclass writing its own __init__ opts out of generation
        training = tuple(
            dataclasses.replace(p, default=defaults[p.name]) if p.name in defaults else p
            for p in TRAINING_PARAMS
            if p.name not in cls._omitted_params
        )
        params = (*cls._model_params, *training)
        cls.__init__ = build_init(params)  # type: ignore[method-assign]
        cls._parameter_constraints = {p.name: p.constraints for p in params}
        if cls.__doc__ and "{parameters}" in cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("    {parameters}\n", params_docstring(params))
        if cls.__doc__ and "{attributes}" in cls.__doc__:
            core = cls._core.__name__ if cls._core is not None else "torch.nn.Module"
            fallback = (
                _FALLBACK_ATTRIBUTE if "linear_fallback" in cls._parameter_constraints else ""
            )
            attributes = _ATTRIBUTES.format(core=core, fallback=fallback)
            cls.__doc__ = cls.__doc__.replace("    {attributes}\n", attributes)

    # ---------------------------------------------------------------- helpers
    def _core_class(self) -> type[nn.Module]:
        if getattr(self, "linear_fallback_", False):
            return LogisticRegression
        core = self._core if self._core is not None else getattr(self, "core", None)
        if not (isinstance(core, type) and issubclass(core, nn.Module)):
            raise ValueError(
                f"The 'core' parameter of {type(self).__name__} must be a torch.nn.Module "
                f"subclass whose __init__ takes the FeatureSchema. Got {core!r} instead."
            )
        return core

    def _core_kwargs(self) -> dict[str, Any]:
        """Estimator parameters named like the core's keyword-only arguments, plus
        ``core_params`` where the estimator has it."""
        sig = inspect.signature(self._core_class().__init__)
        params = self.get_params(deep=False)
        kwargs = {
            name: params[name]
            for name, p in sig.parameters.items()
            if p.kind == p.KEYWORD_ONLY and name in params
        }
        if not getattr(self, "linear_fallback_", False):
            kwargs.update(params.get("core_params") or {})
        return kwargs

    def _check_extra_params(self) -> None:
        hidden = self.get_params(deep=False).get("hidden_units")
        if hidden is not None and not all(
            isinstance(h, int | np.integer) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            raise ValueError(
                f"The 'hidden_units' parameter of {type(self).__name__} must be a tuple of "
                f"positive ints, e.g. (256, 128). Got {hidden!r} instead."
            )
        features = self.features
        if features is not None and not (
            hasattr(features, "fit") and hasattr(features, "transform")
        ):
            raise ValueError(
                f"The 'features' parameter of {type(self).__name__} must be a "
                f"CTRFeatureTransformer (or None). Got {features!r} instead."
            )

    def _encode(self, X: Any, *, fit: bool) -> EncodedBatch:
        if isinstance(X, EncodedBatch):
            if fit:
                self.features_ = None
                self.n_features_in_ = X.shape[1]
                self.feature_names_in_ = np.asarray(X.schema.output_names(), dtype=object)
                self._schema = X.schema
            elif X.schema != self._schema:
                raise ValueError(
                    f"{type(self).__name__}: X was encoded with a different schema than the "
                    "one seen during fit (different columns or vocabulary sizes). Encode it "
                    "with the transformer fitted together with this model."
                )
            return X
        if fit:
            features = CTRFeatureTransformer() if self.features is None else clone(self.features)
            encoded = features.fit_transform(X)
            self.features_ = features
            self.n_features_in_ = features.n_features_in_
            if hasattr(features, "feature_names_in_"):
                self.feature_names_in_ = features.feature_names_in_
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            self._schema = features.schema_
            return encoded
        if self.features_ is None:
            raise ValueError(
                f"{type(self).__name__} was fitted on encoded data (the output of a "
                "CTRFeatureTransformer); pass data encoded the same way, or use a Pipeline."
            )
        return self.features_.transform(X)

    def _validate_targets(self, y: Any, n_rows: int) -> np.ndarray:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = column_or_1d(y, warn=True)
        if y.dtype.kind in "fc":
            assert_all_finite(y, input_name="y")
        check_consistent_length(np.empty(n_rows), y)
        check_classification_targets(y)
        return y

    def _set_classes(self, y: np.ndarray, classes: Any = None) -> None:
        classes = np.unique(y) if classes is None else np.unique(np.asarray(classes))
        name = type(self).__name__
        if len(classes) != 2:
            what = "one class" if len(classes) == 1 else f"{len(classes)} classes"
            raise ValueError(
                f"Only binary classification is supported by {name}: y must hold exactly two "
                f"classes, got {what} ({classes.tolist()[:10]}). For more classes use one "
                "model per class (sklearn.multiclass.OneVsRestClassifier)."
            )
        if type_of_target(classes) not in ("binary", "multiclass"):
            raise ValueError(f"{name}: unsupported target type {type_of_target(classes)}.")
        self.classes_ = classes

    def _binary_targets(self, y: np.ndarray) -> np.ndarray:
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"{type(self).__name__}: y contains labels {np.unique(y[unknown]).tolist()[:5]} "
                f"that are not in classes_ {self.classes_.tolist()}."
            )
        return (y == self.classes_[1]).astype(np.float32)

    def _sample_weight(self, sample_weight: Any, n: int) -> np.ndarray:
        # sklearn's check names sample_weight and refuses a wrong length, negative or all-zero
        return _check_sample_weight(
            sample_weight, np.empty((n, 1)), dtype=np.float64, ensure_non_negative=True
        )

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _config(self, early_stopping: bool = False) -> TrainConfig:
        max_epochs = self.max_epochs
        if isinstance(max_epochs, str):  # "auto"
            max_epochs = _AUTO_MAX_EPOCHS[early_stopping]
        return TrainConfig(
            batch_size=self.batch_size,
            max_epochs=max_epochs,
            l2_embedding=self.l2_embedding,
            n_iter_no_change=self.n_iter_no_change,
            verbose=self.verbose,
            device=self._device,
            owner=type(self).__name__,
            clip_grad_norm=self.clip_grad_norm,
            step_decays=_STEP_DECAYS if early_stopping else 0,
        )

    def _learning_rates(self) -> tuple[float, float]:
        """The step of the model and that of its first-order weights.

        Only estimators whose model adds a first-order term to other parts have a
        ``linear_learning_rate``; in the others (LR, whose weights are all first-order, and
        the models without one) every weight takes ``learning_rate``. The logistic
        regression of ``linear_fallback`` takes the first-order step of the model (3 x
        ``learning_rate`` where it has no ``linear_learning_rate``), LRClassifier's
        default step when the model's are the defaults.
        """
        linear = getattr(self, "linear_learning_rate", None)
        fallback = getattr(self, "linear_fallback_", False)
        if linear is None and not fallback:
            return self.learning_rate, self.learning_rate
        if linear in (None, "auto"):
            linear = _AUTO_LINEAR_STEP * self.learning_rate
        if fallback:  # the linear fallback: every weight is first-order
            return float(linear), float(linear)
        return self.learning_rate, float(linear)

    def _checkpoint_writer(self) -> Callable[[dict[str, Any]], None] | None:
        """What the training loop calls after each epoch to save a checkpoint, if any."""
        if self.checkpoint_dir is None:
            return None
        directory = os.fspath(self.checkpoint_dir)
        os.makedirs(directory, exist_ok=True)  # fails now, with the path, not after an epoch
        from .io import save

        def write(record: dict[str, Any]) -> None:
            was_training = self.core_.training
            self.core_.eval()  # a checkpoint loads ready to predict
            try:
                save(self, os.path.join(directory, CHECKPOINT_NAME.format(epoch=record["epoch"])))
            finally:
                self.core_.train(was_training)

        return write

    def _check_memory(self) -> None:
        """Warn before allocating embedding tables larger than the budget."""
        schema = self._schema
        size = self._table_bytes()
        if size <= EMBEDDING_MEMORY_BUDGET:
            return
        fields = [*schema.sparse, *(f for f in schema.sequence if f.shares is None)]
        largest = sorted(fields, key=lambda f: -f.vocab_size)[:3]
        listed = ", ".join(f"{f.name!r} ({f.vocab_size:,} rows)" for f in largest)
        dim = getattr(self, "embedding_dim", None)
        warnings.warn(
            f"{type(self).__name__}: the embedding tables will take {size / 2**20:,.0f} MiB "
            f"({schema.embedding_rows:,} vocabulary rows"
            + (f", embedding_dim={dim}" if dim is not None else "")
            + f"), above the budget of {EMBEDDING_MEMORY_BUDGET / 2**20:,.0f} MiB "
            "(skctr.base.EMBEDDING_MEMORY_BUDGET); Adam keeps two more tables of that size "
            f"while training. The largest vocabularies: {listed}. Reduce it with the "
            "CTRFeatureTransformer's max_categories, min_frequency or hash_buckets (e.g. "
            f"hash_buckets={{{largest[0].name!r}: 1_000_000}}), or a smaller embedding_dim.",
            EmbeddingMemoryWarning,
            stacklevel=4,
        )

    def _table_bytes(self) -> int:
        """Bytes of the core's ``nn.Embedding`` tables, counted on a copy built on the meta
        device (no memory); a core that cannot be built there is estimated from the schema."""
        try:
            with torch.device("meta"):
                core = self._core_class()(self._schema, **self._core_kwargs())
            return sum(
                m.weight.numel() * m.weight.element_size()
                for m in core.modules()
                if isinstance(m, nn.Embedding)
            )
        except Exception:  # a user core doing real work in __init__
            return self._schema.embedding_rows * int(getattr(self, "embedding_dim", 1)) * 4

    def _build(self, seed: int, targets: np.ndarray, weights: np.ndarray) -> None:
        """A fresh core (seeded), its optimisers and an empty history, its output started
        at the click rate of ``targets``."""
        self._check_memory()
        torch.manual_seed(seed)
        self.core_ = self._core_class()(self._schema, **self._core_kwargs()).to(self._device)
        init_intercept(self.core_, base_rate_logit(targets, weights))
        self._state = TrainState(make_optimizers(self.core_, *self._learning_rates()))
        self.history_ = self._state.history

    def _pretrain(
        self, data: Any, targets: np.ndarray, weights: np.ndarray, generator: torch.Generator
    ) -> None:
        """Hook run once after the core is built and before training (e.g. FNN's FM stage)."""

    def _resume(self) -> None:
        self._validate_params()  # partial_fit's later calls come here without fit's check
        self._device = resolve_device(self.device, type(self).__name__)
        self.core_.to(self._device)
        rates = self._learning_rates()
        if not self._state.optimizers:  # e.g. after unpickling
            self._state.optimizers = make_optimizers(self.core_, *rates)
        set_learning_rates(self._state.optimizers, *rates)  # set_params(learning_rate=...)

    # ---------------------------------------------------------------- public API
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BaseCTRClassifier:
        """Fit the feature encoding (unless ``X`` is already encoded) and train the model.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features) or EncodedBatch
            Training rows.
        y : array-like of shape (n_samples,)
            Binary targets (any two labels: ints, strings, bools).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights.

        Returns
        -------
        self : BaseCTRClassifier
            The fitted estimator.
        """
        self._validate_params()
        self._check_extra_params()
        self._device = resolve_device(self.device, type(self).__name__)
        continuing = self.warm_start and hasattr(self, "core_")
        encoded = self._encode(X, fit=not continuing)
        n = len(encoded)
        y = self._validate_targets(y, n)
        if not continuing:
            self._set_classes(y)
        targets = self._binary_targets(y)
        weights = self._sample_weight(sample_weight, n)
        seed = self._seed()
        with torch_threads(self.n_jobs), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if not continuing:
                self.linear_fallback_ = False
                self._build(seed, targets, weights)
            else:
                self._resume()
            data = to_tensors(encoded)
            every_row = (data, targets, weights)  # what a refit trains on
            val = None
            if self._use_early_stopping(n, targets):
                tr, va = train_test_split(
                    np.arange(n),
                    test_size=self.validation_fraction,
                    stratify=targets,
                    random_state=seed,
                )
                idx = torch.as_tensor
                val = (data.index(idx(va)), targets[va], weights[va])
                data, targets, weights = data.index(idx(tr)), targets[tr], weights[tr]
            generator = torch.Generator().manual_seed(seed)
            if not continuing:
                self._pretrain(data, targets, weights, generator)
            config = self._config(early_stopping=val is not None)
            config.on_epoch_end = self._checkpoint_writer()
            train(self.core_, data, targets, weights, self._state, config, generator, val)
            if val is None or continuing or self._state.interrupted:
                return self
            if getattr(self, "linear_fallback", False):
                self._try_linear(data, targets, weights, val, every_row, seed)
                if self._state.interrupted:
                    return self
            if self.linear_fallback_ or self.refit:  # the fallback refits as LRClassifier does
                self._refit(*every_row, seed)
        return self

    def _try_linear(
        self,
        data: TensorBatch,
        targets: np.ndarray,
        weights: np.ndarray,
        val: tuple[TensorBatch, np.ndarray, np.ndarray],
        every_row: tuple[TensorBatch, np.ndarray, np.ndarray],
        seed: int,
    ) -> None:
        """Train the logistic regression of ``linear_fallback`` as ``fit`` trains the model
        (same rows, split and seed; its intercept started at the click rate of every row,
        as the model's was) and keep it if its validation log-loss is lower by more than
        the early-stopping tolerance."""
        model = (self.core_, self._state)
        self.linear_fallback_ = True
        config = self._config(early_stopping=True)
        self._train_fresh(data, targets, weights, seed, config, val, every_row[1:])
        linear_loss, model_loss = self._state.val_logloss, model[1].val_logloss
        better = linear_loss < model_loss - config.tol
        if self.verbose:
            kept = "the logistic regression" if better else "the model"
            print(
                f"{type(self).__name__}: validation log-loss {model_loss} (model), "
                f"{linear_loss} (logistic regression): keeping {kept} (linear_fallback)"
            )
        if better and not self._state.interrupted:
            return
        model[1].epochs_done = self._state.epochs_done
        model[1].interrupted = self._state.interrupted  # then fit does not refit either
        self.core_, self._state = model
        self.linear_fallback_ = False

    def _refit(
        self, data: TensorBatch, targets: np.ndarray, weights: np.ndarray, seed: int
    ) -> None:
        """Train a fresh core on every row along the path early stopping kept (``refit``)."""
        if not self._state.path:  # no epoch was kept (e.g. the first one diverged)
            return
        config = self._config()
        config.refit_path = list(self._state.path)
        self._train_fresh(data, targets, weights, seed, config)

    def _train_fresh(
        self,
        data: TensorBatch,
        targets: np.ndarray,
        weights: np.ndarray,
        seed: int,
        config: TrainConfig,
        val: tuple[TensorBatch, np.ndarray, np.ndarray] | None = None,
        base_rate_of: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Build a fresh core (seeded; its output started at the click rate of
        ``base_rate_of``, default ``targets``), pre-train it unless it is the linear
        fallback, and train it, continuing this fit's history and epoch count (its passes,
        and checkpoints' names, come after the earlier ones): a refit's run and the linear
        fallback's."""
        history, done = self._state.history, self._state.epochs_done
        self._build(seed, *(base_rate_of or (targets, weights)))
        generator = torch.Generator().manual_seed(seed)
        if not self.linear_fallback_:
            self._pretrain(data, targets, weights, generator)
        self._state.history, self._state.epochs_done, self.history_ = history, done, history
        config.marks = {"linear": True} if self.linear_fallback_ else {}
        config.on_epoch_end = self._checkpoint_writer()
        train(self.core_, data, targets, weights, self._state, config, generator, val)

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> BaseCTRClassifier:
        """Train for one epoch on ``X``; the first call also fits the feature encoding.

        The vocabularies and scaling are fitted on the first chunk and then frozen: later
        chunks' unseen categories map to the out-of-vocabulary code. Early stopping does not
        apply.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features) or EncodedBatch
            A chunk of training rows.
        y : array-like of shape (n_samples,)
            Binary targets.
        classes : array-like of shape (2,), default=None
            Both labels; required on the first call when the first chunk holds one class.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights.

        Returns
        -------
        self : BaseCTRClassifier
            The updated estimator.
        """
        first = not hasattr(self, "core_")
        if first:
            self._validate_params()
            self._check_extra_params()
            self._device = resolve_device(self.device, type(self).__name__)
        encoded = self._encode(X, fit=first)
        n = len(encoded)
        y = self._validate_targets(y, n)
        if first:
            self._set_classes(y, classes)
        targets = self._binary_targets(y)
        weights = self._sample_weight(sample_weight, n)
        seed = self._seed()
        with torch_threads(self.n_jobs), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if first:
                self.linear_fallback_ = False
                self._build(seed, targets, weights)
            else:
                self._resume()
            config = self._config()
            config.max_epochs = 1
            config.on_epoch_end = self._checkpoint_writer()
            generator = torch.Generator().manual_seed(seed + self._state.epochs_done)
            train(self.core_, to_tensors(encoded), targets, weights, self._state, config, generator)
        return self

    def _use_early_stopping(self, n: int, targets: np.ndarray) -> bool:
        if self.early_stopping == "auto":
            enabled = n >= _EARLY_STOPPING_MIN_ROWS
        else:
            enabled = bool(self.early_stopping)
        if not enabled:
            return False
        n_val = int(np.ceil(n * self.validation_fraction))
        counts = np.bincount(targets.astype(np.int64), minlength=2)
        if n_val < 2 or counts.min() < 2:
            raise ValueError(
                f"{type(self).__name__}: early stopping needs a validation split with both "
                f"classes, but {n} rows x validation_fraction={self.validation_fraction} "
                f"gives {n_val} rows and the rarer class has {counts.min()} rows. Set "
                "early_stopping=False or raise validation_fraction."
            )
        return True

    def decision_function(self, X: Any) -> np.ndarray:
        """Logit of the positive class (``classes_[1]``) for each row.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features) or EncodedBatch
            Rows to score.

        Returns
        -------
        ndarray of shape (n_samples,)
            Logits; ``predict_proba(X)[:, 1] == sigmoid(decision_function(X))``.
        """
        check_is_fitted(self, "core_")
        encoded = self._encode(X, fit=False)
        with torch_threads(self.n_jobs):
            return predict_logits(self.core_, to_tensors(encoded))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class for each row.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features) or EncodedBatch
            Rows to score.

        Returns
        -------
        ndarray of shape (n_samples, 2)
            Columns in the order of ``classes_``.
        """
        logits = self.decision_function(X)
        p = 1.0 / (1.0 + np.exp(-np.clip(logits, -500, 500)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The more probable class of each row.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features) or EncodedBatch
            Rows to classify.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(np.int64)]

    # ---------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        core = state.get("core_")
        if core is not None and any(p.device.type != "cpu" for p in core.parameters()):
            state["core_"] = copy.deepcopy(core).cpu()
        if "_state" in state:
            # optimiser moments are not part of a saved model: training resumed after
            # loading starts them afresh
            train_state = copy.copy(state["_state"])
            train_state.optimizers = []
            state["_state"] = train_state
        state.pop("_device", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # a model pickled by an earlier skctr lacks the parameters added since: give them
        # their defaults, so get_params, repr and clone keep working
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if param.default is not param.empty and name not in self.__dict__:
                setattr(self, name, param.default)
        if "core_" in state:
            self._device = next(self.core_.parameters()).device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.classifier_tags.multi_class = False
        return tags
