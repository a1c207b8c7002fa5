"""Score distances against labelled data: word-in-context (same sense or not) and graded similarity.

Labelled files are turned into the pipeline's own input shards and embedded by the same
`process_shard` as `batchembed run`, so the evaluation measures exactly what `run` writes.

- `data`: read the WiC layout (data + gold file), SuperGLUE JSONL, and graded scores.
- `embed`: labelled pairs -> pipeline shards -> one distance per labelled item.
- `scoring`: the WiC paper's threshold classifier, accuracy, Spearman's rho.
- `runner`: the whole evaluation, its JSON and its text table.
"""

from batchembed.evaluation.runner import EvalConfig, Evaluation, evaluate, format_table, load_tasks, run_evaluation

__all__ = ["EvalConfig", "Evaluation", "evaluate", "format_table", "load_tasks", "run_evaluation"]
