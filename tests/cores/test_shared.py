"""The cores' shared pieces: expanded parameter docs and the deep MLP."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

from skctr import cores as core_modules
from skctr.cores._shared import deep_mlp, shared_params_doc
from skctr.nn.embedding import FieldEmbedding
from tests.cores.planted import SCHEMA, tiny_batch

CORES = [
    obj
    for module in vars(core_modules).values()
    if inspect.ismodule(module)
    for obj in vars(module).values()
    if inspect.isclass(obj)
    and issubclass(obj, torch.nn.Module)
    and obj.__module__ == module.__name__
]


@pytest.mark.parametrize("core", CORES, ids=lambda c: c.__name__)
def test_every_parameter_is_documented_and_no_marker_is_left(core):
    doc = core.__doc__
    assert not re.search(r"^\s*<\w+>\s*$", doc, re.M)
    for name in inspect.signature(core.__init__).parameters:
        if name != "self":
            assert re.search(rf"^\s*{name} : ", doc, re.M), (core.__name__, name)


def test_markers_expand_to_the_shared_entry():
    @shared_params_doc
    class Demo:
        """Demo.

        Parameters
        ----------
        <dropout>
        """

    assert (
        "dropout : float, default=0.0\n            Dropout after each hidden layer." in Demo.__doc__
    )


def test_deep_mlp_reads_the_embeddings_deep_input():
    embedding = FieldEmbedding(SCHEMA, 3)
    mlp = deep_mlp(embedding, (8,), 0.0, "relu")
    assert mlp(embedding.fields_and_deep(tiny_batch())[1]).shape == (6, 1)
