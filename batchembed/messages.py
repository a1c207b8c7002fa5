"""Text for people: one-line messages (every error names what, where and how to fix on a single
line) and fixed-width text tables."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def show(value: object) -> str:
    """A path or name for a one-line message: control characters escaped, surrogates replaced."""
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (Arrow's span several) with control characters
    escaped (Arrow copies raw bytes of a damaged file into it), for `file: what (why); fix` errors."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return show(" ".join(str(text).split()))


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: Collection[int]) -> list[str]:
    """Fixed-width lines: the header, a rule, the rows; columns in `left` left-aligned (words),
    the others right-aligned (numbers)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]
