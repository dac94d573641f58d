"""The stream worker's stored meter states: their encoding and the local-state guard."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from carbon.counters import MeterState
from stream.app import check_local_state, decode_state

from .test_counters import MIN, T0, Reading, deliver


def _state() -> MeterState:
    seq: list[Reading] = [("r", T0 + k * MIN, 2.5 * k, 0) for k in range(90)]
    return deliver(seq, lateness_s=3600)[3]


def test_stored_states_decode_from_bytes_and_from_earlier_json() -> None:
    state = _state()
    data = state.to_bytes()
    assert len(data) > 100  # it holds the kept readings
    assert decode_state(data).to_bytes() == data
    assert decode_state(bytearray(data)).to_bytes() == data
    # values written by the versions before the binary form (a changelog not yet compacted)
    assert decode_state(orjson.dumps(state.to_json())).to_bytes() == data
    assert decode_state(state.to_json()).to_bytes() == data
    for empty in (None, b""):
        assert decode_state(empty).to_bytes() == MeterState().to_bytes()


def test_local_state_of_another_kafka_cluster_is_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "stream-1"
    assert check_local_state(folder, "cluster-A") is True  # new: created, marked
    db = folder / "v1" / "tables" / "meter_state-0.db"
    db.mkdir(parents=True)
    (db / "000004.log").write_bytes(b"x")
    assert check_local_state(folder, "cluster-A") is True
    assert db.exists()  # same cluster: kept
    assert check_local_state(folder, "cluster-B") is False  # e.g. after `nzc services reset`
    assert not db.exists()
    assert (folder / "kafka-cluster-id").read_text().strip() == "cluster-B"
    # a folder without the mark (written by an unknown cluster) is not trusted either
    (folder / "kafka-cluster-id").unlink()
    db.mkdir(parents=True)
    assert check_local_state(folder, "cluster-B") is False
    assert not db.exists()


def test_local_state_folder_is_shared_and_configurable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from core.settings import Settings

    monkeypatch.delenv("NZC_STREAM_STATE_DIR", raising=False)
    s = Settings.from_env()
    assert s.stream_state_root == s.state_dir / "stream-state"
    monkeypatch.setenv("NZC_STREAM_STATE_DIR", str(tmp_path / "elsewhere"))
    assert Settings.from_env().stream_state_root == tmp_path / "elsewhere"


def test_nothing_is_committed_past_an_unacknowledged_head() -> None:
    from stream.app import head_is_missing

    # committed offset 100: the record at 100 is the next to commit
    assert head_is_missing(101, 100, False)  # 100 missing, 101.. acknowledged: hold
    assert not head_is_missing(100, 100, False)  # 100 acknowledged: commit
    assert not head_is_missing(101, 100, True)  # 100 is a transaction marker (faust's gap)
    assert head_is_missing(1, 0, False)  # never committed: the first record is offset 0


def test_a_hole_at_the_head_holds_commits_and_the_partition_is_read_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer's own bookkeeping (faust's ``_new_offset`` around ours), without Kafka:
    offsets 101-104 acknowledged, 100 (the committed offset) not."""
    import asyncio
    from collections import defaultdict

    from faust.types import TP
    from intervaltree import IntervalTree

    import stream.app as app_mod

    tp = TP("readings.valid.v1", 3)
    seeks: list[tuple[TP, int]] = []
    consumer = object.__new__(app_mod._Consumer)
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._gap = defaultdict(IntervalTree)
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._floor, consumer._hole_since, consumer._reread_tasks = {}, {}, set()
    consumer._committed_offset[tp] = 100

    async def seek(partition: TP, offset: int) -> None:
        seeks.append((partition, offset))

    consumer.seek = seek  # type: ignore[method-assign]
    consumer._acked[tp].extend([101, 102, 103, 104])
    consumer._acked_index[tp].update([101, 102, 103, 104])
    monkeypatch.setattr(app_mod, "HOLE_RESEEK_S", 0.0)

    async def run() -> tuple[int | None, int | None]:
        held = consumer._new_offset(tp)  # hole at 100: nothing to commit; re-read scheduled
        await asyncio.sleep(0)
        consumer._acked[tp].append(100)  # the re-read record is processed
        consumer._acked_index[tp].add(100)
        return held, consumer._new_offset(tp)

    held, after = asyncio.run(run())
    assert held is None
    assert seeks == [(tp, 100)]
    assert after == 105  # everything up to 104 may now be committed
