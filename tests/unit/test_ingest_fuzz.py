"""Fuzzing ingest as part of the suite (issue 8): per gateway format, hypothesis strategies
of hostile messages (tests/fuzzing.py) plus a few mutants of each go through
decode_message, which must not raise, must not report ``decoder_error`` and must return only
finite, in-range readings and storable dead letters. ``scripts/fuzz`` is the long run."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import STRATEGIES, Message, Tally, registry, run_one

REG = registry()
EXAMPLES = 120  # per format; the long run is scripts/fuzz
MUTANTS = 3


@pytest.mark.parametrize("fmt", sorted(STRATEGIES))
def test_no_input_crashes_ingest_or_breaks_an_invariant(fmt: str) -> None:
    tally = Tally()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages=STRATEGIES[fmt]())
    def body(messages: list[Message]) -> None:
        before = len(tally.crashes)
        run_one(REG, messages, tally, MUTANTS)
        assert len(tally.crashes) == before, tally.crashes[before]

    body()
    assert tally.inputs >= EXAMPLES and tally.crashes == []
    assert "decoder_error" not in tally.codes
