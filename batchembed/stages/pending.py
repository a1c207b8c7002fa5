"""A step's result on its way, whatever runs the step: a concurrent.futures.Future (a worker
process, the model's thread), a Ray reference's wrapper, or `Ready` (computed in this thread)."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

T = TypeVar("T", covariant=True)


class Pending(Protocol[T]):
    def done(self) -> bool: ...

    def result(self) -> T: ...


class Ready(Generic[T]):
    """A result computed in the calling thread."""

    def __init__(self, value: T) -> None:
        self.value = value

    def done(self) -> bool:
        return True

    def result(self) -> T:
        return self.value
