"""How a `--precision` runs on a device: the dtype the weights are held in, and whether autocast
wraps the forward.

bf16 on a CPU casts the weights once at load and runs the forward in bf16 without autocast:
autocast casts every weight again at every call and converts around each op it keeps in fp32, and
on the forward alone it measured 18-35% slower than bf16 weights (BENCHMARKS.md). The word vectors
and the distances stay fp32 either way: hidden states are converted to fp32 before pooling.

On CUDA, bf16 and fp16 keep autocast (fp16 weights risk overflow in the residual stream; bf16
weights on a GPU were never measured here). fp16 on a CPU stays autocast too: CPUs without
AVX-512 fp16 or AMX fp16 have no fast fp16 kernels, and that path is kept as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchembed import hardware
from batchembed.errors import UsageError

if TYPE_CHECKING:
    import torch

# the documented bound on how far a precision may move a cosine distance from fp32 (euclidean: relative
# to the distances' size); on the default model bf16 moved them by 6e-3 at most (BENCHMARKS.md), the
# bound leaves room for the tests' random tiny model
COSINE_TOLERANCE = {"fp32": 1e-5, "bf16": 2e-2, "fp16": 2e-2}


@dataclass(frozen=True)
class Compute:
    precision: str  # as asked: fp32, bf16, fp16
    weights: str  # dtype the weights are held in: float32 or bfloat16
    autocast: str | None  # dtype autocast runs the forward in, None for none

    def describe(self) -> dict[str, str]:
        """What changes the numbers beyond fp32 rounding, for the model's metadata entry."""
        if self.precision == "fp32":
            return {}  # fp32 outputs keep the fingerprint they always had
        return {"weights": self.weights, "autocast": self.autocast or "none"}


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 needs hardware that runs it natively: a GPU with bf16 (Ampere or later), a CPU with
    AVX-512 bf16 or AMX; elsewhere it would be emulated, slower than fp32."""
    import torch

    if precision != "bf16":
        return
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"--precision bf16: the GPU {device} has no bfloat16 support; use fp16 or fp32")
    if device.type == "cpu" and not hardware.cpu_features().bf16:
        cpu = hardware.cpu_features().model
        raise UsageError(
            f"--precision bf16: this CPU ({cpu}) has no bf16 instructions (AVX-512 bf16 or AMX), so bf16 "
            "would be emulated and run slower than fp32; leave --precision at fp32"
        )


def compute_for(precision: str, device: torch.device) -> Compute:
    if precision == "fp32":
        return Compute(precision, "float32", None)
    if precision == "bf16" and device.type == "cpu":
        return Compute(precision, "bfloat16", None)
    return Compute(precision, "float32", "bfloat16" if precision == "bf16" else "float16")


def apply_weights(model: Any, compute: Compute) -> None:
    """Cast the model's weights, in place, once."""
    import torch

    if compute.weights == "bfloat16":
        model.to(torch.bfloat16)


def autocast(compute: Compute, device: torch.device) -> contextlib.AbstractContextManager[object]:
    import torch

    if compute.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, compute.autocast))
