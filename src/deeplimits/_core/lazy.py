"""Lazy attributes and deprecated module paths: one mechanism for the public surface.

``lazy_attributes`` gives a package a module ``__getattr__`` that imports the module
holding a name on first use, so that ``import deeplimits`` loads JAX and nothing else.
``alias_modules`` keeps old module paths importable after a move: importing
``deeplimits.kernels`` warns once (``DeprecationWarning``) and returns a module that
forwards every attribute to the new home(s).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence

__all__ = ["lazy_attributes", "alias_modules"]


def lazy_attributes(package: str, names: Mapping[str, str]
                    ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps an attribute to the module
    that defines it (``"kernel": "deeplimits.wide.kernels"``), or to ``"module:"`` plus a
    module path for a submodule attribute (``"stats": "module:deeplimits.analysis.stats"``)."""

    def __getattr__(name: str):
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if target.startswith("module:"):
            value = importlib.import_module(target[len("module:"):])
        else:
            value = getattr(importlib.import_module(target), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__


class _Alias(types.ModuleType):
    """A deprecated module path: attributes come from the first target module that has them."""

    def __init__(self, name: str, targets: Sequence[str]):
        super().__init__(name, f"Deprecated alias of {', '.join(targets)}.")
        self.__path__ = []  # a package, so that moved submodules resolve through the finder
        self._targets = tuple(targets)

    def _modules(self):
        return [importlib.import_module(t) for t in self._targets]

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        for module in self._modules():
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} (now {', '.join(self._targets)}) "
                             f"has no attribute {name!r}")

    def __dir__(self):
        return sorted({n for m in self._modules() for n in dir(m)})


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, moved: Mapping[str, Sequence[str]], prefixes: Mapping[str, str]):
        self.moved = dict(moved)
        self.prefixes = dict(prefixes)

    def targets(self, name: str) -> Sequence[str] | None:
        if name in self.moved:
            return self.moved[name]
        for old, new in self.prefixes.items():
            if name.startswith(old + "."):
                return (new + name[len(old):],)
        return None

    def find_spec(self, name, path=None, target=None):
        if self.targets(name) is None:
            return None
        return importlib.util.spec_from_loader(name, self, is_package=True)

    def create_module(self, spec):
        targets = self.targets(spec.name)
        warnings.warn(f"{spec.name} is deprecated; import from {' / '.join(targets)} "
                      "(or the top-level deeplimits namespace) instead",
                      DeprecationWarning, stacklevel=2)
        return _Alias(spec.name, targets)

    def exec_module(self, module):
        pass


def alias_modules(moved: Mapping[str, Sequence[str]],
                  prefixes: Mapping[str, str] | None = None) -> None:
    """Make each old module path of ``moved`` (old -> new modules) importable, and each
    submodule of an old package of ``prefixes`` (old package -> new package)."""
    sys.meta_path.insert(0, _AliasFinder(moved, prefixes or {}))
