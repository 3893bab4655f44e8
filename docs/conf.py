"""Sphinx configuration for trissh's documentation site: ``scripts/docs`` builds it into docs/_build/html.

Writing pages (markdown, read by MyST-Parser): every fenced ```python block is a test.
``tests/test_docs_examples.py`` runs each one as a whole program, in-process, against a throwaway sshd, so
each block must be complete: its imports, an ``async def main()`` and ``trio.run(main)``. It connects to
``example.com``, ``bastion.example.com`` or any other ``*.example.com`` name with no other arguments: the
test writes a ~/.ssh/config whose Host block leads those names to the local sshd, with its user, key and
known_hosts. The files an example uses are made by the test (``LOCAL_FILES`` in the working directory,
``REMOTE_FILES`` where the server's SFTP starts). A fragment that cannot run on its own goes in a
```text block; shell lines in a ```sh block. A ```console block's ``$ trissh ...`` lines run too, through
the command's ``main()``, and the lines under a command are its expected output. The test file's
docstring has the details.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the trissh beside docs/, not another

import trissh

project = "trissh"
author = "the trissh authors"
copyright = "the trissh authors"
version = release = trissh.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: ``{eval-rst}`` blocks hold the autodoc directives; anchors for headings so pages link to sections.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# autodoc: members in source order, signatures as written (the annotations are strings, PEP 563).
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"  # no bare type lists for undocumented arguments
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" as a field list, so that the properties autodoc documents below it are not duplicated.
napoleon_use_ivar = True

# No intersphinx: the build must work offline. A :class: reference autodoc cannot resolve (Trio's types,
# private helper types) renders as plain code; broken pages, directives, links and markup are errors.
nitpicky = False

html_theme = "furo"
html_title = f"trissh {release}"
