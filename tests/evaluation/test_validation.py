"""The best implementable baseline is chosen among the baselines without foresight."""

from __future__ import annotations

from reservoir_rl.evaluation.validation import best_implementable


def test_best_implementable_ignores_foresight_and_unknown_names():
    assert best_implementable({"sop": 1.0, "rule": 3.0, "dp": 9.0}) == "rule"  # dp is an upper bound
    assert best_implementable({"dp": 9.0}) is None and best_implementable({}) is None
    assert best_implementable({"hedging": 2.0, "sop": 2.0}) == "sop"  # a tie goes to the catalog's first
