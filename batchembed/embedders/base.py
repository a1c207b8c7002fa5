"""The contract every embedder meets, so the pipeline never knows which model it drives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

    from batchembed.tokenize import Tokenized


@dataclass
class TokenVectors:
    """Vectors for N requested tokens. `valid[k]` is False where the model has no
    vector for token k (flair would silently hand back zeros there)."""

    vectors: torch.Tensor  # [N, dim] float32, on the embedder's device
    valid: torch.Tensor  # [N] bool, same device


@dataclass
class EmbedStats:
    """Work counters for the run summary and benchmarks."""

    subword_tokens: int = 0  # real (unpadded) model positions, special tokens included
    padded_tokens: int = 0  # positions including padding
    batches: int = 0
    oom_retries: int = 0
    long_sentences: int = 0  # sentences over the model window, embedded in strided windows

    def add(self, other: EmbedStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Described(Protocol):
    """What the job needs to know of a model, even one that runs on another machine."""

    name: str  # output column prefix, e.g. "glove" -> glove_euclidean

    def describe(self) -> dict[str, str]:
        """Name, source, dimension, layers, pooling...: recorded in the output's metadata."""
        ...


class Embedder(Described, Protocol):
    dim: int
    missing_reason: str  # status suffix when a token has no vector, e.g. "oov"
    stats: EmbedStats

    def embed_tokens(
        self, sentences: Sequence[Tokenized], sentence_index: np.ndarray, token_index: np.ndarray
    ) -> TokenVectors:
        """Vectors of tokens `sentences[sentence_index[k]].tokens[token_index[k]]`, k = 0..N-1."""
        ...


@dataclass
class RequestPlan:
    """Requested tokens grouped by sentence: which sentences must be embedded at all."""

    sentence_ids: np.ndarray  # unique sentence numbers that have requested tokens
    inverse: np.ndarray  # request k belongs to sentence_ids[inverse[k]]
    token_index: np.ndarray = field(repr=False)

    @classmethod
    def build(cls, sentence_index: np.ndarray, token_index: np.ndarray) -> RequestPlan:
        unique, inverse = np.unique(sentence_index, return_inverse=True)
        return cls(unique, inverse.reshape(-1), np.asarray(token_index, dtype=np.int64))
