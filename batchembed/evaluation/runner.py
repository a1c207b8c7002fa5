"""The whole evaluation: read and check the labelled files, embed once, score, report.

Binary data follows the WiC paper (Pilehvar & Camacho-Collados, NAACL 2019): per model and
metric, "distance <= threshold means same sense", the threshold tuned for accuracy on a dev
split and applied unchanged to a test split. Graded data gets Spearman's rho.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batchembed.config import Columns, EvalConfig
from batchembed.embedders.base import Embedder
from batchembed.embedders.distances import METRICS
from batchembed.errors import InputError, OutputError
from batchembed.evaluation.data import LabelledSplit, read_binary, read_scores
from batchembed.evaluation.embed import ItemDistances, embed_files, embed_splits
from batchembed.evaluation.scoring import accuracy, classify, majority_label, spearman, tune_threshold
from batchembed.io.reader import InputFile
from batchembed.messages import text_table
from batchembed.version import __version__

FALLBACK_RULE = "the dev split's majority class, F on a tie"


@dataclass
class Tasks:
    """Everything read and checked before a model is loaded, so bad input fails fast."""

    dev: LabelledSplit | None = None
    test: LabelledSplit | None = None
    similarity: list[InputFile] = field(default_factory=list)
    scores: np.ndarray | None = None


@dataclass
class BinaryResult:
    """One model and metric on word-in-context data: the tuned threshold and its accuracies."""

    model: str
    metric: str
    threshold: float | None  # None: no dev row had a distance
    dev_accuracy: float
    test_accuracy: float
    dev_null: int  # rows classified by the fallback rule
    test_null: int


@dataclass
class GradedResult:
    """One model and metric on graded similarity data: Spearman's rho over the pairs with a distance."""

    model: str
    metric: str
    spearman: float | None
    p_value: float | None
    pairs: int  # pairs with a distance: the ones ranked
    null: int  # pairs without one, left out of the correlation


@dataclass
class Evaluation:
    """What `batchembed.evaluate` returns: `binary` (word-in-context accuracy per model and metric,
    with `splits` and the `null_fallback` label) and `graded` (Spearman per model and metric, with
    `similarity` describing the files). `table()` is the text `batchembed evaluate` prints,
    `to_dict()` / `write_json(path)` its `--json`."""

    models: list[dict[str, str]]
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    null_fallback: str | None = None  # "T" or "F"
    binary: list[BinaryResult] = field(default_factory=list)
    similarity: dict[str, Any] | None = None
    graded: list[GradedResult] = field(default_factory=list)
    change: list[dict[str, Any]] = field(default_factory=list)  # evaluation/change.py score_change records
    change_data: dict[str, Any] | None = None

    def table(self) -> str:
        """The results as the fixed-width text `batchembed evaluate` prints."""
        return format_table(self)

    def to_dict(self) -> dict[str, Any]:
        """The results as JSON-ready data (what `--json` writes)."""

        data: dict[str, Any] = {"tool": "batchembed evaluate", "version": __version__, "models": self.models}
        if self.binary:
            data["binary"] = {
                "protocol": "distance <= threshold means same sense (T); threshold tuned for accuracy on dev",
                "splits": self.splits,
                "null_fallback": {"label": self.null_fallback, "rule": FALLBACK_RULE},
                "results": [asdict(r) for r in self.binary],
            }
        if self.similarity is not None:
            data["graded"] = {
                "protocol": "Spearman's rho between -distance and the score, over the pairs with a distance",
                **self.similarity,
                "results": [asdict(r) for r in self.graded],
            }
        if self.change_data is not None:
            data["change"] = {
                "protocol": "Spearman's rho between each word's measure between its two groupings and its gold "
                "change score, over the words with both",
                **self.change_data,
                "results": self.change,
            }
        return data

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write `to_dict()` as JSON; raises OutputError when the file cannot be written."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"{path}: cannot write the JSON results: {exc.strerror}") from exc


def load_tasks(config: EvalConfig) -> Tasks:
    from batchembed.io.reader import discover

    tasks = Tasks()
    if config.dev is not None and config.test is not None:
        tasks.dev = read_binary(config.dev, config.dev_gold)
        tasks.test = read_binary(config.test, config.test_gold)
    if config.similarity:
        tasks.similarity = discover(config.similarity)
        tasks.scores = np.concatenate([read_scores(f, config.score_column) for f in tasks.similarity])
    return tasks


def _split_info(split: LabelledSplit, distances: ItemDistances) -> dict[str, Any]:
    return {
        "path": str(split.path),
        "gold": str(split.gold) if split.gold else None,
        "layout": split.layout,
        "tokenizer": split.tokenizer,
        "pairs": len(split),
        "same_sense": int(sum(split.labels)),
        "status_counts": distances.status_counts(),
    }


def _score_binary(
    column: str, dev: np.ndarray, dev_y: np.ndarray, test: np.ndarray, test_y: np.ndarray, fallback: bool
) -> BinaryResult:
    threshold = tune_threshold(dev, dev_y)
    model, metric = column.rsplit("_", 1)
    return BinaryResult(
        model,
        metric,
        None if math.isnan(threshold) else threshold,
        accuracy(classify(dev, threshold, fallback), dev_y),
        accuracy(classify(test, threshold, fallback), test_y),
        int(np.isnan(dev).sum()),
        int(np.isnan(test).sum()),
    )


def _evaluate_binary(
    result: Evaluation,
    dev_split: LabelledSplit,
    test_split: LabelledSplit,
    embedders: Sequence[Embedder],
    columns: Sequence[str],
) -> None:
    dev, test = embed_splits([dev_split, test_split], embedders)
    dev_y, test_y = np.asarray(dev_split.labels, bool), np.asarray(test_split.labels, bool)
    fallback = majority_label(dev_y)
    result.null_fallback = "T" if fallback else "F"
    result.splits = {"dev": _split_info(dev_split, dev), "test": _split_info(test_split, test)}
    result.splits["test"]["majority_baseline_accuracy"] = accuracy(np.full(len(test_y), fallback), test_y)
    result.binary = [_score_binary(c, dev.values[c], dev_y, test.values[c], test_y, fallback) for c in columns]


def _evaluate_graded(
    result: Evaluation, tasks: Tasks, config: EvalConfig, embedders: Sequence[Embedder], columns: Sequence[str]
) -> None:
    assert tasks.scores is not None
    distances = embed_files(tasks.similarity, Columns(), config.tokenizer, embedders)
    where = ", ".join(str(f.path) for f in tasks.similarity)
    if len(distances) != len(tasks.scores) or not len(distances):
        raise InputError(f"{where}: {len(tasks.scores)} scores for {len(distances)} sentence pairs")
    result.similarity = {
        "files": [str(f.path) for f in tasks.similarity],
        "pairs": len(distances),
        "score_column": config.score_column,
        "tokenizer": config.tokenizer,
        "status_counts": distances.status_counts(),
    }
    for column in columns:
        values = distances.values[column]
        rho, p = spearman(values, tasks.scores)
        null = int(np.isnan(values).sum())
        model, metric = column.rsplit("_", 1)
        result.graded.append(GradedResult(model, metric, rho, p, len(values) - null, null))


def evaluate(tasks: Tasks, embedders: Sequence[Embedder], config: EvalConfig) -> Evaluation:
    """Embed every labelled pair through the pipeline, then score each model and metric."""
    result = Evaluation([e.describe() for e in embedders])
    columns = [f"{e.name}_{m}" for e in embedders for m in METRICS]
    if tasks.dev is not None and tasks.test is not None:
        _evaluate_binary(result, tasks.dev, tasks.test, embedders, columns)
    if tasks.similarity:
        _evaluate_graded(result, tasks, config, embedders, columns)
    return result


def run_evaluation(config: EvalConfig) -> Evaluation:
    """Read and check the labelled files, load the models once, evaluate."""
    from batchembed.embedders.load import load_embedders

    tasks = load_tasks(config)
    embedders = load_embedders(config.glove, config.transformer, config.embed)
    return evaluate(tasks, embedders, config)


# -- text tables --------------------------------------------------------------------------


def _render(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return text_table(headers, rows, left={0, 1})  # model and task names left, figures right


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _binary_lines(evaluation: Evaluation) -> list[str]:
    dev, test = evaluation.splits["dev"], evaluation.splits["test"]
    out = [
        f"{name}: {split['path']} ({split['layout']}): {split['pairs']} pairs, {split['same_sense']} same sense (T)"
        for name, split in (("dev (tunes the threshold)", dev), ("test", test))
    ]
    headers = ["model", "metric", "threshold", "dev acc %", "test acc %", "dev null", "test null"]
    rows = [
        [
            r.model,
            r.metric,
            _num(r.threshold),
            _pct(r.dev_accuracy),
            _pct(r.test_accuracy),
            str(r.dev_null),
            str(r.test_null),
        ]
        for r in evaluation.binary
    ]
    out += ["", *_render(headers, rows), ""]
    out.append(
        f"distance <= threshold means same sense (T). Null distances are classified {evaluation.null_fallback}: "
        f"{FALLBACK_RULE}. Majority-class accuracy on test: {_pct(test['majority_baseline_accuracy'])}%."
    )
    return out


def _graded_lines(evaluation: Evaluation) -> list[str]:
    info = evaluation.similarity
    assert info is not None
    out = [f"similarity: {', '.join(info['files'])}: {info['pairs']} pairs, score column {info['score_column']!r}"]
    rows = [
        [
            r.model,
            r.metric,
            _num(r.spearman),
            "-" if r.p_value is None else f"{r.p_value:.2g}",
            str(r.pairs),
            str(r.null),
        ]
        for r in evaluation.graded
    ]
    out += ["", *_render(["model", "metric", "spearman", "p-value", "pairs", "null"], rows), ""]
    out.append("Spearman's rho between -distance and the score; pairs with a null distance are left out (null).")
    return out


def format_table(evaluation: Evaluation) -> str:
    """The results as fixed-width text, with the counts and the null-row rule spelled out."""
    blocks = []
    if evaluation.binary:
        blocks.append("\n".join(_binary_lines(evaluation)))
    if evaluation.similarity is not None:
        blocks.append("\n".join(_graded_lines(evaluation)))
    if evaluation.change_data is not None:
        blocks.append("\n".join(_change_lines(evaluation)))
    return "\n\n".join(blocks)


def _change_lines(evaluation: Evaluation) -> list[str]:
    data = evaluation.change_data or {}
    lines = [
        f"Graded change: {data.get('words_measured')} word rows measured, "
        f"{data.get('words_in_gold')} words in {data.get('gold')}",
        f"{'model':<12}{'metric':<11}{'measure':<9}{'spearman':>9}{'words':>7}",
    ]
    for r in evaluation.change:
        rho = "-" if r["spearman"] is None else f"{r['spearman']:.3f}"
        lines.append(f"{r['model']:<12}{r['metric']:<11}{r['measure']:<9}{rho:>9}{r['words']:>7}")
    return lines
