"""One generated catalog streamed once per test session, shared by the modules that only read what the
pipeline made of it (tests/e2e, tests/integration/test_metrics.py) and then handed to one module that changes
it (tests/integration/test_warehouse.py adds a second round of events). A module that changes the lake's
tables only, never its stream or index (tests/integration/test_quality.py), works on a copy of them.

Streaming a catalog costs about a minute on a two-core machine whatever its size (Spark queries, models,
Delta commits); one stream in place of three is the point. A module that changes the lake `take`s it: the
lake is then no longer handed to readers, and a reader that asks later (a run in another order) gets a
fresh stream of its own, so no module ever reads a lake another one changed.

The catalog has everything the readers need: duplicates, poison, late and out-of-order events, deletes,
suppressed sellers, images before and after their listing; one landing file per kind and ingest batch
(``sources.max_files_per_trigger=1``), so ingest and index run several micro-batches.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from vectorlake.config import Config, load_config
from vectorlake.generate import Catalog, GeneratorSpec
from vectorlake.lake.tables import LakeTables

if TYPE_CHECKING:
    from vectorlake.pipeline import stream

SPEC = GeneratorSpec(
    seed=7, listings=120, sellers=10, events=1000, suppression_rate=0.3, image_size=(96, 72), late_rate=0.1
)
FILES_PER_KIND = 2  # with one file per trigger: two ingest batches, and several index ones


@dataclass(frozen=True)
class StreamedLake:
    """A temp lake and a fresh alias that `stream --once` filled from `catalog`."""

    overrides: dict[str, str]  # the VECTORLAKE__* variables that point config at this lake and alias
    catalog: Catalog
    landing: Path
    totals: stream.PipelineTotals

    @property
    def env(self) -> dict[str, str]:
        """The whole environment a command run against this lake gets."""
        return dict(os.environ) | self.overrides

    def config(self, **extra: str) -> Config:
        """The config of this lake, with further ``VECTORLAKE__*`` variables if given."""
        return load_config(environ=self.env | extra)

    @property
    def tables(self) -> LakeTables:
        return LakeTables(self.overrides["VECTORLAKE__LAKE__ROOT"])


class SharedLake:
    """The session's streamed lake: `read` hands the same one to every reader until a module `take`s it."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._current: StreamedLake | None = None
        self.made: list[Config] = []  # the config of every lake streamed this session, for the teardown

    def read(self, spark: Any) -> StreamedLake:
        """The shared lake, streamed on first use. Do not change it: other modules read it too."""
        if self._current is None:
            self._current = self._stream(spark)
        return self._current

    def copy(self, spark: Any, root: Path) -> LakeTables:
        """A byte copy of the shared lake's tables under `root`, for a module that changes the lake only
        (no stream, no index): what it writes never reaches the shared lake."""
        import shutil

        shutil.copytree(self.read(spark).tables.root, root)
        return LakeTables(str(root))

    def take(self, spark: Any) -> StreamedLake:
        """The shared lake for a module that changes it: no reader is handed this one afterwards."""
        lake = self.read(spark)
        self._current = None
        return lake

    def _stream(self, spark: Any) -> StreamedLake:
        from vectorlake.embed import registry
        from vectorlake.generate import generate, write_landing
        from vectorlake.pipeline import stream

        tmp = self._tmp.mktemp("shared-lake")
        landing = tmp / "landing"
        catalog = generate(SPEC, image_root=str(landing / "images"))
        write_landing(catalog, landing, files_per_kind=FILES_PER_KIND)
        overrides = {
            "VECTORLAKE__LAKE__ROOT": str(tmp / "lake"),
            "VECTORLAKE__INDEX__ALIAS": f"t-shared-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            "VECTORLAKE__SOURCES__MAX_FILES_PER_TRIGGER": "1",
        }
        cfg = load_config(environ=dict(os.environ) | overrides)
        registry.register_all(cfg)
        self.made.append(cfg)  # its alias is dropped at the end even when the stream fails half way
        totals = stream.run(spark, cfg, "files", once=True, landing_dir=str(landing))
        return StreamedLake(overrides, catalog, landing, totals)
