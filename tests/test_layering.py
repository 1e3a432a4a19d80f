"""The sans-I/O core must never do I/O, block, or depend on the I/O layer.

Each core module is parsed with :mod:`ast`, never imported, and every import it contains is
checked: top-level ``import`` and ``from ... import`` statements, imports nested in functions or
in ``if TYPE_CHECKING:`` blocks, and calls to ``__import__`` or ``importlib.import_module``.

Two rules:

1. No core module imports a module that does I/O, blocks or starts threads (:data:`FORBIDDEN`).
2. Every ``syncws`` module that a core module imports is itself a core module, so the I/O layer
   can depend on the core but never the other way round.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "syncws"

# The core is one folder: every module under it is checked, found by globbing.
CORE_DIR = PACKAGE_DIR / "core"

# Modules outside the core that it may import, because both layers share them. They are
# checked by the same rules, so they are as pure as the core.
SHARED_MODULES = ("exceptions.py",)

# Core modules written in C: the optional accelerator. The C source may only include these
# headers, so it can do no I/O either.
COMPILED_CORE = {"core/speedups": frozenset({"Python.h", "stdint.h", "string.h"})}

# Top-level modules that a core module may not import, directly or through a submodule.
FORBIDDEN = frozenset(
    {
        "_thread",
        "asyncio",
        "concurrent",
        "multiprocessing",
        "queue",
        "select",
        "selectors",
        "socket",
        "ssl",
        "subprocess",
        "threading",
        "time",
    }
)

DYNAMIC_IMPORTERS = frozenset({"__import__", "import_module"})


def core_paths() -> list[Path]:
    """The files of the core, then the shared modules."""
    return sorted(CORE_DIR.rglob("*.py")) + [PACKAGE_DIR / name for name in SHARED_MODULES]


def dotted_name(path: Path) -> str:
    """``syncws/core/extensions/foo.py`` -> ``syncws.core.extensions.foo``; packages drop
    ``__init__``."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_names() -> frozenset[str]:
    compiled = {"syncws." + name.replace("/", ".") for name in COMPILED_CORE}
    return frozenset(dotted_name(path) for path in core_paths()) | compiled


def is_module(name: str) -> bool:
    """Whether a dotted ``syncws...`` name is a module or package in the source tree."""
    base = PACKAGE_DIR.parent.joinpath(*name.split("."))
    return (
        base.with_suffix(".py").is_file()
        or base.with_suffix(".pyi").is_file()
        or (base / "__init__.py").is_file()
    )


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Resolve ``from {'.' * level}{target} import ...`` written in ``module``."""
    parts = module.split(".")
    if not is_package:
        parts.pop()  # a plain module's imports are relative to its package
    drop = level - 1
    if drop > len(parts) - 1:
        raise ValueError(f"relative import beyond the top-level package in {module}")
    if drop:
        parts = parts[:-drop]
    if target:
        parts.append(target)
    return ".".join(parts)


def _imported_names(
    tree: ast.AST, module: str, is_package: bool, module_exists: Callable[[str], bool]
) -> Iterator[tuple[int, str]]:
    """Yield ``(line, dotted module name)`` for every import found anywhere in ``tree``.

    A dynamic import whose argument is not a string literal yields ``"<dynamic>"``.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            else:
                base = node.module or ""
            if base == "__future__":
                continue
            # ``from pkg import name`` imports the submodule pkg.name when there is one.
            submodules = [
                f"{base}.{alias.name}"
                for alias in node.names
                if base.split(".")[0] == "syncws" and module_exists(f"{base}.{alias.name}")
            ]
            if len(submodules) < len(node.names):
                yield node.lineno, base
            for name in submodules:
                yield node.lineno, name
        elif isinstance(node, ast.Call):
            func = node.func
            func_name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else None
            )
            if func_name not in DYNAMIC_IMPORTERS:
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                name = first.value
                if name.startswith("."):
                    level = len(name) - len(name.lstrip("."))
                    name = _resolve_relative(module, is_package, level, name.lstrip(".") or None)
                yield node.lineno, name
            else:
                yield node.lineno, "<dynamic>"


def find_violations(
    source: str,
    module: str,
    *,
    is_package: bool = False,
    core: frozenset[str] | None = None,
    module_exists: Callable[[str], bool] = is_module,
) -> list[str]:
    """Return a description of each layering violation in ``source``, the code of ``module``."""
    if core is None:
        core = core_names()
    tree = ast.parse(source, filename=module)
    violations = []
    for line, name in _imported_names(tree, module, is_package, module_exists):
        top = name.split(".")[0]
        if name == "<dynamic>":
            violations.append(f"line {line}: dynamic import of a computed name")
        elif top in FORBIDDEN:
            violations.append(f"line {line}: imports {name}, which the core may not use")
        elif top == "syncws" and name not in core:
            violations.append(
                f"line {line}: imports {name}, which is not a core module"
                " (the core imports only syncws.core and the shared modules)"
            )
    return violations


@pytest.mark.parametrize(
    "path", core_paths(), ids=lambda path: str(path.relative_to(PACKAGE_DIR.parent))
)
def test_core_module_imports_only_pure_modules(path: Path) -> None:
    assert path.is_file(), f"core module {path.name} is missing"
    violations = find_violations(
        path.read_text(encoding="utf-8"),
        dotted_name(path),
        is_package=path.name == "__init__.py",
    )
    assert violations == []


# The checker itself must catch what it is meant to catch, or the tests above prove nothing.

CORE = frozenset(
    {
        "syncws.core.frames",
        "syncws.core.protocol",
        "syncws.core.extensions",
        "syncws.core.extensions.x",
    }
)


def _exists(name: str) -> bool:
    return name in CORE or name in {"syncws", "syncws.sync", "syncws.sync.client"}


def _check(
    source: str, module: str = "syncws.core.frames", *, is_package: bool = False
) -> list[str]:
    return find_violations(source, module, is_package=is_package, core=CORE, module_exists=_exists)


@pytest.mark.parametrize(
    "source",
    [
        "import socket",
        "import socket as s",
        "import os, ssl",
        "import concurrent.futures",
        "from threading import Thread",
        "from concurrent.futures import ThreadPoolExecutor",
        "from time import monotonic",
        "import _thread",
        "import multiprocessing.pool",
        "import asyncio",
        "from queue import Queue",
        "import selectors",
        "from select import poll",
        "import subprocess",
        "def f():\n    import time\n    return time.time()",
        "class C:\n    def m(self):\n        from socket import socket\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ssl\n",
        "try:\n    import ssl\nexcept ImportError:\n    ssl = None\n",
        "__import__('socket')",
        "import importlib\nimportlib.import_module('threading')",
        "from importlib import import_module\nimport_module('time')",
        "import importlib\nname = 'sock' + 'et'\nimportlib.import_module(name)",
        "import syncws.sync.client",
        "from syncws.sync import client",
        "from .sync import client",
        "from .sync.client import connect",
        "from syncws import connect",
        "from . import connect",
        "import syncws",
    ],
)
def test_checker_catches_violation(source: str) -> None:
    assert _check(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import os\nimport struct\nimport zlib\nfrom collections.abc import Generator",
        "import enum, dataclasses, secrets, hashlib, base64, binascii, re, codecs",
        "from . import protocol",
        "from .protocol import Protocol",
        "from syncws.core.protocol import Protocol",
        "import syncws.core.protocol",
        "from .extensions import x",
        "from .extensions.x import Thing",
        "import timeit_like_name",
        "def f():\n    from .protocol import Protocol\n    return Protocol",
        "__import__('zlib')",
    ],
)
def test_checker_accepts_pure_code(source: str) -> None:
    assert _check(source) == []


def test_relative_imports_resolve_from_a_subpackage() -> None:
    assert _check("from .. import protocol", "syncws.core.extensions.x") == []
    assert _check("from ..protocol import Protocol", "syncws.core.extensions.x") == []
    assert _check("from . import x", "syncws.core.extensions", is_package=True) == []
    assert _check("from .. import sync", "syncws.core.extensions.x") != []
    assert _check("from ..sync.client import connect", "syncws.core.extensions.x") != []


def test_relative_import_beyond_the_package_is_an_error() -> None:
    with pytest.raises(ValueError, match="beyond the top-level package"):
        _check("from .... import x", "syncws.core.extensions.x")


def test_violation_message_names_line_and_module() -> None:
    assert _check("import struct\nfrom threading import Lock") == [
        "line 2: imports threading, which the core may not use"
    ]
    assert _check("\n\nfrom ..sync import client") == [
        "line 3: imports syncws.sync.client, which is not a core module"
        " (the core imports only syncws.core and the shared modules)"
    ]


@pytest.mark.parametrize("name", sorted(COMPILED_CORE))
def test_compiled_core_includes_only_pure_headers(name: str) -> None:
    source = (PACKAGE_DIR / f"{name}.c").read_text()
    includes = {
        line.split()[1].strip('<>"')
        for line in source.splitlines()
        if line.startswith("#include")
    }
    assert includes
    assert includes <= COMPILED_CORE[name], includes - COMPILED_CORE[name]
