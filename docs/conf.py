"""Sphinx configuration of melinterp's documentation (``make docs``: warnings are errors)."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import melinterp  # noqa: E402

project = "melinterp"
author = "the melinterp developers"
release = melinterp.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Returns:" in this code base lists named results as "Args:" lists arguments
napoleon_custom_sections = [("Returns", "params_style"), ("Yields", "params_style")]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# the docstrings' own cross-references (`Name`) are code, not links to resolve
default_role = "code"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
suppress_warnings = ["ref.python"]  # forward references in type hints of third-party classes


PLURAL_CODE = re.compile(r"`([^`\s]+)`(?=[A-Za-z])")  # `Name`s: reST needs an escaped break before the "s"


def _plural_code_references(app, what, name, obj, options, lines):
    lines[:] = [PLURAL_CODE.sub(r"`\1`\\ ", line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _plural_code_references)
