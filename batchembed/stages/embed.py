"""Stage 2, the device: a PreparedShard's arrays -> each model's vectors -> distance arrays.

Nothing here tokenizes, looks up strings or builds Python objects per token: the models
take the prepared arrays, the word vectors are gathered with index tensors and the
distances computed on the device for the whole shard, then moved off it as numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from batchembed import status
from batchembed.distances import DISTANCES
from batchembed.embedders.base import Embedder
from batchembed.stages.prepare import PreparedShard


@dataclass
class EmbeddedShard:
    """Per compared row (PreparedShard.compared, in order): each model's distances and
    whether it had both vectors."""

    distances: dict[str, np.ndarray] = field(default_factory=dict)  # "<model>_<metric>" -> float32
    valid: dict[str, np.ndarray] = field(default_factory=dict)  # model name -> bool
    missing: dict[str, str] = field(default_factory=dict)  # model name -> its status for a missing vector
    subword_tokens: int = 0  # model positions the models ran for this shard


def embed(prepared: PreparedShard, embedders: Sequence[Embedder]) -> EmbeddedShard:
    import torch

    n = len(prepared.request_1)
    result = EmbeddedShard()
    tokens_before = sum(e.stats.subword_tokens for e in embedders)
    for embedder in embedders:
        result.missing[embedder.name] = status.model_status(embedder.name, embedder.missing_reason)
        if n == 0:
            for metric in DISTANCES:
                result.distances[f"{embedder.name}_{metric}"] = np.zeros(0, np.float32)
            result.valid[embedder.name] = np.zeros(0, bool)
            continue
        vectors = embedder.embed_prepared(prepared.model_inputs[embedder.name])
        index = torch.from_numpy(np.concatenate([prepared.request_1, prepared.request_2])).to(vectors.vectors.device)
        a, b = vectors.vectors[index[:n]], vectors.vectors[index[n:]]
        result.valid[embedder.name] = (vectors.valid[index[:n]] & vectors.valid[index[n:]]).cpu().numpy()
        for metric, fn in DISTANCES.items():
            result.distances[f"{embedder.name}_{metric}"] = fn(a, b).float().cpu().numpy()
    result.subword_tokens = sum(e.stats.subword_tokens for e in embedders) - tokens_before
    return result
