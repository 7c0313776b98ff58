"""The data behind the figures of several runs: differing config keys, labels, curves, evaluations."""

from __future__ import annotations

import numpy as np

from reservoir_rl.evaluation.run_comparison import (
    ComparedRun,
    compare_evaluations,
    differing_keys,
    flatten,
    record_of,
    run_curves,
    run_labels,
)


def test_differing_keys_skip_logging_and_count_missing_keys():
    configs = {
        "run-1": flatten({"train": {"lr": 1e-3, "batch_size": 64}, "agent": {"n_step": 1}, "logging": {"x": 1}}),
        "run-2": flatten({"train": {"lr": 5e-4, "batch_size": 64}, "agent": {"n_step": 3}, "logging": {"x": 2}}),
        "run-3": flatten({"train": {"lr": 1e-3, "batch_size": 64}, "agent": {"n_step": 1, "extra": [1, 2]}, "logging": {"x": 1}}),
    }
    assert differing_keys(configs) == ["train.lr", "agent.n_step", "agent.extra"]
    labels = run_labels(configs, differing_keys(configs))
    assert labels["run-2"] == "run-2 (train.lr=0.0005, agent.n_step=3, agent.extra=—)"
    assert labels["run-3"] == "run-3 (train.lr=0.001, agent.n_step=1, agent.extra=[1,2])"


def test_long_labels_are_shortened():
    keys = [f"train.k{i}" for i in range(5)]
    configs = {"a": {k: 1 for k in keys}, "b": {**{k: 2 for k in keys}, "train.k0": "x" * 60}}
    label = run_labels(configs, keys)["b"]
    assert label.startswith("b (train.k0=" + "x" * 23 + "…, train.k1=2, train.k2=2, +2 more)")
    assert run_labels({"a": {}, "b": {}}, []) == {"a": "a", "b": "b"}  # same configs: names alone


def test_record_names_the_river():
    assert record_of({"inflow.source": "bundled", "inflow.gauge": "trenton"}) == "bundled trenton"
    assert record_of({"inflow.source": "csv", "inflow.path": "/d/x.csv"}) == "csv /d/x.csv"


def test_curves_of_several_seeds_are_their_mean_and_range():
    steps = np.array([100, 200])
    run = ComparedRun("g", {}, {"seed 0": {"eval/return": (steps, np.array([1.0, 3.0]))},
                                "seed 1": {"eval/return": (steps, np.array([3.0, 5.0]))}})
    curves = run_curves(run)["greedy agent on the validation episodes"]
    assert curves.mean.tolist() == [2.0, 4.0] and curves.low.tolist() == [1.0, 3.0] and curves.high.tolist() == [3.0, 5.0]
    assert not len(run_curves(run)["training episodes (ε-greedy, training years)"].steps)  # not logged: empty


def _document(agent_mean, episodes=10):
    summary = lambda m: {"return": {"mean": m, "ci_low": m - 1, "ci_high": m + 1}}  # noqa: E731
    return {"years": "heldout", "episodes": episodes, "seed": 7, "bootstrap": {"confidence": 0.95},
            "policies": {"agent": {"summary": summary(agent_mean)}, "sop": {"summary": summary(0.5)}}}


def test_evaluations_side_by_side_with_the_first_runs_baselines():
    runs = [ComparedRun("a", {}, {}, _document(2.0), "a (x=1)"), ComparedRun("b", {}, {}, None, "b (x=2)"),
            ComparedRun("c", {}, {}, _document(3.0, episodes=20), "c (x=3)")]
    result = compare_evaluations(runs)
    assert result.stats["return"] == {"a": (2.0, 1.0, 3.0), "c": (3.0, 2.0, 4.0), "SOP (a)": (0.5, -0.5, 1.5)}
    assert any("no evaluation.json in b" in n for n in result.notes)
    assert any("different episodes" in n and "20 held-out episodes" in n for n in result.notes)
    assert result.caption == "runs: a (x=1); c (x=3)"
    assert compare_evaluations([ComparedRun("b", {}, {}, None)]).stats == {}
