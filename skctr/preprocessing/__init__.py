"""Feature encoding: raw columns to the integer codes and scaled values models consume."""

from .schema import DenseField, EncodedBatch, FeatureSchema, SequenceField, SparseField
from .transformer import CTRFeatureTransformer, infer_kind

__all__ = [
    "CTRFeatureTransformer",
    "DenseField",
    "EncodedBatch",
    "FeatureSchema",
    "SequenceField",
    "SparseField",
    "infer_kind",
]
