"""A result directory -> one self-contained HTML page of plots, plus the same plots as PNG files.

Reads only the columns the plots need from the Parquet parts `batchembed run` wrote. Plots are
drawn with matplotlib's object API (`Figure`, rendered by Agg), so no GUI backend and no pyplot
global state are involved, and embedded in the page as base64 PNG: the page needs no other file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from batchembed.embedders.distances import METRICS
from batchembed.errors import InputError, OutputError
from batchembed.stopwords import ENGLISH

if TYPE_CHECKING:
    import pyarrow as pa
    from matplotlib.figure import Figure

REPORT_DIR = "report"  # in <output>.batchembed/ for a local output
PAGE = "report.html"
TOP_WORDS = 20  # bars in the word-variation chart
LABELLED_POINTS = 10  # words named in the scatter plot
DPI = 100


@dataclass
class Result:
    """The columns of a result directory the plots need, and how it was made."""

    path: str  # the output directory as given: a local path or a URI
    table: pa.Table  # word_1, word_2, status and every distance column
    models: list[str]  # column prefixes, in output order
    metadata: dict[str, Any]
    summary: dict[str, Any]  # <output>.batchembed/summary.json, when present
    keep_stopwords: bool = False  # the per-word plots keep function words too

    def word_rows(self) -> pa.Table:
        """The rows the per-word plots use: without pairs of two function words ("the" x "the"),
        which otherwise top every per-word chart, unless `keep_stopwords`."""
        return self.table if self.keep_stopwords else content_words(self.table)

    def kind(self, model: str) -> str:
        for described in self.metadata.get("models", []):
            if described.get("name") == model:
                return str(described.get("kind", ""))
        return ""

    @property
    def static(self) -> str | None:
        """The static model (GloVe): the first whose kind says so, else the first model."""
        fallback = self.models[0] if len(self.models) > 1 else None
        return next((m for m in self.models if self.kind(m) == "glove"), fallback)

    @property
    def contextual(self) -> str:
        """The contextual model (BERT): the first transformer, else the last model."""
        return next((m for m in self.models if self.kind(m) == "transformer"), self.models[-1])


def read_result(output: str) -> Result:
    """Only the needed columns of every part; the schema and metadata from the first part.
    `output` is a local path or a URI (io/storage.py)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from batchembed.io.layout import OutputLayout
    from batchembed.io.schema import read_metadata
    from batchembed.io.storage import locate

    layout = OutputLayout.of(locate(str(output)))
    parts = [layout.part(shard) for shard in sorted(layout.parts())]
    if not parts:
        raise InputError(f"{output}: no result parts (part-*.parquet); write them with `batchembed run -o {output}`")
    fs = layout.data.fs
    try:
        schema = pq.read_schema(parts[0].path, filesystem=fs)
        models = [n[: -len("_euclidean")] for n in schema.names if n.endswith("_euclidean")]
        models = [m for m in models if all(f"{m}_{metric}" in schema.names for metric in METRICS)]
        columns = ["word_1", "word_2", "status", *(f"{m}_{metric}" for m in models for metric in METRICS)]
        missing = [c for c in columns[:3] if c not in schema.names]
        if missing or not models:
            raise InputError(f"{parts[0]}: not a batchembed result (no {missing[0] if missing else 'distance'} column)")
        table = pa.concat_tables(pq.read_table(part.path, columns=columns, filesystem=fs) for part in parts)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{output}: cannot read the result parts: {exc}") from exc
    summary = json.loads(layout.summary.read_text()) if layout.summary.is_file() else {}
    return Result(str(output), table, models, read_metadata(schema), summary)


def default_report_dir(output: str) -> Path:
    """Beside the bookkeeping of a local output (never inside the output, which holds only parts);
    in the current directory for an output on object storage."""
    from batchembed.io.layout import OutputLayout
    from batchembed.io.storage import locate

    layout = OutputLayout.of(locate(str(output)))
    if layout.state.is_local:
        return Path(layout.state.path) / REPORT_DIR
    return Path(f"{layout.data.name}-{REPORT_DIR}")


def _values(table: pa.Table, column: str) -> np.ndarray:
    """The non-null values of a float column."""
    import pyarrow.compute as pc

    return pc.drop_null(table.column(column)).to_numpy().astype(np.float64)


def content_words(table: pa.Table) -> pa.Table:
    """The rows whose two words are not both function words (batchembed/stopwords.py)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    stop = pa.array(sorted(ENGLISH))
    w1, w2 = (pc.is_in(pc.utf8_lower(table.column(c)), value_set=stop) for c in ("word_1", "word_2"))
    return table.filter(pc.invert(pc.fill_null(pc.and_(w1, w2), False)))


def _word_keys(table: pa.Table) -> pa.ChunkedArray:
    """One key per compared pair: the lowercased word, or "word 1 / word 2" when they differ."""
    import pyarrow.compute as pc

    w1, w2 = pc.utf8_lower(table.column("word_1")), pc.utf8_lower(table.column("word_2"))
    return pc.if_else(pc.equal(w1, w2), w1, pc.binary_join_element_wise(w1, w2, " / "))


def per_word(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """Per word key: each column's mean and sample std (ddof 1) over its non-null values, and counts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keyed = pa.table({"key": _word_keys(table), **{c: table.column(c) for c in columns}})
    keyed = keyed.filter(pc.is_valid(keyed.column("key")))
    aggregations: list[Any] = []
    for c in columns:
        aggregations += [(c, "mean"), (c, "stddev", pc.VarianceOptions(ddof=1)), (c, "count")]
    return keyed.group_by("key").aggregate(aggregations)


# -- plots ---------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # a renderer to measure labels with (label_points)
    return figure


# where a point's label may go, in points from the point: right and above first
LABEL_OFFSETS = ((3, 2), (3, -10), (-3, 2), (-3, -10), (3, 12), (-3, 12), (3, -20), (-3, -20))


def label_points(fig: Figure, ax: Any, labels: Sequence[tuple[str, float, float]]) -> int:
    """Name points without labels overlapping: each label takes the first place around its point
    that is free, in order of `labels`; a label with no free place is left out. Call once the
    figure's layout is final but for these labels (they are kept out of the layout). Returns the
    number of labels placed."""
    fig.draw_without_rendering()  # constrained layout fixes the axes, so the points' positions are final
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # an Agg canvas (_figure)
    placed: list[Any] = []
    for text, x, y in labels:
        for dx, dy in LABEL_OFFSETS:
            note = ax.annotate(
                text, (x, y), fontsize=8, xytext=(dx, dy), textcoords="offset points", ha="left" if dx > 0 else "right"
            )
            note.set_in_layout(False)
            box = note.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            note.remove()
    return len(placed)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_distributions(result: Result) -> Figure:
    """A histogram per model (rows) and metric (columns)."""
    fig = _figure(10, 2.6 * len(result.models) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(result.models), len(METRICS), squeeze=False))
    for row, model in enumerate(result.models):
        for col, metric in enumerate(METRICS):
            ax, column = axes[row, col], f"{model}_{metric}"
            values = _values(result.table, column)
            null = result.table.column(column).null_count
            ax.set_title(f"{model} {metric}  (n={len(values):,}, null={null:,})", fontsize=10)
            if not len(values):
                _empty(ax, "no distances")
                continue
            if not np.any(values):  # e.g. GloVe on one target word per pair: a histogram of one bar at 0
                _empty(ax, f"all distances 0 ({len(values):,} pairs)")
                continue
            ax.hist(values, bins=50, color=f"C{row}")
            ax.set_xlabel(f"{metric} distance")
            ax.set_ylabel("pairs")
    fig.suptitle("Distance distributions", fontsize=12)
    return fig


def plot_static_vs_contextual(result: Result) -> Figure:
    """Per word, the mean static distance against the mean contextual distance."""
    static, contextual = result.static, result.contextual
    fig = _figure(10, 4.4)
    axes = fig.subplots(1, len(METRICS))
    if static is None:
        for ax in axes:
            _empty(ax, "needs two models")
        return fig
    columns = [f"{m}_{metric}" for metric in METRICS for m in (static, contextual)]
    words = per_word(result.word_rows(), columns)
    labels = []
    for ax, metric in zip(axes, METRICS, strict=True):
        x = words.column(f"{static}_{metric}_mean").to_numpy(zero_copy_only=False).astype(np.float64)
        y = words.column(f"{contextual}_{metric}_mean").to_numpy(zero_copy_only=False).astype(np.float64)
        keys = words.column("key").to_pylist()
        both = ~np.isnan(x) & ~np.isnan(y)
        ax.set_title(f"{metric}: {both.sum():,} words", fontsize=10)
        zero = both.any() and not np.any(x[both])
        ax.set_xlabel(f"{static} mean distance" + (" (all distances 0)" if zero else ""))
        ax.set_ylabel(f"{contextual} mean distance")
        if not both.any():
            _empty(ax, "no word has both distances")
            continue
        ax.scatter(x[both], y[both], s=14, alpha=0.6)
        highest = np.flatnonzero(both)[np.argsort(-y[both], kind="stable")][:LABELLED_POINTS]
        labels.append((ax, [(keys[k], x[k], y[k]) for k in highest]))
    fig.suptitle(f"{static} vs {contextual}, one point per word", fontsize=12)
    for ax, named in labels:
        label_points(fig, ax, named)
    return fig


def plot_word_variation(result: Result) -> Figure:
    """The words whose contextual distance varies most across their pairs (std, >= 2 pairs)."""
    model = result.contextual
    words = per_word(result.word_rows(), [f"{model}_{metric}" for metric in METRICS])
    keys = words.column("key").to_pylist()
    tops = {}
    for metric in METRICS:
        column = f"{model}_{metric}"
        std = words.column(f"{column}_stddev").to_numpy(zero_copy_only=False).astype(np.float64)
        count = words.column(f"{column}_count").to_numpy()
        eligible = np.flatnonzero((count >= 2) & ~np.isnan(std))
        tops[metric] = (eligible[np.argsort(-std[eligible], kind="stable")][:TOP_WORDS][::-1], std, count)
    bars = max(len(top) for top, _, _ in tops.values())
    fig = _figure(10, max(2.6, 0.26 * bars + 1.4))  # bar thickness stays alike for 2 or 20 words
    axes = fig.subplots(1, len(METRICS))
    for ax, metric in zip(axes, METRICS, strict=True):
        top, std, count = tops[metric]
        ax.set_title(f"{model} {metric}: std across pairs", fontsize=10)
        if not len(top):
            _empty(ax, "no word occurs in two or more pairs")
            continue
        ax.barh([f"{keys[k]} ({count[k]})" for k in top], std[top], color="C1")
        ax.set_xlabel("standard deviation of the distance")
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"Words whose {model} distance varies most (pairs in brackets)", fontsize=12)
    return fig


def status_counts(table: pa.Table) -> list[tuple[str, int]]:
    import pyarrow.compute as pc

    counts = pc.value_counts(table.column("status")).to_pylist()
    return sorted(((c["values"], c["counts"]) for c in counts), key=lambda item: (-item[1], item[0]))


def plot_statuses(result: Result) -> Figure:
    counts = status_counts(result.table)
    fig = _figure(10, 0.35 * len(counts) + 1.4)
    ax = fig.subplots()
    names, values = [s for s, _ in counts][::-1], [n for _, n in counts][::-1]
    bars = ax.barh(names, values, color=["C2" if s == "ok" else "C3" for s in names])
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
    ax.set_xlabel("output rows")
    ax.margins(x=0.12)
    ax.set_title("Rows by status", fontsize=12)
    return fig


PLOTS = (
    (
        "distances",
        "Distance distributions",
        plot_distributions,
        "Static vectors do not depend on context, so a word compared with itself is at distance 0; "
        "the contextual model's spread shows how much the sentences moved the words.",
    ),
    (
        "static_vs_contextual",
        "Static vs contextual, per word",
        plot_static_vs_contextual,
        "Each point is a word (or word pair), averaged over its pairs; the highest contextual distances are named.",
    ),
    (
        "word_variation",
        "Words whose contextual distance varies most",
        plot_word_variation,
        "Standard deviation of a word's distance across the pairs it occurs in (at least two): "
        "candidates for words used in several senses.",
    ),
    (
        "statuses",
        "Rows by status",
        plot_statuses,
        "ok rows have every distance; the status values in the documentation (docs/output.md) explain the others.",
    ),
)


# -- page ----------------------------------------------------------------------------------


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _stats_rows(result: Result) -> str:
    rows = []
    for model in result.models:
        for metric in METRICS:
            values = _values(result.table, f"{model}_{metric}")
            stats = [np.mean(values), np.median(values), np.percentile(values, 90)] if len(values) else [math.nan] * 3
            cells = [model, metric, f"{len(values):,}", f"{result.table.num_rows - len(values):,}"]
            cells += ["-" if math.isnan(s) else f"{s:.4f}" for s in stats]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return "\n".join(rows)


def _models_list(result: Result) -> str:
    items = []
    for described in result.metadata.get("models", []):
        details = ", ".join(f"{k} {v}" for k, v in described.items() if k not in ("name",))
        items.append(f"<li><b>{html.escape(str(described.get('name')))}</b>: {html.escape(details)}</li>")
    return "<ul>" + "".join(items) + "</ul>" if items else ""


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1040px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; }
td:nth-child(n+3) { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; } .note { color: #555; font-size: 0.9em; }
"""


def render_page(result: Result, images: Sequence[tuple[str, str, str, bytes]]) -> str:
    """The HTML page; `images` holds (name, title, caption, png bytes)."""
    summary = result.summary
    counts = f"{result.table.num_rows:,} output rows"
    if "pairs_read" in summary:
        counts = f"{summary['pairs_read']:,} sentence pairs, " + counts
    sections = [
        f'<h2 id="{name}">{html.escape(title)}</h2>\n<p class="note">{html.escape(caption)}</p>\n'
        f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{html.escape(title)}">'
        for name, title, caption, png in images
    ]
    tokenizer = html.escape(str(result.metadata.get("tokenizer", "?")))
    version = html.escape(str(result.metadata.get("version", "?")))
    header = "".join(f"<th>{h}</th>" for h in ("model", "metric", "distances", "null", "mean", "median", "90th pct"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>batchembed report: {html.escape(str(result.path))}</title>
<style>{STYLE}</style></head>
<body>
<h1>batchembed report</h1>
<p><code>{html.escape(str(result.path))}</code>: {counts}, tokenizer {tokenizer}, batchembed {version}.</p>
{_models_list(result)}
<table><tr>{header}</tr>
{_stats_rows(result)}
</table>
{chr(10).join(sections)}
</body></html>
"""


PER_WORD_PLOTS = ("static_vs_contextual", "word_variation")
STOPWORDS_NOTE = (
    " Pairs of two function words (the, and, of, ... : batchembed's built-in English list) are left out; "
    "report --keep-stopwords keeps them."
)


def write_report(output: str, out: Path | None = None, keep_stopwords: bool = False) -> Path:
    """Write report.html and one PNG per plot into `out` (default: see default_report_dir); return
    the page. The per-word plots leave out function words unless `keep_stopwords`, and say so. A uses
    output (batchembed uses) gets its own page: words ranked by APD, their pairwise distances."""
    uses_page = _uses_report(output, out)
    if uses_page is not None:
        return uses_page
    result = read_result(output)
    result.keep_stopwords = keep_stopwords
    folder = out if out is not None else default_report_dir(output)
    images = []
    for name, title, plot, caption in PLOTS:
        if name in PER_WORD_PLOTS and not keep_stopwords:
            caption += STOPWORDS_NOTE
        images.append((name, title, caption, _png(plot(result))))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, _, _, png in images:
            (folder / f"{name}.png").write_bytes(png)
        page = folder / PAGE
        page.write_text(render_page(result, images), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write the report: {exc.strerror}") from exc
    return page


def _uses_report(output: str, out: Path | None) -> Path | None:
    """The report of a uses output, or None when `output` is not one."""
    import pyarrow.parquet as pq

    from batchembed.io.storage import locate
    from batchembed.usage.job import UsesLayout, read_uses_output
    from batchembed.usage.report import write_usage_report

    location = locate(output)
    words = read_uses_output(location)
    if words is None:
        return None
    pairs_file = UsesLayout(location, vectors_in_output=False).pairs
    pairs = pq.read_table(pairs_file.path, filesystem=pairs_file.fs) if pairs_file.exists() else None
    return write_usage_report(words, out if out is not None else default_report_dir(output), pairs, str(location))
