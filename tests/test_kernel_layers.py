"""The kernel and its debug package (issue 11): ``supervision.debug`` is built on
the kernel's public API only, and the kernel never imports it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import supervision
import supervision.debug

KERNEL = Path(supervision.__file__).parent
DEBUG = Path(supervision.debug.__file__).parent


def imports(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(module, relative level, names) for every import in ``path``."""
    return imports_source(path.read_text(), str(path))


def imports_source(source: str, filename: str = "<test>") -> Iterator[tuple[str, int, list[str]]]:
    """(module, relative level, names) for every import in ``source``."""
    for node in ast.walk(ast.parse(source, filename)):
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


def imports_debug(module: str, level: int, names: list[str]) -> bool:
    """Whether an import in a kernel module (``supervision/*.py``) reaches the debug
    package: ``from .debug[.x] import ...``, ``from . import debug``, or by its
    absolute name."""
    if level == 1:
        return module.split(".")[0] == "debug" or (module == "" and "debug" in names)
    return level == 0 and module.split(".")[:2] == ["supervision", "debug"]


def test_the_kernel_never_imports_the_debug_package() -> None:
    for path in sorted(KERNEL.glob("*.py")):
        for module, level, names in imports(path):
            where = f"{path.name}: from {'.' * level}{module} import {names}"
            assert not imports_debug(module, level, names), where


@pytest.mark.parametrize(
    ("source", "reaches"),
    [
        ("from .debug import DebugServer", True),
        ("from .debug._wire import encode", True),  # the form the old check let through
        ("from . import debug", True),
        ("import supervision.debug._ops", True),
        ("from supervision.debug import ctl", True),
        ("from ._debugging import x", False),
        ("from . import _cell", False),
        ("import supervision", False),
        ("from supervision import Actor", False),
    ],
)
def test_the_debug_import_check_sees_every_form(source: str, reaches: bool) -> None:
    """Issue 11 (review, kernel finding 10): the check compared the relative module
    with "debug", so ``from .debug._wire import x`` (module "debug._wire") passed."""
    [(module, level, names)] = list(imports_source(source))
    assert imports_debug(module, level, names) is reaches


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
