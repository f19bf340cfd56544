"""Where a model runs and in which precision."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def choose_device(pref: str) -> tuple[str, torch.dtype]:
    """``(device, dtype)`` for a preference: auto -> CUDA with fp16 when present, else CPU with fp32."""
    import torch

    if pref not in ("auto", "cpu", "cuda"):
        raise ValueError(f"embed.device must be auto, cpu or cuda, got {pref!r}")
    if pref == "cpu":
        return "cpu", torch.float32
    if torch.cuda.is_available():
        return "cuda", torch.float16
    if pref == "cuda":
        raise ValueError(
            "embed.device is 'cuda' but torch sees no CUDA device: set embed.device to auto or cpu, "
            "or run on a machine with a GPU and a CUDA build of torch"
        )
    return "cpu", torch.float32
