"""Graded lexical semantic change: read a gold score per word, and rank words by their usage measures.

Gold: DWUG's `stats/opt/stats_groupings.csv` (tab-separated, unquoted; `lemma` and `change_graded`
among other columns), or any CSV or TSV with a word column and a score column. Scoring: per model,
metric and measure (APD across the two groupings, PRT), Spearman's rho between the words' measure and
their gold score, as the field reports it (Schlechtweg et al. 2020, SemEval task 1 subtask 2): a
larger distance should go with more change, so no sign is flipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from batchembed.errors import InputError, UsageError

WORD_COLUMNS = ("lemma", "word", "target")  # first found wins, compared case-insensitively
SCORE_COLUMNS = ("change_graded", "change", "score", "graded")
CHANGE_MEASURES = ("apd", "prt")


def _delimiter(path: Path) -> str:
    """Tab when the header has one (DWUG, any TSV), else comma or semicolon, whichever it has."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
    except OSError as error:
        raise InputError(f"{path}: cannot read the gold file ({error.strerror or error})") from error
    for candidate in ("\t", ",", ";"):
        if candidate in header:
            return candidate
    return ","


def _pick(names: Sequence[str], wanted: Sequence[str]) -> str | None:
    lowered = {name.strip().lower(): name for name in names}
    return next((lowered[w] for w in wanted if w in lowered), None)


def read_change_gold(path: str | Path) -> dict[str, float]:
    """Word -> graded change score, from DWUG's stats_groupings.csv or a CSV/TSV of words and scores.

    Words are matched exactly as written (DWUG's lemmas carry their part of speech, e.g. `attack_nn`,
    and so do its uses). Raises InputError naming the file: unreadable, no word or score column (the
    message lists the columns it has), a score that is not a number, a word given two scores.
    """
    path = Path(path)
    delimiter = _delimiter(path)
    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=False if delimiter == "\t" else '"')
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf-8"),
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True, auto_dict_encode=False),
        )
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{path}: cannot read the gold file as CSV/TSV ({error})") from error
    word_column = _pick(table.column_names, WORD_COLUMNS)
    score_column = _pick(table.column_names, SCORE_COLUMNS)
    if word_column is None or score_column is None:
        raise InputError(
            f"{path}: a change gold file needs a word column ({', '.join(WORD_COLUMNS)}) and a score column "
            f"({', '.join(SCORE_COLUMNS)}); it has {', '.join(table.column_names) or 'no columns'}"
        )
    words = pc.cast(table.column(word_column), pa.string()).to_pylist()
    scores = pc.cast(table.column(score_column), pa.string()).to_pylist()
    gold: dict[str, float] = {}
    for line, (word, raw) in enumerate(zip(words, scores, strict=True), start=2):
        try:
            score = float(raw.strip())  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            score = math.nan
        if word is None or not word.strip() or not math.isfinite(score):
            raise InputError(
                f"{path}:{line}: needs a word in '{word_column}' and a number in '{score_column}', "
                f"got {word!r} and {raw!r}"
            )
        word = word.strip()
        if word in gold and gold[word] != score:
            raise InputError(f"{path}:{line}: '{word}' has two scores, {gold[word]} and {score}")
        gold[word] = score
    return gold


def _pair_rows(usage: pa.Table, groupings: tuple[str, str] | None) -> pa.Table:
    """One row per word: its row for the chosen pair of groupings, or its only pair row."""
    rows = usage.filter(pc.is_valid(usage.column("grouping_2")))
    if groupings is not None:
        first, second = sorted(groupings)
        keep = pc.and_(pc.equal(rows.column("grouping_1"), first), pc.equal(rows.column("grouping_2"), second))
        return rows.filter(keep)
    lemmas = rows.column("lemma").to_pylist()
    if len(set(lemmas)) != len(lemmas):
        pairs = sorted({(g1, g2) for g1, g2 in zip(rows["grouping_1"].to_pylist(), rows["grouping_2"].to_pylist())})
        raise UsageError(f"the uses output compares several pairs of groupings {pairs}: choose one to score")
    return rows


def _spearman(measures: np.ndarray, scores: np.ndarray) -> float | None:
    """Spearman's rho; None with fewer than two words or a constant side (rho is undefined)."""
    from scipy.stats import spearmanr

    if len(measures) < 2 or np.ptp(measures) == 0 or np.ptp(scores) == 0:
        return None
    return float(spearmanr(measures, scores)[0])


def score_change(
    usage_table: pa.Table,
    gold: dict[str, float],
    models: Sequence[str],
    metrics: Sequence[str],
    groupings: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Spearman between each word's measure across its two groupings and its gold score.

    One record per model, metric and measure (`apd`, `prt`): {"model", "metric", "measure",
    "spearman", "words"}, `words` being how many words entered it: in the gold and with a non-null
    measure. `groupings` picks the pair of groupings when the corpus has more than two.
    """
    rows = _pair_rows(usage_table, groupings)
    lemmas = rows.column("lemma").to_pylist()
    scores = np.array([gold.get(lemma, math.nan) for lemma in lemmas], dtype=np.float64)
    records = []
    for model in models:
        for metric in metrics:
            for measure in CHANGE_MEASURES:
                column = f"{model}_{metric}_{measure}"
                if column not in rows.column_names:
                    raise UsageError(f"the uses output has no column {column}: it was made with other models")
                values = rows.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
                known = np.isfinite(values) & np.isfinite(scores)
                records.append(
                    {
                        "model": model,
                        "metric": metric,
                        "measure": measure,
                        "spearman": _spearman(values[known], scores[known]),
                        "words": int(known.sum()),
                    }
                )
    return records
