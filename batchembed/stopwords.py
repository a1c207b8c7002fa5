"""English function words: what `--skip-stopwords` leaves out of shared-word mode, and what the
report leaves out of its per-word panels.

Shared-word mode compares every word type two sentences share, so on ordinary prose most rows are
"the" x "the", "and" x "and": correct, but rarely what a user wants to read. The list is small on
purpose (articles, pronouns, auxiliaries, prepositions, conjunctions and flair's clitic tokens),
so content words are never dropped; a file of one word per line replaces it.
"""

from __future__ import annotations

from pathlib import Path

from batchembed.errors import UsageError

BUILT_IN = "english"
_WORDS = """
a an the this that these those
i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself
she her hers herself it its itself they them their theirs themselves
who whom whose which what
am is are was were be been being have has had having do does did doing
will would shall should can could may might must
and or but nor so yet if then than because as while although though
of at by for with about against between into through during before after above below to from
up down in out on off over under
again further once here there when where why how
all any both each few more most other some such no not only own same too very
just also s t 's n't 'm 're 've 'll 'd
"""
ENGLISH = frozenset(_WORDS.split())


def load_stopwords(spec: str) -> tuple[str, ...]:
    """The built-in list ("english") or a UTF-8 text file of one word per line (# starts a comment),
    casefolded and sorted, so the same words give the same output fingerprint."""
    if spec == BUILT_IN:
        return tuple(sorted(ENGLISH))
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--stopwords {spec}: cannot read it ({exc.__class__.__name__}); give 'english' or a UTF-8 text "
            "file with one word per line"
        ) from exc
    words = {line.split("#", 1)[0].strip().casefold() for line in text.splitlines()}
    words.discard("")
    if not words:
        raise UsageError(f"--stopwords {spec}: holds no words; give one word per line")
    return tuple(sorted(words))
