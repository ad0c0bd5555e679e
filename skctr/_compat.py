"""scikit-learn and torch API that skctr relies on, kept in one place.

Anything private, or whose location moved between releases, is imported here and nowhere
else, so that a change in scikit-learn or torch is fixed in one file.
"""

from __future__ import annotations

import contextlib

import torch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import validate_data

__all__ = [
    "Interval",
    "StrOptions",
    "autocast_dtype",
    "autocast_off",
    "autocast_product_dtype",
    "validate_data",
    "validate_params",
]


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype ``torch.autocast`` runs matrix products in on ``device_type``, or None.

    Custom autograd functions that write matrix products with ``out=`` bypass autocast;
    they cast their inputs to this dtype themselves.

    Parameters
    ----------
    device_type : str
        ``"cpu"``, ``"cuda"``, ...

    Returns
    -------
    torch.dtype or None
        None when autocast is off for that device, or the device has no autocast (``meta``;
        ``mps`` before torch 2.5).
    """
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        try:
            enabled = torch.is_autocast_enabled(device_type)
        except RuntimeError:  # a device type without autocast
            return None
        return torch.get_autocast_dtype(device_type) if enabled else None
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    if device_type == "cuda":
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
    return None


def autocast_product_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast would run a matrix product of ``x`` in, or None to leave it.

    What a custom function that writes its products with ``out=`` casts its inputs to:
    :func:`autocast_dtype` of ``x``'s device, except that autocast leaves float64 alone.
    """
    return autocast_dtype(x.device.type) if x.dtype != torch.float64 else None


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """A context in which autocast is off on ``device_type``.

    ``torch.autocast(device_type, enabled=False)`` where autocast is on; a null context
    elsewhere, since entering ``torch.autocast`` at all fails on devices without it.

    Parameters
    ----------
    device_type : str
        ``"cpu"``, ``"cuda"``, ...

    Returns
    -------
    contextlib.AbstractContextManager
    """
    if autocast_dtype(device_type) is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)
