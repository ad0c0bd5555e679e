"""PyTorch building blocks of skctr's models (plain torch, no scikit-learn).

Shape convention: field embeddings are float tensors ``(batch, num_fields, embedding_dim)``;
every layer documents its input and output shapes. No layer applies a sigmoid, computes a loss,
moves tensors between devices or seeds a random generator.
"""

# embedding.py (FieldEmbedding) is added by the lead, with its import line here.
from skctr.nn.activation import ACTIVATIONS, Dice, get_activation
from skctr.nn.attention import AFMAttention, InteractingLayer, LocalActivationUnit
from skctr.nn.interaction import (
    CIN,
    BiInteractionPooling,
    CrossNetwork,
    FactorizationMachine,
    InnerProduct,
    OuterProduct,
    pairwise_indices,
)
from skctr.nn.mlp import MLP
from skctr.nn.sequence import AttentionSequencePooling, SequencePooling, sequence_mask

__all__ = [
    "ACTIVATIONS",
    "CIN",
    "MLP",
    "AFMAttention",
    "AttentionSequencePooling",
    "BiInteractionPooling",
    "CrossNetwork",
    "Dice",
    "FactorizationMachine",
    "InnerProduct",
    "InteractingLayer",
    "LocalActivationUnit",
    "OuterProduct",
    "SequencePooling",
    "get_activation",
    "pairwise_indices",
    "sequence_mask",
]
