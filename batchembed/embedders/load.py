"""Choose the device and load the configured embedders, once per run."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from batchembed.config import EmbedOptions, GloveSpec, TransformerSpec
from batchembed.embedders.base import Embedder
from batchembed.embedders.precision import check_precision
from batchembed.errors import UsageError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def choose_device(requested: str | None) -> torch.device:
    """CUDA when present, else CPU; `requested` ('cpu', 'cuda', 'cuda:1') overrides."""
    import torch

    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise UsageError(f"--device {requested!r} is not a torch device (try cpu or cuda)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UsageError(f"--device {requested}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return device


def load_embedders(
    glove: GloveSpec | None, transformer: TransformerSpec | None, options: EmbedOptions
) -> list[Embedder]:
    # the tokenizer runs inside our batching; its own thread pool only competes with torch
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = choose_device(options.device)
    if transformer is not None:
        check_precision(options.precision, device)
    log.info("device: %s", device)
    embedders: list[Embedder] = []
    if glove is not None:
        from batchembed.embedders.glove import GloveEmbedder

        embedders.append(GloveEmbedder.load(glove, device))
    if transformer is not None:
        from batchembed.embedders.transformer import TransformerEmbedder

        embedders.append(TransformerEmbedder.load(transformer, options, device))
    return embedders
