"""Model cores: plain ``torch.nn.Module`` classes mapping a TensorBatch to logits (B,).

Each core takes the :class:`~skctr.preprocessing.schema.FeatureSchema` positionally and its
hyper-parameters as keyword-only arguments with defaults. No sigmoid, loss, optimiser,
device move or seeding happens inside a core.
"""

from .afm import AFM
from .autoint import AutoInt
from .dcn import DCN
from .deepfm import DeepFM
from .din import DIN
from .fnn import FNN
from .linear import FactorizationMachineModel, LogisticRegression
from .mlr import MixedLogisticRegression
from .nfm import NFM
from .pnn import PNN
from .wdl import WideDeep
from .xdeepfm import XDeepFM

__all__ = [
    "AFM",
    "DCN",
    "DIN",
    "FNN",
    "NFM",
    "PNN",
    "AutoInt",
    "DeepFM",
    "FactorizationMachineModel",
    "LogisticRegression",
    "MixedLogisticRegression",
    "WideDeep",
    "XDeepFM",
]
