"""A uses output -> one self-contained HTML page of plots, plus the same plots as PNG files.

The page answers the uses job's question, which words vary or change most: words ranked by APD (the
`<model>_<metric>_apd` column: across the two groupings, or within the one side of a corpus without
groupings), and, when the pairs output is given, each top word's distribution of pairwise distances.
It takes tables in memory (the caller reads the output's parts), and draws in the style of
`batchembed report` for `run` outputs (`batchembed.results.report`: the same page style, figure sizes and
PNG rendering, matplotlib's object API with no GUI backend).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batchembed.errors import OutputError
from batchembed.results.report import PAGE, STYLE, _empty, _figure, _png
from batchembed.usage.measures import METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TOP_WORDS = 20  # bars in the ranking
TOP_DISTRIBUTIONS = 8  # words whose pairwise distances are drawn
TABLE_WORDS = 30  # rows of the page's ranking table


@dataclass
class UsageResult:
    """A uses output's per-word table, optionally its pairs, and the models and metrics they hold."""

    table: pa.Table
    pairs: pa.Table | None
    models: list[str]
    metrics: list[str]
    title: str = "uses output"


def measured(schema: pa.Schema) -> tuple[list[str], list[str]]:
    """(models, metrics) of a uses table, from its `<model>_<metric>_apd_1` columns, in column order."""
    models: list[str] = []
    metrics: list[str] = []
    for name in schema.names:
        for metric in METRICS:
            suffix = f"_{metric}_apd_1"
            if name.endswith(suffix):
                models += [] if name[: -len(suffix)] in models else [name[: -len(suffix)]]
                metrics += [] if metric in metrics else [metric]
    return models, metrics


def is_usage_table(schema: pa.Schema) -> bool:
    """True for the uses job's per-word output (what a report dispatch checks first)."""
    return {"lemma", "grouping_1", "grouping_2", "uses_1", "status"} <= set(schema.names) and bool(measured(schema)[0])


def _label(row: dict[str, Any], several_pairs: bool) -> str:
    if several_pairs and row["grouping_2"] is not None:
        return f"{row['lemma']} ({row['grouping_1']}-{row['grouping_2']})"
    return str(row["lemma"])


def ranked(table: pa.Table, column: str, top: int) -> list[dict[str, Any]]:
    """The `top` rows with the largest non-null `column`, largest first (ties by lemma)."""
    known = table.filter(pc.is_valid(table.column(column)))
    rows = known.select(["lemma", "grouping_1", "grouping_2", "uses_1", "uses_2", column]).to_pylist()
    return sorted(rows, key=lambda r: (-r[column], r["lemma"]))[:top]


def _several_pairs(table: pa.Table) -> bool:
    lemmas = table.column("lemma")
    return len(pc.unique(lemmas)) < len(lemmas)


def plot_ranking(result: UsageResult) -> Figure:
    """Per model (rows) and metric (columns): the words with the largest APD."""
    several = _several_pairs(result.table)
    tops = {
        (m, metric): ranked(result.table, f"{m}_{metric}_apd", TOP_WORDS)
        for m in result.models
        for metric in result.metrics
    }
    bars = max((len(rows) for rows in tops.values()), default=0)
    fig = _figure(10, len(result.models) * max(2.6, 0.26 * bars + 1.4))
    axes = np.atleast_2d(fig.subplots(len(result.models), len(result.metrics), squeeze=False))
    for r, model in enumerate(result.models):
        for c, metric in enumerate(result.metrics):
            ax, rows = axes[r, c], tops[(model, metric)][::-1]
            ax.set_title(f"{model} {metric} APD", fontsize=10)
            if not rows:
                _empty(ax, "no word has an APD")
                continue
            ax.barh(
                [_label(row, several) for row in rows], [row[f"{model}_{metric}_apd"] for row in rows], color=f"C{r}"
            )
            ax.set_xlabel(f"mean pairwise {metric} distance")
            ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("Words ranked by APD (average pairwise distance of their uses)", fontsize=12)
    return fig


def plot_distributions(result: UsageResult) -> Figure:
    """Per model and metric: the pairwise distances of the words with the largest APD, one box each."""
    assert result.pairs is not None
    fig = _figure(10, len(result.models) * max(2.6, 0.3 * TOP_DISTRIBUTIONS + 1.4))
    axes = np.atleast_2d(fig.subplots(len(result.models), len(result.metrics), squeeze=False))
    lemmas = result.pairs.column("lemma")
    for r, model in enumerate(result.models):
        for c, metric in enumerate(result.metrics):
            ax, column = axes[r, c], f"{model}_{metric}"
            ax.set_title(f"{model} {metric}: pairwise distances", fontsize=10)
            if column not in result.pairs.column_names:
                _empty(ax, f"the pairs have no {column} column")
                continue
            words = list(dict.fromkeys(row["lemma"] for row in ranked(result.table, f"{column}_apd", TOP_WORDS)))
            boxes, names = [], []
            for word in words[:TOP_DISTRIBUTIONS]:
                values = result.pairs.filter(pc.equal(lemmas, word)).column(column)
                values = pc.drop_null(values).to_numpy(zero_copy_only=False).astype(np.float64)
                if len(values):
                    boxes.append(values)
                    names.append(f"{word} ({len(values):,})")
            if not boxes:
                _empty(ax, "no pairs for the top words")
                continue
            ax.boxplot(boxes[::-1], orientation="horizontal", tick_labels=names[::-1], showfliers=False)
            ax.set_xlabel(f"{metric} distance")
            ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("Pairwise distances of the top words (pairs listed in brackets)", fontsize=12)
    return fig


def plot_statuses(result: UsageResult) -> Figure:
    counts = sorted(
        ((c["values"], c["counts"]) for c in pc.value_counts(result.table.column("status")).to_pylist()),
        key=lambda item: (-item[1], item[0]),
    )
    fig = _figure(10, 0.35 * len(counts) + 1.4)
    ax = fig.subplots()
    names, values = [s for s, _ in counts][::-1], [n for _, n in counts][::-1]
    bars = ax.barh(names, values, color=["C2" if s == "ok" else "C3" for s in names])
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
    ax.set_xlabel("word rows")
    ax.margins(x=0.12)
    ax.set_title("Word rows by status", fontsize=12)
    return fig


def _ranking_table(result: UsageResult) -> str:
    model, metric = result.models[0], result.metrics[0]
    columns = [f"{model}_{metric}_{measure}" for measure in ("apd", "apd_1", "apd_2", "prt")]
    header = ["lemma", "grouping 1", "grouping 2", "uses 1", "uses 2", "APD", "APD 1", "APD 2", "PRT"]
    known = result.table.filter(pc.is_valid(result.table.column(columns[0])))
    rows = sorted(known.to_pylist(), key=lambda r: (-r[columns[0]], r["lemma"]))[:TABLE_WORDS]

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))

    body = [
        "<tr>"
        + "".join(
            f"<td>{cell(row[key])}</td>" for key in ("lemma", "grouping_1", "grouping_2", "uses_1", "uses_2", *columns)
        )
        + "</tr>"
        for row in rows
    ]
    return (
        f"<p>The {len(rows)} words with the largest {html.escape(model)} {html.escape(metric)} APD:</p>"
        f"<table><tr>{''.join(f'<th>{h}</th>' for h in header)}</tr>\n" + "\n".join(body) + "\n</table>"
    )


def plots(result: UsageResult) -> list[tuple[str, str, str, Figure]]:
    """(name, title, caption, figure) of every plot this result allows."""
    out = [
        (
            "ranking",
            "Words ranked by APD",
            plot_ranking(result),
            "APD across the two groupings (or within the one side of a corpus without groupings): the "
            "larger it is, the more the word's uses differ.",
        )
    ]
    if result.pairs is not None and "lemma" in result.pairs.column_names:
        out.append(
            (
                "distributions",
                "Pairwise distances of the top words",
                plot_distributions(result),
                "From the pairs output (sampled when a word has more pairs than the cap): boxes show the "
                "quartiles, whiskers 1.5 times the interquartile range.",
            )
        )
    out.append(("statuses", "Word rows by status", plot_statuses(result), "ok rows have every measure."))
    return [(name, title, caption, fig) for name, title, fig, caption in out]


def render_page(result: UsageResult, images: Sequence[tuple[str, str, str, bytes]]) -> str:
    sections = [
        f'<h2 id="{name}">{html.escape(title)}</h2>\n<p class="note">{html.escape(caption)}</p>\n'
        f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{html.escape(title)}">'
        for name, title, caption, png in images
    ]
    words = len(pc.unique(result.table.column("lemma")))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>batchembed usage report: {html.escape(result.title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>batchembed usage report</h1>
<p><code>{html.escape(result.title)}</code>: {words:,} words, {result.table.num_rows:,} word rows,
models {html.escape(", ".join(result.models))}.</p>
{_ranking_table(result)}
{chr(10).join(sections)}
</body></html>
"""


def write_usage_report(table: pa.Table, out: Path, pairs: pa.Table | None = None, title: str = "uses output") -> Path:
    """Write report.html and one PNG per plot into `out`; return the page."""
    models, metrics = measured(table.schema)
    if not is_usage_table(table.schema):
        raise OutputError(f"{title}: not a uses output (no lemma, grouping and <model>_<metric>_apd columns)")
    result = UsageResult(table, pairs, models, metrics, title)
    images = [(name, title_, caption, _png(fig)) for name, title_, caption, fig in plots(result)]
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, _, _, png in images:
            (out / f"{name}.png").write_bytes(png)
        page = out / PAGE
        page.write_text(render_page(result, images), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the report: {exc.strerror}") from exc
    return page
