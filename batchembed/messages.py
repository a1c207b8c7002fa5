"""Text for one-line messages: every error names what, where and how to fix on a single line."""

from __future__ import annotations


def show(value: object) -> str:
    """A path or name for a one-line message: control characters escaped, surrogates replaced."""
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (Arrow's span several) with control characters
    escaped (Arrow copies raw bytes of a damaged file into it), for `file: what (why); fix` errors."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return show(" ".join(str(text).split()))
