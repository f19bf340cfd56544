"""Where a model runs and in which precision."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def task_device(pref: str, resources: Mapping[str, Sequence[str]]) -> str:
    """The device preference for one Spark task: the GPU Spark assigned it (``resources``: the task's
    resource name -> addresses, `TaskContext.resources()`), else ``pref``. With GPU scheduling on
    (``spark.task.resource.gpu.amount``), each task uses its own GPU instead of every worker using GPU 0."""
    gpus = resources.get("gpu") or ()
    if pref == "cpu" or not gpus:
        return pref
    return f"cuda:{gpus[0]}"


def spark_task_resources() -> dict[str, list[str]]:
    """The running Spark task's assigned resources (empty outside a task or without resource scheduling)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is None:
        return {}
    return {name: list(info.addresses) for name, info in context.resources().items()}


def choose_device(pref: str) -> tuple[str, torch.dtype]:
    """``(device, dtype)`` for a preference: auto -> CUDA with fp16 when present, else CPU with fp32;
    ``cuda:N`` (a GPU Spark assigned the task) -> that GPU with fp16."""
    import torch

    if pref not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:[0-9]+", pref):
        raise ValueError(f"embed.device must be auto, cpu or cuda, got {pref!r}")
    if pref == "cpu":
        return "cpu", torch.float32
    if torch.cuda.is_available():
        return ("cuda" if pref == "auto" else pref), torch.float16
    if pref.startswith("cuda"):
        raise ValueError(
            "embed.device is 'cuda' but torch sees no CUDA device: set embed.device to auto or cpu, "
            "or run on a machine with a GPU and a CUDA build of torch"
        )
    return "cpu", torch.float32
