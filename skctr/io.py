"""A safe file format for skctr models: :func:`save` and :func:`load`.

A saved file is a zip archive that loads without executing any code from it:

* ``skctr.json``: the format name and version, the skctr version that wrote the file and
  the object itself (its class by name, its ``get_params`` and its fitted attributes) as
  tagged JSON, so that tuples, dict keys of any type, numpy scalars, ``pandas.Index``
  dtypes, and ``1`` versus ``"1"`` all come back exactly;
* ``tensors.pt``: a flat ``dict[str, Tensor]`` (the cores' ``state_dict``), read with
  ``torch.load(..., weights_only=True)``;
* ``arrays/<n>.npy``: numeric, boolean and fixed-width string arrays (``classes_``, bin
  edges, integer vocabularies), read with ``numpy.load(..., allow_pickle=False)``;
* ``manifest.json``: the SHA-256 digest of every other member, checked before anything
  is parsed.

Classes are rebuilt by name from a fixed list (the skctr classifiers,
:class:`~skctr.CTRFeatureTransformer` and :class:`sklearn.pipeline.Pipeline`); no dotted
path from the file is ever imported. A :class:`~skctr.CTRClassifier` with a user-defined
core needs that core class passed to :func:`load` through ``cores=``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import pathlib
import re
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from torch import nn

from .base import BaseCTRClassifier
from .estimators import CTRClassifier, all_classifiers
from .preprocessing.schema import DenseField, FeatureSchema, SequenceField, SparseField
from .preprocessing.transformer import CTRFeatureTransformer, _Vocabulary
from .training.loop import TrainState

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "SkctrFormatError", "load", "save"]

#: Value of the ``format`` field of ``skctr.json``.
FORMAT_NAME = "skctr"
#: Version of the layout of the archive and of ``skctr.json`` written by this skctr.
FORMAT_VERSION = 1

_DOCUMENT = "skctr.json"
_TENSORS = "tensors.pt"
_MANIFEST = "manifest.json"
_ARRAY_MEMBER = re.compile(r"arrays/[0-9]+\.npy")

#: Dataclasses stored field by field and rebuilt by name.
_DATACLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (SparseField, DenseField, SequenceField, FeatureSchema)
}
_DATACLASSES["Vocabulary"] = _Vocabulary

#: numpy dtype kinds stored as ``.npy`` members (everything but objects and records).
_NPY_KINDS = "biufcmMSU"


class SkctrFormatError(ValueError):
    """A file cannot be read as a skctr model, or an object cannot be stored as one.

    Raised by :func:`load` for a file that is not a skctr archive (not a zip, truncated),
    lacks a member, fails its digest check (modified or corrupted), holds something other
    than plain tensors and arrays, has an unknown format version, was written by a newer
    major version of skctr, or names a class skctr does not rebuild; and by :func:`save` for
    an object or attribute value the format cannot store exactly.
    """


def _registry() -> dict[str, type]:
    """The classes :func:`load` rebuilds, by the name stored in the file."""
    classes: dict[str, type] = {
        f"skctr.{cls.__name__}": cls for cls in (*all_classifiers(), CTRClassifier)
    }
    classes["skctr.CTRFeatureTransformer"] = CTRFeatureTransformer
    classes["sklearn.pipeline.Pipeline"] = Pipeline
    return classes


def _skctr_version() -> str:
    from . import __version__

    return __version__


def _major(version: Any) -> int | None:
    match = re.match(r"\s*([0-9]+)", version) if isinstance(version, str) else None
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------- writing
class _Writer:
    """Turns an object tree into tagged JSON, collecting tensors and arrays on the side.

    Every JSON object in the output is a tag ``{"$t": kind, ...}``; plain JSON lists,
    strings, numbers, booleans and null stand for themselves (lists for Python lists).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.tensors: dict[str, torch.Tensor] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self._n_estimators = 0

    def fail(self, where: str, what: str) -> SkctrFormatError:
        return SkctrFormatError(f"skctr.save({self.path!r}): cannot store {where}: {what}")

    def encode(self, value: Any, where: str) -> Any:
        if value is None or type(value) in (bool, int, str):
            return value
        if type(value) is float:
            return value if math.isfinite(value) else {"$t": "float", "v": repr(value)}
        if isinstance(value, np.generic):
            return self._scalar(value, where)
        if type(value) is list:
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if type(value) is tuple:
            return {"$t": "tuple", "v": self.encode(list(value), where)}
        if type(value) is dict:
            items = [
                [self.encode(k, f"{where} (a key)"), self.encode(v, f"{where}[{k!r}]")]
                for k, v in value.items()
            ]
            return {"$t": "dict", "v": items}
        if type(value) is np.ndarray:
            return self._array(value, where)
        if isinstance(value, pd.Index):
            return self._index(value, where)
        if isinstance(value, torch.Tensor):
            return {"$t": "tensor", "key": self._tensor(value, "attr")}
        if value is pd.NA:
            return {"$t": "NA"}
        if isinstance(value, pathlib.PurePath):
            return {"$t": "path", "v": str(value)}
        if type(value) is np.random.RandomState:
            return {"$t": "random_state", "v": self.encode(value.get_state(), where)}
        if isinstance(value, BaseEstimator):
            return self._estimator(value, where)
        if type(value) is TrainState:
            # optimiser moments are not saved: training resumed after loading restarts them
            return {
                "$t": "train_state",
                "epochs_done": self.encode(value.epochs_done, f"{where}.epochs_done"),
                "history": self.encode(value.history, f"{where}.history"),
            }
        if type(value) in _DATACLASSES.values():
            name = next(k for k, cls in _DATACLASSES.items() if cls is type(value))
            fields = {
                f.name: self.encode(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)
            }
            return {"$t": "dataclass", "class": name, "fields": fields}
        if isinstance(value, type) and issubclass(value, nn.Module):
            return {
                "$t": "core_class",
                "name": value.__name__,
                "module": value.__module__,
                "qualname": value.__qualname__,
            }
        raise self.fail(
            where,
            f"values of type {type(value).__module__}.{type(value).__qualname__} are not "
            "supported by the skctr format. Use joblib.dump for such objects (and load them "
            "only from trusted sources).",
        )

    def _scalar(self, value: np.generic, where: str) -> dict[str, Any]:
        if value.dtype.kind not in _NPY_KINDS:
            raise self.fail(where, f"numpy scalars of dtype {value.dtype} are not supported.")
        if value.dtype.kind == "U":
            return {"$t": "scalar", "dtype": "str", "v": str(value)}
        if value.dtype.kind == "S":
            return {"$t": "scalar", "dtype": "bytes", "hex": bytes(value).hex()}
        return {"$t": "scalar", "dtype": value.dtype.str, "hex": value.tobytes().hex()}

    def _array(self, value: np.ndarray, where: str) -> dict[str, Any]:
        if value.dtype.kind == "O":
            flat = list(value.ravel(order="C"))
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(flat)]
            return {"$t": "object_array", "shape": list(value.shape), "v": items}
        if value.dtype.kind not in _NPY_KINDS or value.dtype.fields is not None:
            raise self.fail(where, f"arrays of dtype {value.dtype} are not supported.")
        name = f"arrays/{len(self.arrays)}.npy"
        self.arrays[name] = value
        return {"$t": "ndarray", "member": name}

    def _tensor(self, value: torch.Tensor, prefix: str) -> str:
        key = f"{prefix}/{len(self.tensors)}"
        self.tensors[key] = value.detach().cpu()
        return key

    def _index(self, index: pd.Index, where: str) -> dict[str, Any]:
        if isinstance(index, pd.MultiIndex):
            raise self.fail(where, "a MultiIndex is not supported.")
        dtype = index.dtype
        out: dict[str, Any] = {"$t": "index", "name": self.encode(index.name, f"{where}.name")}
        if isinstance(dtype, pd.CategoricalDtype):
            out.update(
                kind="categorical",
                categories=self._index(dtype.categories, f"{where}.categories"),
                codes=self._array(np.asarray(index.codes), f"{where}.codes"),
                ordered=bool(dtype.ordered),
            )
        elif isinstance(dtype, np.dtype) and dtype.kind != "O":
            out.update(kind="numpy", values=self._array(index.to_numpy(), where))
        else:
            values = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(index.tolist())]
            out["values"] = values
            if isinstance(dtype, np.dtype):
                out["kind"] = "object"
            elif isinstance(dtype, pd.StringDtype):
                na = "NA" if dtype.na_value is pd.NA else "nan"
                out.update(kind="string", storage=dtype.storage, na_value=na)
            else:
                out.update(kind="extension", dtype=str(dtype))
        # refuse, now rather than at load time, what would not come back exactly
        decoded = _Reader(self.path, self.arrays, self.tensors, None).decode(out, where)
        if not _same_index(index, decoded):
            raise self.fail(
                where,
                f"the index of dtype {dtype} does not survive the round trip exactly "
                f"(it comes back as {decoded!r}).",
            )
        return out

    def _estimator(self, est: BaseEstimator, where: str) -> dict[str, Any]:
        registry = _registry()
        name = next((k for k, cls in registry.items() if cls is type(est)), None)
        if name is None:
            raise self.fail(
                where,
                f"{type(est).__module__}.{type(est).__qualname__} is not one of the classes "
                f"the skctr format rebuilds ({', '.join(sorted(registry))}). Use joblib.dump "
                "for it (and load it only from trusted sources).",
            )
        index = self._n_estimators
        self._n_estimators += 1
        params = est.get_params(deep=False)
        state = vars(est)
        out: dict[str, Any] = {
            "$t": "estimator",
            "class": name,
            "params": {k: self.encode(v, f"{where}.{k}") for k, v in params.items()},
        }
        attributes: dict[str, Any] = {}
        for key, value in state.items():
            if key in params:
                continue
            if isinstance(est, BaseCTRClassifier):
                if key == "_device":
                    continue  # loaded models live on the CPU, as after unpickling
                if key == "history_" and value is getattr(state.get("_state"), "history", None):
                    continue  # restored as the same list as _state.history
                if key == "core_":
                    out["core"] = self._core(value, f"{where}.core_", index)
                    continue
            attributes[key] = self.encode(value, f"{where}.{key}")
        out["attributes"] = attributes
        return out

    def _core(self, core: nn.Module, where: str, index: int) -> dict[str, Any]:
        state = {}
        for name, tensor in core.state_dict().items():
            key = f"est{index}.core.{name}"
            self.tensors[key] = tensor.detach().cpu()
            state[name] = key
        return {
            "class": type(core).__qualname__,
            "module": type(core).__module__,
            "training": bool(core.training),
            "state_dict": state,
        }


def _same_index(a: pd.Index, b: Any) -> bool:
    if type(a) is not type(b) or a.dtype != b.dtype or len(a) != len(b):
        return False
    if not a.equals(b):
        return False
    if a.dtype == object:
        # equals() takes 1 == 1.0 == True; the stored values must keep their types
        return all(type(x) is type(y) for x, y in zip(a.tolist(), b.tolist(), strict=True))
    return True


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Save a skctr model, transformer or Pipeline to a file that loads without running code.

    Parameters
    ----------
    obj : estimator
        A skctr classifier (any class of :func:`skctr.all_classifiers`, or
        :class:`~skctr.CTRClassifier`), a :class:`~skctr.CTRFeatureTransformer`, or a
        :class:`sklearn.pipeline.Pipeline` of those; fitted or not.
    path : str or os.PathLike
        The file to write (conventionally ``*.skctr``). It is written to a temporary file
        next to it and then renamed, so an existing file is replaced only by a complete one.

    Raises
    ------
    SkctrFormatError
        If ``obj`` is of another class, or holds a value the format cannot store exactly
        (the message names the attribute).

    See Also
    --------
    load : Read the file back.

    Notes
    -----
    Optimiser state (Adam moments) is not saved: training continued after :func:`load`
    (``partial_fit``, or ``fit`` with ``warm_start=True``) starts with fresh moments, as after
    unpickling. The core's tensors are saved from the CPU; a loaded model predicts on the
    CPU.

    Examples
    --------
    >>> import skctr
    >>> from skctr.datasets import load_avazu_9k
    >>> X, y = load_avazu_9k(return_X_y=True)
    >>> clf = skctr.LRClassifier(max_epochs=1, random_state=0).fit(X, y)
    >>> skctr.save(clf, "lr.skctr")  # doctest: +SKIP
    >>> skctr.load("lr.skctr").predict_proba(X.head(2)).shape  # doctest: +SKIP
    (2, 2)
    """
    path = os.fspath(path)
    writer = _Writer(path)
    if not isinstance(obj, BaseEstimator):
        raise writer.fail("the object", f"{type(obj).__qualname__} is not an estimator.")
    tree = writer.encode(obj, type(obj).__name__)
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "skctr_version": _skctr_version(),
        "written_with": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "object": tree,
    }
    members: dict[str, bytes] = {
        _DOCUMENT: json.dumps(document, allow_nan=False, indent=1).encode("utf-8")
    }
    buffer = io.BytesIO()
    torch.save(writer.tensors, buffer)
    members[_TENSORS] = buffer.getvalue()
    for name, array in writer.arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        members[name] = buffer.getvalue()
    manifest = {"algorithm": "sha256", "members": {k: _digest(v) for k, v in members.items()}}
    members[_MANIFEST] = json.dumps(manifest, indent=1).encode("utf-8")

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".skctr-", suffix=".tmp", dir=directory)
    try:
        with (
            os.fdopen(fd, "wb") as handle,
            zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        ):
            for name in (_MANIFEST, _DOCUMENT, _TENSORS, *writer.arrays):
                archive.writestr(name, members[name])
        os.chmod(tmp, _new_file_mode())  # mkstemp makes it private; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _new_file_mode() -> int:
    """The permissions ``open(path, "w")`` would give a new file (0o666 less the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


# ---------------------------------------------------------------------------------- reading
class _Reader:
    """Rebuilds the object tree from tagged JSON, tensors and arrays already checked."""

    def __init__(
        self,
        path: str,
        arrays: Mapping[str, np.ndarray],
        tensors: Mapping[str, torch.Tensor],
        cores: Mapping[str, type] | None,
    ) -> None:
        self.path = path
        self.arrays = arrays
        self.tensors = tensors
        self.cores = dict(cores or {})
        self._handlers: dict[str, Callable[[dict[str, Any], str], Any]] = {
            "float": lambda v, w: float(_one_of(self, v["v"], ("nan", "inf", "-inf"), w)),
            "tuple": lambda v, w: tuple(self.decode(v["v"], w)),
            "dict": self._dict,
            "scalar": self._scalar,
            "ndarray": self._ndarray,
            "object_array": self._object_array,
            "index": self._index,
            "tensor": lambda v, w: self._tensor_of(v["key"], w),
            "NA": lambda v, w: pd.NA,
            "path": lambda v, w: pathlib.Path(_check_type(self, v["v"], str, w)),
            "random_state": self._random_state,
            "estimator": self._estimator,
            "train_state": self._train_state,
            "dataclass": self._dataclass,
            "core_class": self._core_class,
        }

    def fail(self, what: str) -> SkctrFormatError:
        return SkctrFormatError(f"skctr.load({self.path!r}): {what}")

    def decode(self, value: Any, where: str) -> Any:
        if value is None or type(value) in (bool, int, float, str):
            return value
        if type(value) is list:
            return [self.decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if type(value) is dict:
            tag = value.get("$t")
            handler = self._handlers.get(tag) if isinstance(tag, str) else None
            if handler is None:
                raise self.fail(f"{where}: unknown value tag {tag!r} in {_DOCUMENT}.")
            return handler(value, where)
        raise self.fail(f"{where}: unexpected JSON value {value!r}.")

    def _dict(self, value: dict[str, Any], where: str) -> dict[Any, Any]:
        out = {}
        for pair in value["v"]:
            key, item = pair
            key = self.decode(key, f"{where} (a key)")
            out[key] = self.decode(item, f"{where}[{key!r}]")
        return out

    def _scalar(self, value: dict[str, Any], where: str) -> np.generic:
        if value["dtype"] == "str":
            return np.str_(_check_type(self, value["v"], str, where))
        if value["dtype"] == "bytes":
            return np.bytes_(bytes.fromhex(value["hex"]))
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in _NPY_KINDS:
            raise self.fail(f"{where}: numpy scalar of unsupported dtype {dtype}.")
        data = bytes.fromhex(value["hex"])
        if len(data) != dtype.itemsize:
            raise self.fail(f"{where}: numpy scalar of dtype {dtype} has {len(data)} bytes.")
        return np.frombuffer(data, dtype=dtype)[0]

    def _ndarray(self, value: dict[str, Any], where: str) -> np.ndarray:
        member = value["member"]
        if member not in self.arrays:
            raise self.fail(f"{where}: refers to a missing array member {member!r}.")
        return self.arrays[member].copy()

    def _object_array(self, value: dict[str, Any], where: str) -> np.ndarray:
        items = self.decode(value["v"], where)
        shape = tuple(int(s) for s in value["shape"])
        return _object_vector(items).reshape(shape)

    def _index(self, value: dict[str, Any], where: str) -> pd.Index:
        kind = value["kind"]
        name = self.decode(value["name"], f"{where}.name")
        if kind == "categorical":
            categories = self._index(value["categories"], f"{where}.categories")
            codes = self._ndarray(value["codes"], f"{where}.codes")
            cat = pd.Categorical.from_codes(
                codes, categories=categories, ordered=bool(value["ordered"])
            )
            return pd.CategoricalIndex(cat, name=name)
        if kind == "numpy":
            values = self._ndarray(value["values"], where)
            return pd.Index(values, dtype=values.dtype, name=name)
        values = self.decode(value["values"], where)
        if kind == "object":
            return pd.Index(_object_vector(values), dtype=object, name=name)
        if kind == "string":
            na = _one_of(self, value["na_value"], ("NA", "nan"), where)
            storage = _one_of(self, value["storage"], ("python", "pyarrow"), where)
            dtype = pd.StringDtype(storage, na_value=pd.NA if na == "NA" else np.nan)
            return pd.Index(values, dtype=dtype, name=name)
        if kind == "extension":
            dtype = pd.api.types.pandas_dtype(value["dtype"])
            return pd.Index(values, dtype=dtype, name=name)
        raise self.fail(f"{where}: unknown index kind {kind!r}.")

    def _tensor_of(self, key: Any, where: str) -> torch.Tensor:
        if key not in self.tensors:
            raise self.fail(f"{where}: refers to a tensor {key!r} missing from {_TENSORS}.")
        return self.tensors[key]

    def _random_state(self, value: dict[str, Any], where: str) -> np.random.RandomState:
        state = np.random.RandomState()
        state.set_state(self.decode(value["v"], where))
        return state

    def _train_state(self, value: dict[str, Any], where: str) -> TrainState:
        epochs = self.decode(value["epochs_done"], f"{where}.epochs_done")
        history = self.decode(value["history"], f"{where}.history")
        return TrainState(optimizers=[], epochs_done=epochs, history=history)

    def _dataclass(self, value: dict[str, Any], where: str) -> Any:
        cls = _DATACLASSES.get(value["class"])
        if cls is None:
            raise self.fail(f"{where}: unknown class {value['class']!r}.")
        fields = {k: self.decode(v, f"{where}.{k}") for k, v in value["fields"].items()}
        return cls(**fields)

    def _core_class(self, value: dict[str, Any], where: str) -> type[nn.Module]:
        name, module, qualname = value["name"], value["module"], value["qualname"]
        for key in (name, f"{module}.{qualname}", qualname):
            if key in self.cores:
                core = self.cores[key]
                if not (isinstance(core, type) and issubclass(core, nn.Module)):
                    raise self.fail(
                        f"cores[{key!r}] must be a torch.nn.Module subclass, got {core!r}."
                    )
                return core
        raise self.fail(
            f"{where} is the user-defined core class {module}.{qualname}, which cannot be "
            f"rebuilt from the file. Pass the class: skctr.load(path, cores={{{name!r}: "
            f"{name}}})."
        )

    def _estimator(self, value: dict[str, Any], where: str) -> BaseEstimator:
        registry = _registry()
        name = value["class"]
        cls = registry.get(name) if isinstance(name, str) else None
        if cls is None:
            raise self.fail(
                f"{where}: unknown class {name!r}; the skctr format rebuilds only "
                f"{', '.join(sorted(registry))}."
            )
        params = {k: self.decode(v, f"{where}.{k}") for k, v in value["params"].items()}
        try:
            obj = cls(**params)
        except TypeError as exc:
            raise self.fail(
                f"{where}: {name} does not accept the stored parameters {sorted(params)} "
                f"({exc}); the file was probably written by another version of skctr."
            ) from exc
        for key, item in value["attributes"].items():
            if (
                not (isinstance(key, str) and key.isidentifier())
                or key.startswith("__")
                or (hasattr(cls, key))
            ):
                raise self.fail(f"{where}: refusing to set the attribute {key!r} on {name}.")
            setattr(obj, key, self.decode(item, f"{where}.{key}"))
        if isinstance(obj, BaseCTRClassifier):
            if isinstance(getattr(obj, "_state", None), TrainState):
                obj.history_ = obj._state.history
            if "core" in value:
                obj.core_ = self._build_core(obj, value["core"], f"{where}.core_")
                obj._device = torch.device("cpu")
        return obj

    def _build_core(self, obj: BaseCTRClassifier, spec: dict[str, Any], where: str) -> nn.Module:
        cls = obj._core_class()
        state = {name: self._tensor_of(key, where) for name, key in spec["state_dict"].items()}
        try:
            # building the core draws initial weights: keep the caller's random stream intact
            with torch.random.fork_rng(devices=[]):
                core = cls(obj._schema, **obj._core_kwargs())
            core.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise self.fail(
                f"{where}: the stored weights do not fit a {cls.__qualname__} built from the "
                f"stored schema and parameters ({exc})."
            ) from exc
        core.train(bool(spec["training"]))
        return core


def _object_vector(items: list[Any]) -> np.ndarray:
    """A 1-D object array holding ``items`` as they are (lists are not broadcast)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _check_type(reader: _Reader, value: Any, expected: type, where: str) -> Any:
    if type(value) is not expected:
        raise reader.fail(f"{where}: expected a {expected.__name__}, got {value!r}.")
    return value


def _one_of(reader: _Reader, value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise reader.fail(f"{where}: expected one of {allowed}, got {value!r}.")
    return value


def _read_members(path: str) -> dict[str, bytes]:
    """Every member of the archive, each checked against the manifest's digest."""

    def fail(what: str) -> SkctrFormatError:
        return SkctrFormatError(f"skctr.load({path!r}): {what}")

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise fail(
            f"not a skctr file: it is not a zip archive, or it is truncated or corrupted ({exc})."
        ) from exc
    with archive:
        names = archive.namelist()

        def read(name: str) -> bytes:
            if name not in names:
                raise fail(
                    f"the member {name!r} is missing; the file is incomplete or not a skctr file."
                )
            try:
                return archive.read(name)
            except (
                zipfile.BadZipFile,
                zlib.error,
                EOFError,
                OSError,
                ValueError,
                NotImplementedError,
            ) as exc:
                raise fail(
                    f"the member {name!r} is corrupted ({type(exc).__name__}: {exc})."
                ) from exc

        raw_manifest = read(_MANIFEST)
        try:
            manifest = json.loads(raw_manifest)
            digests = manifest["members"]
            if manifest["algorithm"] != "sha256" or not isinstance(digests, dict):
                raise ValueError("expected sha256 digests")
        except (ValueError, KeyError, TypeError) as exc:
            raise fail(f"{_MANIFEST} is malformed ({exc}).") from exc
        for required in (_DOCUMENT, _TENSORS):
            if required not in digests:
                raise fail(f"the manifest does not list the member {required!r}.")
        extra = sorted(set(names) - set(digests) - {_MANIFEST})
        if extra:
            raise fail(f"unexpected members not covered by the manifest: {extra}.")
        members = {}
        for name, expected in digests.items():
            if name not in (_DOCUMENT, _TENSORS) and not _ARRAY_MEMBER.fullmatch(str(name)):
                raise fail(f"the manifest lists an unexpected member {name!r}.")
            data = read(name)
            if _digest(data) != expected:
                raise fail(
                    f"the SHA-256 digest of the member {name!r} does not match the manifest: "
                    "the file was modified or corrupted after it was written."
                )
            members[name] = data
    return members


def _check_versions(document: Any, path: str) -> None:
    def fail(what: str) -> SkctrFormatError:
        return SkctrFormatError(f"skctr.load({path!r}): {what}")

    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        found = document.get("format") if isinstance(document, dict) else None
        raise fail(f"{_DOCUMENT} does not describe a skctr file (format {found!r}).")
    ours = _skctr_version()
    written_by = document.get("skctr_version")
    theirs = _major(written_by)
    if theirs is None:
        raise fail(f"{_DOCUMENT} has no valid skctr_version (got {written_by!r}).")
    if theirs > (_major(ours) or 0):
        raise fail(
            f"the file was written by skctr {written_by}, a newer major version than this "
            f"skctr {ours}, and may not be read correctly; upgrade skctr to load it."
        )
    version = document.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        hint = (
            "upgrade skctr to load it"
            if type(version) is int and version > FORMAT_VERSION
            else "the file is damaged or was not written by skctr.save"
        )
        raise fail(
            f"unknown format_version {version!r} (written by skctr {written_by}); this skctr "
            f"{ours} reads format_version {FORMAT_VERSION}: {hint}."
        )


def load(path: str | os.PathLike[str], *, cores: Mapping[str, type] | None = None) -> Any:
    """Load a model, transformer or Pipeline written by :func:`save`, without running code.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    cores : dict of str to type, default=None
        The core classes of :class:`~skctr.CTRClassifier` models, which the file names but
        cannot rebuild: ``{"MyCore": MyCore}`` (the class name, or ``"module.QualName"``).
        Built-in classifiers need nothing.

    Returns
    -------
    estimator
        The object as it was saved (fitted attributes, weights, vocabularies, ``classes_``
        and ``history_`` included; optimiser state excluded), its core on the CPU.

    Raises
    ------
    SkctrFormatError
        If the file is not a skctr archive, is truncated or corrupted, lacks a member, fails
        its digest check, holds anything but plain tensors and arrays (such as a pickled
        object), has an unknown ``format_version``, was written by a newer major version
        of skctr, names a class skctr does not rebuild, or holds a user core not given in
        ``cores``.
    FileNotFoundError
        If there is no such file.

    See Also
    --------
    save : Write the file.
    """
    path = os.fspath(path)
    members = _read_members(path)
    try:
        document = json.loads(members[_DOCUMENT].decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise SkctrFormatError(
            f"skctr.load({path!r}): {_DOCUMENT} is not valid JSON ({exc})."
        ) from exc
    _check_versions(document, path)

    try:
        tensors = torch.load(io.BytesIO(members[_TENSORS]), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... alike
        raise SkctrFormatError(
            f"skctr.load({path!r}): refused to load {_TENSORS}: it is not a plain dict of "
            f"tensors and loading it with weights_only=True failed ({exc})."
        ) from exc
    if not isinstance(tensors, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()
    ):
        raise SkctrFormatError(
            f"skctr.load({path!r}): {_TENSORS} must hold a dict of str to tensors."
        )
    arrays = {}
    for name, data in members.items():
        if _ARRAY_MEMBER.fullmatch(name):
            try:
                arrays[name] = np.load(io.BytesIO(data), allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise SkctrFormatError(
                    f"skctr.load({path!r}): refused to load the array member {name!r}: it is "
                    f"not a plain .npy array ({exc})."
                ) from exc

    reader = _Reader(path, arrays, tensors, cores)
    tree = document.get("object")
    if not (isinstance(tree, dict) and tree.get("$t") == "estimator"):
        raise reader.fail(f"{_DOCUMENT} holds no estimator.")
    try:
        return reader.decode(tree, "object")
    except SkctrFormatError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError) as exc:
        raise reader.fail(f"{_DOCUMENT} is malformed ({type(exc).__name__}: {exc}).") from exc
