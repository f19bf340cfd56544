"""What every benchmark records beside its numbers: the code measured and the machine it ran on.

The benches run as scripts (``.venv/bin/python bench/bench_x.py``), so ``bench/`` is on ``sys.path`` and
they import this module as ``benchlib``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    """git's output in the project root, or "" when git is not there."""
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip()


def library_state(modules: Sequence[ModuleType], paths: Sequence[str]) -> dict[str, Any]:
    """The commit, uncommitted changes under `paths`, and a hash of each module measured (by its path)."""
    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", *paths).splitlines(),
        "sha256": {
            Path(m.__file__ or "").resolve().relative_to(ROOT).as_posix(): hashlib.sha256(
                Path(m.__file__ or "").read_bytes()
            ).hexdigest()[:16]
            for m in modules
        },
    }


def version(dist: str) -> str:
    """The installed version of a distribution, or "unknown"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def machine(*dists: str) -> dict[str, Any]:
    """The machine's facts every result records (cores, memory, platform, CPU, Python) and the installed
    version of each distribution named (keyed with ``-`` as ``_``: "delta-spark" -> "delta_spark")."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        **{dist.replace("-", "_"): version(dist) for dist in dists},
    }
