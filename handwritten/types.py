"""Type aliases used in public signatures."""

from __future__ import annotations

from typing import TypeVar, Union

T = TypeVar("T")

OneOrMany = Union[T, list[T]]  # noqa: UP007 (a generic alias needs Union on Python 3.10)
"""A single value or a list of values of the same type."""
