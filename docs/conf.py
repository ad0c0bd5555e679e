"""Sphinx configuration of the skctr documentation."""

import skctr

project = "skctr"
author = "the skctr developers"
release = skctr.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc"]
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_member_order = "bysource"
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["ref.citation"]
