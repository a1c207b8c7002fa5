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


ModelInput = dict[str, np.ndarray]
"""One model's batch-ready arrays for N requested tokens (subword ids, gather indices, vocabulary rows...)."""


class Preparer(Protocol):
    """The CPU half of an embedder: picklable, needs neither torch nor the model's weights, so it
    runs in prepare worker processes (or Ray CPU actors) while the device runs the model."""

    name: str

    def prepare(
        self, sentences: Sequence[Tokenized], sentence_index: np.ndarray, token_index: np.ndarray
    ) -> ModelInput:
        """Arrays from which `embed_prepared` computes the vectors of tokens
        `sentences[sentence_index[k]].tokens[token_index[k]]`, k = 0..N-1."""
        ...


class Embedder(Described, Protocol):
    dim: int
    missing_reason: str  # status suffix when a token has no vector, e.g. "oov"
    stats: EmbedStats

    def preparer(self) -> Preparer:
        """The CPU-only, picklable half that turns tokens into this model's arrays."""
        ...

    def embed_prepared(self, arrays: ModelInput) -> TokenVectors:
        """The device half: vectors of the requests a Preparer turned into `arrays`."""
        ...

    def embed_tokens(
        self, sentences: Sequence[Tokenized], sentence_index: np.ndarray, token_index: np.ndarray
    ) -> TokenVectors:
        """Vectors of tokens `sentences[sentence_index[k]].tokens[token_index[k]]`, k = 0..N-1:
        `embed_prepared(preparer().prepare(...))` in one process."""
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


def encode_strings(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as two flat arrays (UTF-8 bytes, int64 offsets [len + 1]): Arrow's layout, so
    they pickle as two buffers instead of one object per string."""
    encoded = [v.encode("utf-8", "surrogatepass") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def decode_strings(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = data.tobytes()
    bounds = offsets.tolist()
    return [raw[a:b].decode("utf-8", "surrogatepass") for a, b in zip(bounds[:-1], bounds[1:])]
