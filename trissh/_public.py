"""``@public``: a class or function that ``trissh`` exports reports itself as ``trissh.X``.

Users meet these names as ``trissh.X``; so should ``repr(type(obj))``, tracebacks, pickles and the
API docs, not the private module that happens to define them (``trissh._errors.PermissionDenied``).
Set where the name is defined, not when ``trissh.X`` is first looked up: ``conn.run()`` hands out
a ``CompletedProcess`` whether or not the program ever spelled ``trissh.CompletedProcess``.

Pickle finds such a class again as ``getattr(trissh, name)``, which works for the lazily imported
names too (``trissh.__getattr__`` imports their module). The cost: ``typing.get_type_hints()`` on
such a class looks its string annotations up in ``trissh``'s namespace, which lacks most of them.
Applied after ``@dataclass`` (outermost), so that dataclasses still reads ``ClassVar`` annotations
in the defining module.
"""

from __future__ import annotations

from typing import Final, TypeVar

__all__ = ["PUBLIC_MODULE", "public"]

#: Where the public names live, as far as users can tell.
PUBLIC_MODULE: Final = "trissh"

_T = TypeVar("_T")


def public(obj: _T) -> _T:
    """Mark ``obj`` (a class or function exported from ``trissh``) as ``trissh.<its name>``."""
    obj.__module__ = PUBLIC_MODULE
    return obj
