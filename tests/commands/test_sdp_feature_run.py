"""A run with ``env.extra_features: [sdp_release_fraction]`` trains, checkpoints, resumes exactly, evaluates on
held-out and validation years, trains vectorized seeds, and its checkpoint describes the feature."""

from __future__ import annotations

import torch

from reservoir_rl.commands import train as service
from reservoir_rl.commands.evaluate import evaluate
from reservoir_rl.commands.inspect import inspect_checkpoint
from reservoir_rl.commands.seeds import train_seeds
from reservoir_rl.monitor.live import QuietView
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.runs.policy import load_policy
from tiny_training import write_config

FEATURE = "sdp_release_fraction"
SECTIONS = {
    # 8 synthetic water years: 2 held out, 2 for validation, 3 to train on
    "inflow": {"source": "synthetic", "heldout_water_years": 2, "validation_water_years": 2,
               "synthetic": {"n_years": 8, "seed": 3}},
    "env": {"horizon_days": 60, "extra_features": [FEATURE]},
    "baselines": {"sdp": {"storage_levels": 50}, "dp_storage_levels": 100, "mpc": {"storage_levels": 50}},
}


def test_a_run_with_the_feature_trains_resumes_exactly_and_evaluates(tmp_path):
    config = write_config(tmp_path, **SECTIONS, train={"total_frames": 2048, "eval_every_frames": 512,
                                                       "checkpoint_every_frames": 512})
    runs = tmp_path / "runs"
    straight = service.train(config, [], QuietView(), runs, name="straight")
    half = service.train(config, ["train.total_frames=1024"], QuietView(), runs, name="split")
    assert (straight.frames, half.frames, half.stopped_by) == (2048, 1024, "done")
    resumed = service.resume("split", QuietView(), runs, total_frames=2048)
    assert resumed.frames == 2048
    a = ckpt.load_checkpoint(straight.run_dir / "checkpoints" / "last.pt")
    b = ckpt.load_checkpoint(resumed.run_dir / "checkpoints" / "last.pt")
    assert a["counters"] == b["counters"] and a["counters"]["updates"] > 0
    for name, tensor in a["q_network"].items():
        assert torch.equal(tensor, b["q_network"][name]), name
    first = next(iter(a["q_network"].values()))
    assert first.shape[-1] == 3 + 10 + 1  # storage, season, 10 forecast leads, the SDP's release

    policy = load_policy(straight.run_dir / "checkpoints" / "last.pt")
    assert policy.observation_layout[-1] == FEATURE
    assert inspect_checkpoint(straight.run_dir / "checkpoints" / "last.pt")["config"]["env"]["extra_features"] == [FEATURE]
    for years in ("heldout", "validation"):
        report = evaluate(straight.run_dir, episodes=3, years=years, baselines="sop,sdp", runs_dir=runs)
        assert set(report.policies) >= {"agent", "sop", "sdp"}


def test_vectorized_seeds_train_with_the_feature(tmp_path):
    config = write_config(tmp_path, **SECTIONS, train={"total_frames": 256})
    summary = train_seeds(config, [1, 2], [], tmp_path / "runs", "pair", command=["t"], vectorized=True, max_parallel=1)
    for seed in (1, 2):
        payload = ckpt.load_checkpoint(summary.run_dir / f"seed-{seed}" / "checkpoints" / "last.pt")
        assert payload["counters"]["frames"] == 256
        assert next(iter(payload["q_network"].values())).shape[-1] == 14


def test_worker_processes_build_their_envs_with_the_feature(tmp_path):
    """The ``process`` backend's workers build their own envs from the config: they observe the feature too."""
    config = write_config(tmp_path, **SECTIONS, train={"total_frames": 256,
                                                       "collector": {"backend": "process", "workers": 2}})
    summary = service.train(config, [], QuietView(), tmp_path / "runs", name="workers")
    assert (summary.frames, summary.stopped_by) == (256, "done")
    payload = ckpt.load_checkpoint(summary.run_dir / "checkpoints" / "last.pt")
    assert next(iter(payload["q_network"].values())).shape[-1] == 14
