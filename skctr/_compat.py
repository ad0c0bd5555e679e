"""scikit-learn API that skctr relies on, kept in one place.

Anything private, or whose location moved between scikit-learn releases, is imported here
and nowhere else, so that a change in scikit-learn is fixed in one file.
"""

from __future__ import annotations

from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import validate_data

__all__ = ["Interval", "StrOptions", "validate_data", "validate_params"]
