"""The one table of the parameters every skctr classifier shares.

Each :class:`Param` carries its default, its validation constraints and its documentation.
:class:`~skctr.base.BaseCTRClassifier` builds each estimator's ``__init__`` signature,
``_parameter_constraints`` and the "Parameters" section of its docstring from this table
plus the few parameters an architecture adds, so a shared parameter is declared once.
"""

from __future__ import annotations

import inspect
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._compat import Interval, StrOptions
from .nn.activation import ACTIVATIONS


@dataclass(frozen=True)
class Param:
    """One estimator parameter.

    Parameters
    ----------
    name : str
        Keyword name.
    default : object
        Default value (immutable: a tuple rather than a list).
    constraints : list or "no_validation"
        scikit-learn parameter constraints, checked once per ``fit``.
    type_doc : str
        The type line of the numpydoc entry, without the default.
    doc : str
        The description of the numpydoc entry.
    """

    name: str
    default: Any
    constraints: list | str
    type_doc: str
    doc: str

    def docstring(self) -> str:
        """The numpydoc entry for this parameter, indented as in a class docstring."""
        text = inspect.cleandoc(self.doc).replace("\n", "\n        ")
        return f"    {self.name} : {self.type_doc}, default={self.default!r}\n        {text}"


_POS_INT = Interval(numbers.Integral, 1, None, closed="left")

#: Parameters of the model part that most architectures share, in signature order.
MODEL_PARAMS: tuple[Param, ...] = (
    Param(
        "embedding_dim",
        8,
        [_POS_INT],
        "int",
        "Size of each field's embedding vector.",
    ),
    Param(
        "hidden_units",
        (256, 128),
        [list, tuple],
        "tuple of int",
        "Widths of the hidden layers of the deep (MLP) part; ``()`` for none.",
    ),
    Param(
        "dropout",
        0.0,
        [Interval(numbers.Real, 0, 1, closed="left")],
        "float",
        "Dropout rate after each hidden layer of the MLP.",
    ),
    Param(
        "activation",
        "relu",
        [StrOptions(set(ACTIVATIONS))],
        "str",
        f"Activation of the MLP's hidden layers, one of {sorted(ACTIVATIONS)}.",
    ),
)

#: Parameters of training and of the input handling, shared by every classifier.
TRAINING_PARAMS: tuple[Param, ...] = (
    Param(
        "l2_embedding",
        1e-6,
        [Interval(numbers.Real, 0, None, closed="left")],
        "float",
        """L2 penalty on the embedding vectors a batch looks up (averaged over the batch),
        so its cost follows the batch, not the vocabulary.""",
    ),
    Param(
        "learning_rate",
        1e-3,
        [Interval(numbers.Real, 0, None, closed="neither")],
        "float",
        """Step size of Adam (lazy, row-wise Adam for the embedding tables). In models
        with a first-order term, its weights take ``linear_learning_rate`` instead.""",
    ),
    Param(
        "clip_grad_norm",
        None,
        [Interval(numbers.Real, 0, None, closed="neither"), None],
        "float or None",
        """Largest L2 norm of the gradient of one step, all weights together (the sparse
        gradients of the embedding tables included); a larger gradient is scaled down to
        it. ``None``: no clipping. It keeps rare huge gradients (an extreme row, a high
        ``learning_rate``) from wrecking the weights.""",
    ),
    Param(
        "batch_size",
        256,
        [_POS_INT],
        "int",
        "Rows per gradient step.",
    ),
    Param(
        "max_epochs",
        "auto",
        [StrOptions({"auto"}), _POS_INT],
        "'auto' or int",
        """Maximum number of passes over the training rows. ``'auto'``: 100 when early
        stopping runs (the validation loss decides when to stop; this only bounds it), else
        20 (without a validation split this is the length of training, and more passes
        overfit small data).""",
    ),
    Param(
        "early_stopping",
        "auto",
        [StrOptions({"auto"}), "boolean"],
        "'auto' or bool",
        """Hold out ``validation_fraction`` of the rows (a stratified random split) and
        watch the validation log-loss. When it has not improved for ``n_iter_no_change``
        epochs, training goes back to the best epoch's weights (Adam's moments are kept)
        and goes on with every step multiplied by 0.2, up to twice and only while the
        smaller steps find a better epoch; then it stops and restores the best weights.
        ``'auto'`` turns it on when there are at least 800 rows.""",
    ),
    Param(
        "validation_fraction",
        0.1,
        [Interval(numbers.Real, 0, 1, closed="neither")],
        "float",
        "Share of the rows held out for early stopping.",
    ),
    Param(
        "refit",
        False,
        ["boolean"],
        "bool",
        """Once early stopping has found where to stop, train a fresh model on every row,
        the validation rows included, along the same path: the same initial weights, as
        many passes, and the same smaller steps after each plateau. The held-out rows then
        count for training. It suits models whose validation loss is flat near its
        minimum, so that the length chosen on part of the rows holds for all of them (the
        models without an MLP take it by default); a model with an MLP overfits within a
        few passes and a refit cannot check where it ends. It about doubles the training
        time; the refit's passes are added to ``history_`` marked ``"refit": True``.
        Nothing happens without early stopping, or when ``warm_start`` continues a fitted
        model.""",
    ),
    Param(
        "linear_fallback",
        False,
        ["boolean"],
        "bool",
        """With early stopping, also train the model's logistic regression (the
        :class:`LRClassifier` model: one weight per category, per dense field and per
        sequence item) on the same rows, with the same validation split, this estimator's
        training parameters and the step of its first-order weights (3 x
        ``learning_rate`` unless ``linear_learning_rate`` says otherwise), and keep
        whichever of the two has the lower validation log-loss (the model, unless the
        logistic regression is lower by more than 1e-4). Where the model's interaction
        parts learn nothing that the held-out rows can see (typically a few thousand
        training rows), the estimator is then that logistic regression, refitted on every
        row as :class:`LRClassifier` is by default, instead of a model that scores below
        it. ``linear_fallback_`` says which was kept, and ``history_`` lists the logistic
        regression's epochs marked ``"linear": True``. It adds the logistic regression's
        training time (cheaper per pass than the model's); set False to train the model
        alone. Nothing happens without early stopping, or when ``warm_start`` continues a
        fitted model.""",
    ),
    Param(
        "n_iter_no_change",
        2,
        [_POS_INT],
        "int",
        """Epochs without improvement of the validation log-loss before the steps are
        made smaller or training stops (see ``early_stopping``).""",
    ),
    Param(
        "random_state",
        None,
        ["random_state"],
        "int, RandomState instance or None",
        """Seed of the weight initialisation, the shuffling, dropout and the validation
        split. The same seed on the same data gives identical predictions on a CPU.""",
    ),
    Param(
        "device",
        "cpu",
        [str],
        "str",
        """Torch device to train on: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'`` or
        ``'auto'`` (CUDA when available). A fitted model always pickles with CPU tensors.""",
    ),
    Param(
        "n_jobs",
        None,
        [Interval(numbers.Integral, -1, None, closed="left"), None],
        "int or None",
        """Number of CPU threads torch uses during ``fit`` and ``predict``; ``None`` keeps
        torch's setting, ``-1`` uses all cores.""",
    ),
    Param(
        "verbose",
        0,
        ["verbose"],
        "int",
        "0: silent; 1: a progress bar per epoch and a line per epoch with the losses.",
    ),
    Param(
        "warm_start",
        False,
        ["boolean"],
        "bool",
        """When True, ``fit`` on a fitted model continues training its weights (with the
        same feature encoding) for ``max_epochs`` more epochs instead of starting again;
        with a model read by :func:`skctr.load` (e.g. a checkpoint) it resumes training.""",
    ),
    Param(
        "checkpoint_dir",
        None,
        [str, os.PathLike, None],
        "str, path-like or None",
        """Directory where ``fit`` and ``partial_fit`` save the model after every epoch, as
        ``epoch_0001.skctr``, ``epoch_0002.skctr``, ... in the :func:`skctr.save` format
        (created if needed). Resume with
        ``skctr.load(path).set_params(warm_start=True).fit(X, y)``.""",
    ),
    Param(
        "features",
        None,
        "no_validation",
        "CTRFeatureTransformer or None",
        """Encoder used when ``X`` is a raw DataFrame or array (not the output of a
        CTRFeatureTransformer). ``None`` builds a default one. It is cloned and fitted
        in ``fit``, and available as ``features_``.""",
    ),
)


def build_init(params: Sequence[Param]) -> Callable[..., None]:
    """An ``__init__`` that stores each parameter unchanged, with a real signature.

    Parameters
    ----------
    params : sequence of Param
        The parameters, in signature order; all keyword-only.

    Returns
    -------
    callable
        The ``__init__`` function; ``inspect.signature`` shows every parameter and default,
        which is what :meth:`sklearn.base.BaseEstimator.get_params` reads.
    """
    names = [p.name for p in params]
    defaults = {p.name: p.default for p in params}

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected keyword argument(s) "
                f"{unknown}. Valid parameters are: {names}."
            )
        for name in names:
            setattr(self, name, kwargs.get(name, defaults[name]))

    sig = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    sig += [
        inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default) for p in params
    ]
    __init__.__signature__ = inspect.Signature(sig)  # type: ignore[attr-defined]
    return __init__


def params_docstring(params: Sequence[Param]) -> str:
    """The numpydoc "Parameters" section for ``params``."""
    body = "\n\n".join(p.docstring() for p in params)
    return f"    Parameters\n    ----------\n{body}\n"
