"""From the uses' vectors to the per-word table (and the sampled pairs): the uses job's last step.

The embedding step (usage/job.py, on the one task path) wrote one row per use with each model's
vector of its target. Here the rows are grouped by word key, each word's measures computed
(usage/measures.py: APD, PRT, spread, blocked products on the given device), and, with
`pair_distances`, each word's pairs sampled (usage/sampling.py) and their distances listed.

A use takes part only when it has every model's vector, a word key and, in a corpus with
groupings, a grouping; every other use is counted under its reason (`use_counts`), never given
a made-up distance. A word key is the lemma column's value where the input has one, else the
target's surface form, lowercased.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from batchembed import status
from batchembed.io.schema import PAIR_WORD_FIELDS
from batchembed.usage.measures import METRICS, usage_table, word_rows
from batchembed.usage.sampling import pair_distances, sample_pairs

if TYPE_CHECKING:
    import torch

MISSING_KEY = "missing_key"  # no lemma and no target word to key the use by
MISSING_GROUPING = "missing_grouping"  # the corpus has groupings, this use has none


@dataclass
class Aggregated:
    words: pa.Table  # usage/measures.py usage_schema
    pairs: pa.Table | None  # pairs_schema, with --pair-distances
    use_counts: Counter[str] = field(default_factory=Counter)  # uses by status ("ok": measured)
    word_counts: Counter[str] = field(default_factory=Counter)  # word rows by status


def pairs_schema(model_names: Sequence[str], metrics: Sequence[str] = METRICS) -> pa.Schema:
    """The sampled pairs, in `run`'s long format for the two uses, with the word and groupings."""
    return pa.schema(
        [
            pa.field("lemma", pa.string(), nullable=False),
            pa.field("grouping_1", pa.string()),
            pa.field("grouping_2", pa.string()),
            pa.field("use_id_1", pa.string(), nullable=False),
            pa.field("use_id_2", pa.string(), nullable=False),
            *PAIR_WORD_FIELDS,  # run's: word_1 ... char_end_2
            *(pa.field(f"{model}_{metric}", pa.float32()) for model in model_names for metric in metrics),
            pa.field("pairs_total", pa.int64(), nullable=False),  # the word's pairs on these sides
            pa.field("sampled", pa.bool_(), nullable=False),  # True: these are max_pairs of pairs_total
        ]
    )


def aggregate(
    uses: pa.Table,
    model_names: Sequence[str],
    lemma_column: str | None,
    grouping_column: str | None,
    *,
    pair_distances_wanted: bool = False,
    max_pairs_per_word: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Aggregated:
    """`uses`: the embedding step's rows (io/schema.py vector_schema). Returns the word table,
    sorted by word and groupings, and the pairs when asked for."""
    counts: Counter[str] = Counter()
    keys = _keys(uses, lemma_column)
    groups = _groups(uses, grouping_column)
    usable = np.array([s == status.OK for s in uses.column("status").to_pylist()], dtype=bool)
    for reason, n in Counter(s for s in uses.column("status").to_pylist() if s != status.OK).items():
        counts[reason] += n
    no_key = usable & np.array([k is None for k in keys], dtype=bool)
    counts[MISSING_KEY] += int(no_key.sum())
    usable &= ~no_key
    groupings = sorted({g for g, ok in zip(groups, usable) if ok and g is not None})
    if groupings:
        no_group = usable & np.array([g is None for g in groups], dtype=bool)
        counts[MISSING_GROUPING] += int(no_group.sum())
        usable &= ~no_group
    counts[status.OK] += int(usable.sum())
    counts = Counter({reason: n for reason, n in counts.items() if n})
    rows: list[dict[str, Any]] = []
    pairs: list[pa.Table] = []
    index = np.flatnonzero(usable)
    vectors = {m: _matrix(uses.column(m), index) for m in model_names}
    order = sorted(range(len(index)), key=lambda k: (keys[index[k]], str(groups[index[k]])))
    by_word: dict[str, list[int]] = {}
    for k in order:
        by_word.setdefault(keys[index[k]], []).append(k)
    for lemma, members in by_word.items():
        rows_of = np.array(members, dtype=np.int64)
        word_groups = [groups[index[k]] for k in members]
        word_vectors = {m: v[rows_of] for m, v in vectors.items()}
        rows += word_rows(lemma, word_vectors, word_groups, groupings, device=device)
        if pair_distances_wanted:
            pairs += _word_pairs(
                uses, index[rows_of], lemma, word_vectors, word_groups, groupings, max_pairs_per_word, seed, device
            )
    words = usage_table(rows, model_names)
    word_counts: Counter[str] = Counter()
    for value in words.column("status").to_pylist():
        word_counts.update(value.split(";"))
    schema = pairs_schema(model_names)
    pair_table = (pa.concat_tables(pairs) if pairs else schema.empty_table()) if pair_distances_wanted else None
    return Aggregated(words, pair_table, counts, word_counts)


def _keys(uses: pa.Table, lemma_column: str | None) -> list[str | None]:
    """Each use's word key: its lemma, else its target's surface form lowercased; None if neither."""
    words = uses.column("word").to_pylist()
    lemmas = uses.column(lemma_column).to_pylist() if lemma_column else [None] * len(words)
    keys = []
    for lemma, word in zip(lemmas, words):
        text = None if lemma is None else str(lemma).strip()
        if not text:
            text = None if word is None else word.lower()
        keys.append(text or None)
    return keys


def _groups(uses: pa.Table, grouping_column: str | None) -> list[str | None]:
    if not grouping_column:
        return [None] * uses.num_rows
    values = uses.column(grouping_column).to_pylist()
    return [None if v is None or not str(v).strip() else str(v) for v in values]


def _matrix(column: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """The chosen rows' vectors of a fixed-size list column, as one float32 matrix."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    dim = array.type.list_size
    # a fixed-size list stores a slot for every row, null ones too: the values, row by row
    flat = array.values.to_numpy(zero_copy_only=False)[array.offset * dim : (array.offset + len(array)) * dim]
    return np.ascontiguousarray(flat.reshape(-1, dim)[rows], dtype=np.float32)


def _word_pairs(
    uses: pa.Table,
    rows: np.ndarray,
    lemma: str,
    vectors: dict[str, np.ndarray],
    groups: list[str | None],
    groupings: list[str],
    max_pairs: int | None,
    seed: int,
    device: Any,
) -> list[pa.Table]:
    """The word's sampled pairs: across each pair of groupings, or within its one side."""
    members: dict[str | None, np.ndarray] = {}
    sides_of: list[str | None] = list(groupings) or [None]
    for side in sides_of:
        members[side] = np.array([k for k, g in enumerate(groups) if g == side], dtype=np.int64)
    sides = list(members)
    tables = []
    if len(sides) == 1:
        combos: list[tuple[str | None, str | None]] = [(sides[0], None)]
    else:
        combos = [(a, b) for n, a in enumerate(sides) for b in sides[n + 1 :]]
    for first, second in combos:
        left = members[first]
        right = members[second] if second is not None or len(sides) > 1 else None
        if not len(left) or (right is not None and not len(right)):
            continue
        total = len(left) * len(right) if right is not None else len(left) * (len(left) - 1) // 2
        i, j = sample_pairs(len(left), None if right is None else len(right), max_pairs, seed, lemma, [first, second])
        a, b = left[i], (left if right is None else right)[j]
        columns: dict[str, Any] = {
            "lemma": [lemma] * len(a),
            "grouping_1": [first] * len(a),
            "grouping_2": [second if right is not None else first] * len(a),
        }
        for side, picked in (("1", a), ("2", b)):
            taken = uses.take(pa.array(rows[picked]))
            columns[f"use_id_{side}"] = taken.column("use_id")
            columns[f"word_{side}"] = taken.column("word")
            columns[f"token_index_{side}"] = taken.column("token_index")
            columns[f"char_start_{side}"] = taken.column("char_start")
            columns[f"char_end_{side}"] = taken.column("char_end")
        for model, matrix in vectors.items():
            for metric in METRICS:
                columns[f"{model}_{metric}"] = pair_distances(matrix, a, b, metric, device=device)
        columns["pairs_total"] = [total] * len(a)
        columns["sampled"] = [len(a) < total] * len(a)
        tables.append(pa.table(columns, schema=pairs_schema(list(vectors))))
    return tables
