"""Reading a streaming checkpoint without its query: committed batches and a Delta source's progress."""

from __future__ import annotations

import json
from pathlib import Path

from vectorlake.lake.checkpoint import END_INDEX, LocalCheckpoint, delta_read_through, reservoir_version


def _read_through(checkpoint: LocalCheckpoint) -> int | None:
    committed = checkpoint.committed()
    return reservoir_version(checkpoint.offsets(committed[-1])) if committed else None


def test_the_version_read_is_that_of_the_last_committed_batch(tmp_path: Path) -> None:
    (tmp_path / "commits").mkdir()
    (tmp_path / "offsets").mkdir()
    checkpoint = LocalCheckpoint(str(tmp_path))
    assert checkpoint.committed() == [] and _read_through(checkpoint) is None
    for batch, version, index in ((0, 3, -1), (1, 7, 2), (2, 9, -1), (3, 9, END_INDEX)):
        (tmp_path / "offsets" / str(batch)).write_text(
            'v1\n{"batchWatermarkMs":0}\n'
            + json.dumps({"sourceVersion": 1, "reservoirVersion": version, "index": index})
            + "\n"
        )
    assert checkpoint.planned() == [0, 1, 2, 3]
    (tmp_path / "commits" / "0").write_text("v1\n{}\n")
    (tmp_path / "commits" / "1").write_text("v1\n{}\n")  # batches 2 and 3 are planned, not committed
    assert checkpoint.committed() == [0, 1]
    assert _read_through(checkpoint) == 6  # files up to index 2 of version 7: only version 6 is whole
    (tmp_path / "commits" / "2").write_text("v1\n{}\n")
    assert _read_through(checkpoint) == 8  # index -1: nothing of version 9 read yet
    (tmp_path / "commits" / "3").write_text("v1\n{}\n")
    assert _read_through(checkpoint) == 9  # END_INDEX: version 9 read whole


def test_every_base_index_means_nothing_of_the_version_is_read() -> None:
    # -1 in offset format 1; -100 (base) and -20/-19 (around a metadata change) in format 3
    for index in (-1, -100, -20, -19):
        assert delta_read_through({"reservoirVersion": 5, "index": index}) == (4, False)
    assert delta_read_through({"reservoirVersion": 5, "index": 0}) == (4, True)
    assert delta_read_through({"reservoirVersion": 5, "index": END_INDEX}) == (5, False)
    assert delta_read_through({"reservoirVersion": 5}) == (4, False)


def test_an_offsets_file_without_a_delta_source_reads_no_version() -> None:
    kafka = json.dumps({"listing_changes": {"0": 42}})
    assert reservoir_version(["v1", "{}", kafka]) is None
