"""Sphinx configuration of the deepspot_sd documentation.

Build (offline, warnings are errors)::

    .venv/bin/sphinx-build -W -b html docs docs/_build/html

Intersphinx needs the network. It is switched on on Read the Docs (``READTHEDOCS=True``) or with
``DOCS_INTERSPHINX=1``; otherwise the mapping is empty. Unresolved references into the mapped third-party
projects are tolerated (``nitpick_ignore_regex``), so an offline ``-W`` build passes and still catches broken
references to our own objects.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import date
from importlib.metadata import version as _dist_version
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))  # a source checkout builds without installing the package

# -- Project ---------------------------------------------------------------------------------------------------
project = "deepspot_sd"
author = "deepspot_sd developers"
copyright = f"{date.today():%Y}, {author}"
try:
    release = _dist_version("deepspot-sd")
except Exception:  # noqa: BLE001 - not installed: a source checkout
    release = "0.0.0"
version = release

# -- General ---------------------------------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx_autodoc_typehints",  # after napoleon
]
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**.ipynb_checkpoints",
    "jupyter_execute",
    # docs/notebooks links to ../notebooks: only the notebooks themselves are pages
    "notebooks/**.md",
    "notebooks/**.rst",
    "notebooks/**.txt",
]
# .rst first: autosummary writes its generated stub pages with the first suffix, and they are reStructuredText
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
default_role = "literal"
pygments_style = "default"
nitpicky = True

# -- MyST / myst-nb --------------------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "amsmath", "html_image", "substitution"]
myst_heading_anchors = 3
# Tutorials run on the simulator, so they are executed (and cached) at build time; a failing cell fails the build.
nb_execution_mode = "cache"
nb_execution_raise_on_error = True
nb_execution_timeout = 1200
nb_execution_excludepatterns = []
nb_merge_streams = True
nb_execution_show_tb = True  # print the failing cell's traceback in the build log

# The tutorials live in ../notebooks (docs/notebooks is a link) and are listed by a glob toctree in index.md,
# between the markers below. Before the first notebook exists that glob would match nothing (a warning Sphinx
# gives no type, so it cannot be suppressed): then `_drop_empty_tutorials` removes the block from the page.
HAS_NOTEBOOKS = any((ROOT / "notebooks").glob("*.ipynb"))
_TUTORIALS_BLOCK = re.compile(r"<!-- tutorials:start -->.*?<!-- tutorials:end -->", flags=re.DOTALL)

# -- autodoc / autosummary / napoleon / typehints --------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "groupwise"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_param = True
typehints_defaults = "comma"
typehints_document_rtype = True
always_use_bars_union = True
typehints_use_signature = False
typehints_use_signature_return = False

# -- intersphinx -----------------------------------------------------------------------------------------------
_INTERSPHINX = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "pandas": ("https://pandas.pydata.org/pandas-docs/stable/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "spatialdata": ("https://spatialdata.scverse.org/en/stable/", None),
    "dask": ("https://docs.dask.org/en/stable/", None),
    "distributed": ("https://distributed.dask.org/en/stable/", None),
    "xarray": ("https://docs.xarray.dev/en/stable/", None),
    "squidpy": ("https://squidpy.readthedocs.io/en/stable/", None),
    "geopandas": ("https://geopandas.org/en/stable/", None),
    "shapely": ("https://shapely.readthedocs.io/en/stable/", None),
    "zarr": ("https://zarr.readthedocs.io/en/stable/", None),
}
ONLINE = os.environ.get("DOCS_INTERSPHINX", "") == "1" or os.environ.get("READTHEDOCS", "").lower() == "true"
intersphinx_mapping = _INTERSPHINX if ONLINE else {}
intersphinx_timeout = 10

# nitpicky: every reference must resolve, except these.
# - Keras/TensorFlow publish no intersphinx inventory.
# - The namespaces of the mapped projects and the stdlib modules our signatures use: offline nothing resolves into
#   them, and online their inventories lack some names that type hints expose (private module paths such as
#   ``numpy.random._generator.Generator``), which no offline build can list. Resolved references still become links
#   when intersphinx is on; an ignore only silences a reference that stays unresolved.
# Our own names (``deepspot_sd.*`` and short names in our docstrings) are never ignored. Builtins (``int``,
# ``None``) need no entry: Sphinx's Python domain resolves them itself.
_THIRD_PARTY = "|".join(sorted({*_INTERSPHINX} - {"python"}))
nitpick_ignore_regex = [
    (r"py:.*", r"(keras|tensorflow)(\..*)?"),
    (r"py:.*", rf"({_THIRD_PARTY})(\..*)?"),
    (r"py:.*", r"(typing|collections\.abc|os|pathlib)\..*"),
    (r"py:.*", r"Ellipsis"),  # the ``...`` of ``tuple[int, ...]``
]

# -- HTML ------------------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "deepspot_sd"
html_static_path = ["_static"]
html_show_sourcelink = True
html_theme_options = {
    # no repository_url yet: the project has no public remote; add it with "use_repository_button": True
    "navigation_with_keys": False,
    "show_toc_level": 2,
}


# -- Hooks -----------------------------------------------------------------------------------------------------
def _drop_empty_tutorials(app, docname, source):
    """Remove the tutorials toctree from index.md while ../notebooks holds no notebook."""
    if docname == "index" and not HAS_NOTEBOOKS:
        source[0] = _TUTORIALS_BLOCK.sub("", source[0])


def _data_docstring(app, what, name, obj, options, lines):
    """Give re-exported constants (e.g. ``datasets.STAMP``) the ``#:`` comment of their private module.

    autodoc looks for the ``#:`` doc comment in the module the name is documented under (the public subpackage),
    finds none, and falls back to the docstring of the value's type (``numpy.ndarray``'s, for an array).
    """
    if what not in ("data", "attribute") or not name.startswith("deepspot_sd."):
        return
    import importlib
    import pkgutil

    from sphinx.pycode import ModuleAnalyzer

    package_name, _, attr = name.rpartition(".")
    try:
        package = importlib.import_module(package_name)
    except ImportError:
        return
    for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        module_name = f"{package_name}.{info.name}"
        module = importlib.import_module(module_name)
        if attr not in getattr(module, "__all__", ()):
            continue
        doc = ModuleAnalyzer.for_module(module_name).find_attr_docs().get(("", attr))
        if doc:
            lines[:] = list(doc)
        return


def _resolve_short_reference(app, env, node, contnode):
    """Resolve short ``:func:`name``` references of our docstrings where the page context does not.

    Docstrings refer to siblings by their short name (``:func:`normalization_stats```). On an object's own page
    autodoc's context resolves them; in the autosummary tables of api.md (context ``deepspot_sd``) and in
    method tables of class pages it does not. Try, in order: a member of the page's object
    (``generated/<object>``), then a unique public ``deepspot_sd.<subpackage>.<name>``. Anything else stays
    unresolved and warns.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target or target.startswith("deepspot_sd."):
        return None
    from sphinx.util.nodes import make_refnode

    objects = env.get_domain("py").objects
    candidates = []
    docname = node.get("refdoc", "")
    if docname.startswith("generated/"):
        candidates.append(f"{docname.removeprefix('generated/')}.{target}")
    subpackage_hits = [name for name in (f"deepspot_sd.{sub}.{target}" for sub in _subpackages()) if name in objects]
    if len(subpackage_hits) == 1:
        candidates.append(subpackage_hits[0])
    for full_name in candidates:
        entry = objects.get(full_name)
        if entry is not None:
            return make_refnode(app.builder, docname, entry.docname, entry.node_id, contnode, full_name)
    return None


def _subpackages() -> list[str]:
    import types

    import deepspot_sd

    return [name for name in deepspot_sd.__all__ if isinstance(getattr(deepspot_sd, name, None), types.ModuleType)]


_CLI_HELP = re.compile(r"^<!-- cli-help: ?(?P<command>[\w-]*) -->$", flags=re.MULTILINE)


def _cli_help(app, docname, source):
    """Replace each ``<!-- cli-help: SUBCOMMAND -->`` line of cli.md by that subcommand's ``--help`` (never stale)."""
    if docname != "cli":
        return
    from deepspot_sd._cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices

    def render(match):
        command = match["command"]
        text = (subparsers[command] if command else parser).format_help()
        return f"```text\n$ deepspot-sd {command + ' ' if command else ''}--help\n{text}```"

    source[0] = _CLI_HELP.sub(render, source[0])


def setup(app):
    app.connect("source-read", _drop_empty_tutorials)
    app.connect("source-read", _cli_help)
    app.connect("autodoc-process-docstring", _data_docstring)
    app.connect("missing-reference", _resolve_short_reference)
