"""A column of test values as pandas stores it, whatever pandas' string storage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd


def as_stored(values: Sequence[Any]) -> pd.Series:
    """``pd.Series(values)`` with pandas' own dtype inference, or an object column where
    pandas cannot store what it infers: with pyarrow installed its ``str`` dtype keeps text
    as UTF-8, which has no lone surrogates (``"\\ud800"``), so a user's column holding one
    can only be an object column there.

    Parameters
    ----------
    values : sequence
        The column's values.

    Returns
    -------
    pandas.Series
    """
    try:
        return pd.Series(values)
    except UnicodeEncodeError:
        return pd.Series(values, dtype=object)
