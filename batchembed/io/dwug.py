"""The DWUG/DURel layout of word uses (Schlechtweg et al. 2021), read as published.

A corpus is a directory of per-word folders, `data/<word>/uses.csv` (or `<word>/uses.csv`), each a
tab-separated file with columns `lemma`, `pos`, `date`, `grouping`, `identifier`, `description`,
`context`, `indexes_target_token` (`start:end`, character offsets of the target in `context`),
`indexes_target_sentence`, and tokenized/lemmatized variants. The files are not quoted: a context may
start with `"` and hold unbalanced quotes (the field's own code reads them with pandas'
`quoting=csv.QUOTE_NONE`, ChangeIsKey/LSCDBenchmark `src/lemma.py`), so quoting is off here too.

`dwug_uses` turns such a table into the uses job's canonical columns. A malformed target (not
`start:end` with 0 <= start < end) becomes a null span, which the job reports as the row's status.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

USES_FILE = "uses.csv"
REQUIRED = ("lemma", "grouping", "identifier", "context", "indexes_target_token")  # what recognises it
TEXT_COLUMNS = (
    *REQUIRED,
    "pos",
    "date",
    "description",
    "indexes_target_sentence",
    "context_tokenized",
    "indexes_target_token_tokenized",
    "indexes_target_sentence_tokenized",
    "context_lemmatized",
)
CANONICAL = pa.schema(
    [
        pa.field("sentence", pa.string()),
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
        pa.field("lemma", pa.string()),
        pa.field("grouping", pa.string()),
        pa.field("use_id", pa.string()),
    ]
)

# For pyarrow.csv.open_csv / read_csv: tab-separated, no quoting, every DWUG column as text (an
# identifier such as 0012 or a grouping 1 stays the string the file holds).
PARSE_OPTIONS = pacsv.ParseOptions(delimiter="\t", quote_char=False)
CONVERT_OPTIONS = pacsv.ConvertOptions(
    column_types={name: pa.string() for name in TEXT_COLUMNS}, strings_can_be_null=False
)
_SPAN = r"^\s*(?P<start>\d{1,9})\s*:\s*(?P<end>\d{1,9})\s*$"  # 9 digits always fit an int32


def is_dwug_header(column_names: Iterable[str]) -> bool:
    """True when the columns include DWUG's uses columns (others, and any order, are fine)."""
    return set(REQUIRED) <= set(column_names)


def _header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline().rstrip("\r\n").split("\t")
    except OSError:
        return []


def find_dwug_files(path: str | Path) -> list[str] | None:
    """The uses.csv files of a DWUG corpus at `path`, sorted; None when `path` is not one.

    `path` may be one uses file (any name, with a DWUG header), a word folder holding `uses.csv`, or
    a corpus: a directory of word folders, `data/<word>/uses.csv` (the published layout) or
    `<word>/uses.csv`. Every file found must have a DWUG header, else this is not a DWUG corpus.
    """
    root = Path(path)
    if root.is_file():
        return [str(root)] if is_dwug_header(_header(root)) else None
    if not root.is_dir():
        return None
    for pattern in ("data/*/" + USES_FILE, "*/" + USES_FILE, USES_FILE):
        found = sorted(root.glob(pattern))
        if found:
            return [str(f) for f in found] if all(is_dwug_header(_header(f)) for f in found) else None
    return None


def read_dwug_file(path: str | Path) -> pa.Table:
    """One uses.csv as published (all of its columns as text)."""
    return pacsv.read_csv(path, parse_options=PARSE_OPTIONS, convert_options=CONVERT_OPTIONS)


def _text(table: pa.Table, name: str) -> pa.ChunkedArray:
    return pc.cast(table.column(name), pa.string())


def dwug_uses(table: pa.Table) -> pa.Table:
    """DWUG columns -> the uses job's canonical columns (`CANONICAL`), row for row.

    sentence <- context, start/end <- indexes_target_token (null when malformed), lemma, grouping
    (as text: DWUG's groupings are numbers such as 1 and 2), use_id <- identifier.
    """
    missing = [name for name in REQUIRED if name not in table.column_names]
    if missing:
        raise ValueError(f"not a DWUG uses table: no column(s) {missing}; it has {table.column_names}")
    spans = pc.extract_regex(pc.fill_null(_text(table, "indexes_target_token"), ""), _SPAN)
    start = pc.cast(pc.struct_field(spans, "start"), pa.int32())
    end = pc.cast(pc.struct_field(spans, "end"), pa.int32())
    ordered = pc.less(start, end)  # a span must cover at least one character
    return pa.Table.from_arrays(
        [
            _text(table, "context"),
            pc.if_else(ordered, start, pa.scalar(None, pa.int32())),
            pc.if_else(ordered, end, pa.scalar(None, pa.int32())),
            _text(table, "lemma"),
            _text(table, "grouping"),
            _text(table, "identifier"),
        ],
        schema=CANONICAL,
    )
