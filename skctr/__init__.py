"""skctr: deep click-through-rate models as scikit-learn estimators, built on PyTorch."""

from .base import BaseCTRClassifier
from .estimators import (
    AFMClassifier,
    AutoIntClassifier,
    CTRClassifier,
    DCNClassifier,
    DeepFMClassifier,
    DINClassifier,
    FMClassifier,
    FNNClassifier,
    LRClassifier,
    MLRClassifier,
    NFMClassifier,
    PNNClassifier,
    WDLClassifier,
    XDeepFMClassifier,
    all_classifiers,
)
from .io import load, save
from .preprocessing.transformer import CTRFeatureTransformer

__version__ = "0.1.0"

__all__ = [
    "AFMClassifier",
    "AutoIntClassifier",
    "BaseCTRClassifier",
    "CTRClassifier",
    "CTRFeatureTransformer",
    "DCNClassifier",
    "DINClassifier",
    "DeepFMClassifier",
    "FMClassifier",
    "FNNClassifier",
    "LRClassifier",
    "MLRClassifier",
    "NFMClassifier",
    "PNNClassifier",
    "WDLClassifier",
    "XDeepFMClassifier",
    "__version__",
    "all_classifiers",
    "load",
    "save",
]
