"""Embed, the device: a PreparedShard's arrays -> each model's vectors -> distance arrays.

Nothing here tokenizes, looks up strings or builds Python objects per token: the models
take the prepared arrays, the word vectors are gathered with index tensors and the
distances computed on the device for the whole shard, then moved off it as numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from batchembed import status
from batchembed.embedders.base import Embedder
from batchembed.embedders.distances import DISTANCES, degenerate
from batchembed.stages.prepare import PreparedShard


@dataclass
class EmbeddedShard:
    """Per compared row (PreparedShard.compared, in order): each model's distances and why they
    are null: '' where both vectors exist and every distance is finite, else the reason (no
    vector, a zero vector, a non-finite vector or distance: status.vector_problems)."""

    distances: dict[str, np.ndarray] = field(default_factory=dict)  # "<model>_<metric>" -> float32
    problems: dict[str, np.ndarray] = field(default_factory=dict)  # model name -> reason (object array)
    subword_tokens: int = 0  # model positions the models ran for this shard
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # model -> compared row x dim (keep_vectors)


def embed(prepared: PreparedShard, embedders: Sequence[Embedder]) -> EmbeddedShard:
    """Each model's distances per compared row; with `prepared.keep_vectors` also the first side's
    vectors (the uses job, whose rows compare a use with itself)."""
    import torch

    n = len(prepared.request_1)
    result = EmbeddedShard()
    tokens_before = sum(e.stats.subword_tokens for e in embedders)
    for embedder in embedders:
        if n == 0:
            for metric in DISTANCES:
                result.distances[f"{embedder.name}_{metric}"] = np.zeros(0, np.float32)
            result.problems[embedder.name] = np.zeros(0, object)
            continue
        vectors = embedder.embed_prepared(prepared.model_inputs[embedder.name])
        index = torch.from_numpy(np.concatenate([prepared.request_1, prepared.request_2])).to(vectors.vectors.device)
        a, b = vectors.vectors[index[:n]], vectors.vectors[index[n:]]
        valid = (vectors.valid[index[:n]] & vectors.valid[index[n:]]).cpu().numpy()
        distances = {metric: fn(a, b).float().cpu().numpy() for metric, fn in DISTANCES.items()}
        for metric, values in distances.items():
            result.distances[f"{embedder.name}_{metric}"] = values
        result.problems[embedder.name] = status.vector_problems(
            embedder.missing_reason, valid, *degenerate(a, b, distances)
        )
        if prepared.keep_vectors:
            result.vectors[embedder.name] = a.float().cpu().numpy()
    result.subword_tokens = sum(e.stats.subword_tokens for e in embedders) - tokens_before
    return result
