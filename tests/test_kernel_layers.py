"""The kernel and its debug package (issue 11): ``supervision.debug`` is built on
the kernel's public API only, and the kernel never imports it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import supervision
import supervision.debug

KERNEL = Path(supervision.__file__).parent
DEBUG = Path(supervision.debug.__file__).parent


def imports(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(module, relative level, names) for every import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0, []


def test_the_debug_package_uses_the_public_kernel_api_only() -> None:
    for path in sorted(DEBUG.glob("*.py")):
        for module, level, names in imports(path):
            where = f"{path.name}: from {'.' * level}{module} import {names}"
            assert level <= 1, where  # ``from .. import`` would reach into the kernel
            if level == 0 and module.startswith("supervision"):
                assert module == "supervision", where
                assert set(names) <= set(supervision.__all__), where


def test_the_kernel_never_imports_the_debug_package() -> None:
    for path in sorted(KERNEL.glob("*.py")):
        for module, level, names in imports(path):
            where = f"{path.name}: from {'.' * level}{module} import {names}"
            assert not (level == 1 and (module == "debug" or "debug" in names)), where
            assert not (level == 0 and module.startswith("supervision.debug")), where


def test_public_names() -> None:
    assert sorted(supervision.debug.__all__) == sorted(
        [
            "DEBUG_SOCKET_NAME",
            "AuditHook",
            "CtlError",
            "DebugClient",
            "DebugError",
            "DebugServer",
            "DebugSocketError",
            "ErrorKind",
            "Peer",
            "RemoteError",
            "ctl",
            "render_tree",
        ]
    )
    assert not set(supervision.debug.__all__) & set(supervision.__all__)
    for package in (supervision, supervision.debug):
        for name in package.__all__:
            assert getattr(package, name) is not None, name
