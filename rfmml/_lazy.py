"""Public names of a package imported on first use (PEP 562), for its ``__getattr__``.

``import rfmml`` and ``import rfmml.campaign`` stay cheap: a name is imported
from the module that defines it the first time it is asked for, then kept in
the package's namespace.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["load_attribute"]


def load_attribute(
    package: str, names: dict[str, str], namespace: dict[str, Any], name: str,
    *, submodules: bool = False,
) -> Any:  # fmt: skip
    """The value of ``package.name``, imported from ``names[name]`` and kept in ``namespace``.

    Parameters
    ----------
    package : str
        The package's name (``__name__``).
    names : dict of str to str
        Each public name's defining module.
    namespace : dict
        The package's ``globals()``: the value is kept there, so the package's
        ``__getattr__`` is not called for it again.
    name : str
        The name asked for.
    submodules : bool
        Also import a submodule of that name (``package.name``) on first use.

    Raises
    ------
    AttributeError
        ``name`` is neither a public name nor (with ``submodules``) a submodule.
    """
    module = names.get(name)
    if module is None:
        if submodules:
            try:
                return import_module(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    namespace[name] = value
    return value
