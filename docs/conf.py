"""Sphinx configuration for the syncws documentation."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext.napoleon.docstring import GoogleDocstring
from sphinx.util.nodes import make_refnode

ROOT = Path(__file__).resolve().parent.parent

# Document the source tree next to this file, whether or not it is installed.
sys.path.insert(0, str(ROOT))

_version_file = (ROOT / "syncws" / "version.py").read_text(encoding="utf-8")
_match = re.search(r'^__version__ = "([^"]+)"', _version_file, re.MULTILINE)
if _match is None:
    raise RuntimeError("__version__ not found in syncws/version.py")

project = "syncws"
author = "the syncws developers"
copyright = "2026, the syncws developers"
release = _match.group(1)
version = ".".join(release.split(".")[:2])

# No intersphinx: documentation builds must not need the network.
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

exclude_patterns = ["_build"]

# Docstrings are Google style.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Render "Attributes:" sections as fields, so that they do not clash with the attributes that
# :undoc-members: documents.
napoleon_use_ivar = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Add types to the parameters that a docstring describes, not a bare list of all of them.
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True

# The build runs nitpicky (-n). Without intersphinx, references into the standard library,
# typeshed, typing_extensions, Werkzeug (syncws.router's URL map) and prometheus_client
# (syncws.prometheus) cannot resolve: only those are ignored, so that a broken reference to
# syncws's own API still fails the build.
_external = sorted(
    {*sys.stdlib_module_names, "_typeshed", "typing_extensions", "werkzeug", "prometheus_client"}
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(map(re.escape, _external))})(\..*)?"),
    # typeshed protocols that annotations import under TYPE_CHECKING appear unqualified.
    (r"py:class", r"SupportsKeysAndGetItem|SupportsRead|SupportsWrite|ReadableBuffer"),
    # Standard library classes imported by name, e.g. ``from ssl import SSLContext``.
    (r"py:class", r"SSLContext"),
    # Werkzeug's URL map, as syncws.router imports it by name.
    (r"py:class", r"Map"),
    # prometheus_client's classes, as syncws.prometheus imports them by name.
    (r"py:class", r"CollectorRegistry|Metric"),
    # Private names, such as a module's TypeVar _T, are not documented on purpose.
    (r"py:class", r"([\w.]+\.)?_[A-Za-z0-9]\w*"),
]


# Napoleon reads the first line of a property or attribute docstring as "type: description"
# when it contains a colon. syncws annotates every property, so such a line is always prose:
# keep it whole instead of turning its start into a bogus type.
def _attribute_docstring_as_prose(self: GoogleDocstring) -> list[str]:
    lines = [self._lines.next(), *self._dedent(self._consume_to_end())]
    return self.__class__(lines, self._config).lines()


if hasattr(GoogleDocstring, "_parse_attribute_docstring"):
    GoogleDocstring._parse_attribute_docstring = _attribute_docstring_as_prose  # type: ignore[method-assign]


# Type aliases (``HeadersLike = Union[...]``) are documented as data, but annotations refer to
# them as classes. Let such a reference find the alias.
def _resolve_type_alias(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    if node.get("refdomain") != "py" or node.get("reftype") != "class":
        return None
    target = node["reftarget"]
    module = node.get("py:module")
    objects = env.get_domain("py").objects  # type: ignore[attr-defined]
    for name in (target, f"{module}.{target}" if module else None):
        entry = objects.get(name) if name else None
        if entry is not None and entry.objtype == "data":
            return make_refnode(
                app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name
            )
    # An unqualified name inside an alias's value (``Union[Headers, ...]``): accept it when
    # exactly one documented class has that name.
    if "." not in target:
        matches = [
            (name, entry)
            for name, entry in objects.items()
            if name.endswith(f".{target}") and entry.objtype == "class"
        ]
        if len(matches) == 1:
            name, entry = matches[0]
            return make_refnode(
                app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name
            )
    return None


# The guides name the API as applications import it, ``syncws.connect`` or
# ``syncws.Connection.recv``, while autodoc documents each object in its module. Let such a
# reference find the object that the top-level package re-exports.
def _resolve_reexport(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    parts = target.split(".")
    if len(parts) < 2 or parts[0] != "syncws":
        return None
    import syncws  # noqa: PLC0415

    exported = getattr(syncws, parts[1], None)
    module = getattr(exported, "__module__", None)
    if module is None or parts[1] not in syncws.__all__:
        return None
    name = ".".join([module, *parts[1:]])
    entry = env.get_domain("py").objects.get(name)  # type: ignore[attr-defined]
    if entry is None:
        return None
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)


# An attribute listed in a class's "Attributes:" section is rendered as a field of the class
# (napoleon_use_ivar), which is no target of its own. Let a reference to it,
# ``ReadOwnership.check_at``, find the class, provided the class does list it.
def _resolve_listed_attribute(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    if node.get("refdomain") != "py" or node.get("reftype") != "attr":
        return None
    owner, _, attribute = node["reftarget"].lstrip("~.").rpartition(".")
    if not owner:
        return None
    module = node.get("py:module")
    objects = env.get_domain("py").objects  # type: ignore[attr-defined]
    for name in (owner, f"{module}.{owner}" if module else None):
        entry = objects.get(name) if name else None
        if entry is None or entry.objtype != "class":
            continue
        module_name, _, class_name = name.rpartition(".")
        cls = getattr(sys.modules.get(module_name), class_name, None)
        doc = inspect.getdoc(cls) or ""
        section = doc.partition("\nAttributes:\n")[2]
        if re.search(rf"^    {re.escape(attribute)}:", section, re.MULTILINE):
            return make_refnode(
                app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name
            )
    return None


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _resolve_type_alias)
    app.connect("missing-reference", _resolve_reexport)
    app.connect("missing-reference", _resolve_listed_attribute)


html_theme = "alabaster"
html_title = f"syncws {release}"
html_theme_options = {
    "description": "Synchronous, thread-based WebSockets",
    "fixed_sidebar": True,
    # Room for a code line of 100 characters next to the sidebar; see _static/syncws.css.
    "page_width": "1180px",
    "sidebar_width": "200px",
    "body_max_width": "none",
}
html_static_path = ["_static"]
html_css_files = ["syncws.css"]
