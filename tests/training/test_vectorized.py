"""Vectorized seeds (`train --seeds ... --vectorized`): a vectorized seed is bitwise the plain run of that
seed (K = 1, and whatever the other seeds of the run are), a vectorized run stopped and resumed equals one
that never stopped, its checkpoints are those of a single run (evaluate, inspect-checkpoint, plot), and the
exactness checks fail when the seeds share one random stream."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from reservoir_rl.cli import app
from reservoir_rl.commands.evaluate import evaluate
from reservoir_rl.commands.inspect import inspect_checkpoint
from reservoir_rl.commands.seeds import resume_seeds, train_seeds
from reservoir_rl.commands.train import train
from reservoir_rl.env.reservoir_env import DiscreteReservoirEnv
from reservoir_rl.monitor.live import make_view
from reservoir_rl.monitor.seed_figures import SeedCurves
from reservoir_rl.runs.checkpoint import load_checkpoint
from reservoir_rl.runs.events import read_scalars
from reservoir_rl.runs.groups import find_group
from reservoir_rl.training import vectorized as vectorized_training
from tiny_training import write_config

TOTAL = 512
TENSOR_KEYS = ("q_network", "loss_module")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("vectorized")
    # no baseline levels in TensorBoard (they cost more than the tiny training)
    return root, write_config(root, train={"total_frames": TOTAL}, logging={"baseline_levels": False})


@pytest.fixture(scope="module")
def plain(setup):
    """Plain single runs of seeds 7 and 8, by name."""
    root, config = setup
    runs = {}
    for seed in (7, 8):
        summary = train(config, [], make_view("quiet"), root / "plain", f"seed-{seed}", seed=seed, command=["t"])
        runs[seed] = summary.run_dir
    return runs


@pytest.fixture(scope="module")
def pair(setup):
    """A vectorized run of seeds 7 and 8 (K = 2)."""
    root, config = setup
    messages = []
    summary = train_seeds(config, [7, 8], [], root / "runs", "pair", command=["t"], vectorized=True, max_parallel=1,
                          on_message=messages.append)
    return summary, messages


def _last(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")


def assert_same_training_state(a: dict, b: dict) -> None:
    """Networks (online and target), Adam, counters, random streams and last validation, bitwise."""
    for key in TENSOR_KEYS:
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][name]), (index, name)
    assert a["counters"] == b["counters"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert _same_numbers(a["last_eval"], b["last_eval"]) and a["best_eval_return"] == b["best_eval_return"]
    # the in-flight episodes: the env's reservoirs and generator, the collector's carried tensordict
    assert a["env_state"].keys() == b["env_state"].keys() and a["carrier"].keys() == b["carrier"].keys()
    for name in a["env_state"]:
        assert torch.equal(a["env_state"][name], b["env_state"][name]), name
    for name in a["carrier"]:
        assert torch.equal(a["carrier"][name], b["carrier"][name]), name


def _same_numbers(a: dict, b: dict) -> bool:
    """Equal dicts of numbers, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


def test_k1_vectorized_run_is_bitwise_the_plain_run(setup, plain):
    root, config = setup
    summary = train_seeds(config, [7], [], root / "runs", "one", command=["t"], vectorized=True, max_parallel=1)
    assert [o.status for o in summary.outcomes] == ["finished"]
    seed_run = summary.run_dir / "seed-7"
    assert_same_training_state(_last(seed_run), _last(plain[7]))
    best, plain_best = (load_checkpoint(r / "checkpoints" / "best.pt") for r in (seed_run, plain[7]))
    assert best["counters"] == plain_best["counters"]
    for name in best["q_network"]:
        assert torch.equal(best["q_network"][name], plain_best["q_network"][name])
    # the same TensorBoard curves (the run folder of a single run)
    ours, theirs = read_scalars(seed_run / "tensorboard"), read_scalars(plain[7] / "tensorboard")
    for tag in ("eval/return", "train/loss", "episode/return_mean"):
        for mine, other in zip(ours[tag], theirs[tag]):  # (frames, values)
            assert np.array_equal(mine, other), tag


def test_a_seed_does_not_depend_on_the_other_seeds(setup, plain, pair):
    """Seeds 7 and 8 of a K = 2 run are the plain runs of 7 and 8; seed 7 of a K = 3 run with other
    companions is too."""
    root, config = setup
    summary, messages = pair
    assert summary.seeds == [7, 8] and summary.stopped_by is None
    for seed in (7, 8):
        assert_same_training_state(_last(summary.run_dir / f"seed-{seed}"), _last(plain[seed]))
    assert any(m.startswith(f"frames {TOTAL:,}/{TOTAL:,} │ validation return: seed 7") for m in messages)
    trio = train_seeds(config, [9, 7, 4], [], root / "runs", "trio", command=["t"], vectorized=True, max_parallel=1)
    assert_same_training_state(_last(trio.run_dir / "seed-7"), _last(plain[7]))
    weights = [_last(trio.run_dir / f"seed-{s}")["q_network"]["head.weight"] for s in (9, 7, 4)]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_the_seeds_collect_in_one_env_of_k_blocks(setup, monkeypatch, tmp_path):
    """Every training day of a K = 3 run is one step of one env of 3 × train.n_envs reservoirs, and every
    day of its validation evaluations one step of one env of 3 × train.eval_episodes (the seeds' own envs
    are never stepped)."""
    _, config = setup
    stepped = []
    original = DiscreteReservoirEnv._step

    def spy(self, tensordict):
        stepped.append((type(self).__name__, self.n_envs))
        return original(self, tensordict)

    monkeypatch.setattr(DiscreteReservoirEnv, "_step", spy)
    train_seeds(config, [1, 2, 3], ["train.total_frames=128"], tmp_path, "spy", command=["t"], vectorized=True, max_parallel=1)
    assert set(stepped) == {("BlockedReservoirEnv", 24), ("BlockedReservoirEnv", 6)}
    assert stepped.count(("BlockedReservoirEnv", 24)) == 128 // 8  # one env step per day for all three seeds


def test_vectorized_seeds_equal_process_mode_seeds(setup, pair):
    """The same config and seeds in process mode (one `seed_process` per seed): each seed's validation
    returns, networks and random streams are those of the vectorized run, bitwise — equivalence in the
    strongest sense, which also puts every return inside the other mode's interval over the seeds."""
    root, config = setup
    process = train_seeds(config, [7, 8], [], root / "runs", "process", command=["t"], max_parallel=2)
    assert [o.status for o in process.outcomes] == ["finished", "finished"]
    returns = {}
    for seed in (7, 8):
        ours, theirs = _last(pair[0].run_dir / f"seed-{seed}"), _last(process.run_dir / f"seed-{seed}")
        assert_same_training_state(ours, theirs)
        returns[seed] = (ours["last_eval"]["return"], theirs["last_eval"]["return"])
    vectorized, processes = zip(*returns.values())
    assert min(processes) <= min(vectorized) and max(vectorized) <= max(processes)


@pytest.mark.parametrize("shared", ["swaps", "collection"])
def test_seeds_sharing_one_random_stream_are_caught(setup, plain, monkeypatch, shared):
    """The exactness checks can fail: with the stream swaps disabled (the seeds draw from one shared
    stream), or with every seed's ε-greedy draws of the collection made from seed 7's stream, seed 8 of a
    K = 2 run is no longer the plain run of seed 8."""
    root, config = setup
    if shared == "swaps":
        monkeypatch.setattr(vectorized_training.SeedStreams, "use", lambda self, k: None)
        monkeypatch.setattr(vectorized_training.SeedStreams, "use_torch", lambda self, k: None)
    else:
        lend = vectorized_training.SeedStreams.lend_torch

        def lend_the_first(self, generators):
            lend(self, generators)
            for generator in generators[1:]:
                generator.set_state(generators[0].get_state())

        monkeypatch.setattr(vectorized_training.SeedStreams, "lend_torch", lend_the_first)
    summary = train_seeds(config, [7, 8], [], root / "runs", f"shared-{shared}", command=["t"], vectorized=True, max_parallel=1)
    with pytest.raises(AssertionError):
        assert_same_training_state(_last(summary.run_dir / "seed-8"), _last(plain[8]))


def test_resume_of_a_vectorized_run_is_exact(setup, pair):
    """Stopped at frame 256 (its training ended there), resumed to 512: the same state as the run that
    trained 512 frames at once, for every seed; seeds.yaml makes `resume` continue vectorized."""
    root, config = setup
    first = train_seeds(config, [7, 8], ["train.total_frames=256"], root / "runs", "halves", command=["t"],
                        vectorized=True, max_parallel=1)
    assert [o.frames for o in first.outcomes] == [256, 256]
    document = yaml.safe_load((first.run_dir / "seeds.yaml").read_text())
    assert document["vectorized"] is True
    group = find_group(first.run_dir)
    resumed = resume_seeds(group, total_frames=TOTAL, command=["r"])
    assert [o.status for o in resumed.outcomes] == ["finished", "finished"]
    assert not (first.run_dir / "logs").exists()  # one process: no per-seed logs
    for seed in (7, 8):
        ours, theirs = _last(first.run_dir / f"seed-{seed}"), _last(pair[0].run_dir / f"seed-{seed}")
        for key in TENSOR_KEYS:
            for name in ours[key]:
                assert torch.equal(ours[key][name], theirs[key][name]), (seed, key, name)
        assert ours["counters"] == theirs["counters"]
        assert torch.equal(ours["rng"]["torch"], theirs["rng"]["torch"])
        metadata = yaml.safe_load((first.run_dir / f"seed-{seed}" / "metadata.yaml").read_text())
        assert metadata[-1]["event"] == "resume from frame 256"
    with pytest.raises(Exception, match="every seed has trained 512 frames"):
        resume_seeds(group, command=["r"])


def test_sigint_stops_every_seed_with_a_checkpoint_and_resume_is_exact(setup, pair):
    """SIGINT in the middle of a vectorized run (sent at its first in-training evaluation, frame 256):
    every seed saves a checkpoint at that frame and stops; `resume` then ends where the run that never
    stopped ended, bitwise."""
    root, config = setup
    sent = []

    def interrupt(message: str) -> None:
        if message.startswith("frames") and not sent:
            sent.append(message)
            os.kill(os.getpid(), signal.SIGINT)

    stopped = train_seeds(config, [7, 8], [], root / "runs", "interrupted", command=["t"], vectorized=True, max_parallel=1,
                          on_message=interrupt)
    assert stopped.stopped_by == "SIGINT" and [o.status for o in stopped.outcomes] == ["stopped", "stopped"]
    assert [o.frames for o in stopped.outcomes] == [256, 256]
    resume_seeds(find_group(stopped.run_dir), command=["r"])
    for seed in (7, 8):
        assert_same_training_state(_last(stopped.run_dir / f"seed-{seed}"), _last(pair[0].run_dir / f"seed-{seed}"))


def test_prioritized_n_step_double_dqn_seeds_equal_their_plain_runs(tmp_path):
    """The loop's other paths (importance weights and priorities, n-step discounts, double DQN) keep a
    vectorized seed bitwise its plain run."""
    config = write_config(tmp_path, train={"total_frames": 384, "prioritized_replay": True},
                          agent={"hidden_sizes": [32], "n_step": 3, "double_dqn": True},
                          logging={"baseline_levels": False})
    summary = train_seeds(config, [7, 8], [], tmp_path / "runs", "v", command=["t"], vectorized=True, max_parallel=1)
    plain_run = train(config, [], make_view("quiet"), tmp_path / "runs", "plain", seed=8, command=["t"]).run_dir
    ours, theirs = _last(summary.run_dir / "seed-8"), _last(plain_run)
    assert_same_training_state(ours, theirs)
    priorities = ours["replay_buffer"]["_sampler"]["priorities"]
    assert torch.equal(priorities, theirs["replay_buffer"]["_sampler"]["priorities"])
    assert len(set(priorities.tolist())) > 2  # the priorities did move


def test_checkpoints_serve_evaluate_inspect_and_the_curves(setup, plain, pair, tmp_path):
    """A vectorized seed's folder is a single run's: inspect-checkpoint and evaluate read its best.pt, and
    the per-seed learning curves that `plot` draws come from the seeds' TensorBoard runs."""
    summary, _ = pair
    seed_run = summary.run_dir / "seed-8"
    info = inspect_checkpoint(seed_run / "checkpoints" / "best.pt")
    assert info["params_sha256"] == inspect_checkpoint(plain[8] / "checkpoints" / "best.pt")["params_sha256"]
    evaluate(seed_run / "checkpoints" / "best.pt", episodes=2, baselines="none", out=tmp_path / "e.json")
    assert (tmp_path / "e.json").is_file()
    series = {f"seed {s}": read_scalars(summary.run_dir / f"seed-{s}" / "tensorboard")["eval/return"] for s in (7, 8)}
    curves = SeedCurves.from_series(series)  # what `plot` draws of a multi-seed run
    assert len(curves.per_seed) == 2 and list(curves.steps) == [256, 512]


def test_cli_vectorized_errors(setup, tmp_path):
    root, config = setup
    runner = CliRunner()

    def fails(args, fragment):
        result = runner.invoke(app, [str(a) for a in args])
        output = result.output.strip()
        assert result.exit_code == 2 and "Traceback" not in output, output
        assert len(output.splitlines()) == 1 and fragment in output, output

    result = runner.invoke(app, ["train", str(config), "--seeds", "3", "--vectorized", "--quiet", "--runs-dir",
                                 str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    assert "1 seeds vectorized in one process" in " ".join(result.output.split())
    assert (tmp_path / "ok" / "run-1" / "seed-3" / "checkpoints" / "best.pt").is_file()
    fails(["train", config, "--vectorized", "--runs-dir", tmp_path], "--vectorized applies to several seeds")
    fails(["train", config, "--seeds", "1,2", "--vectorized", "--set", "train.collector.backend=process",
           "--runs-dir", tmp_path], "train.collector.backend = sync")
    assert [p.name for p in tmp_path.iterdir()] == ["ok"]  # nothing created by the failures


def test_seeds_that_would_not_fit_in_memory_together_are_refused(setup):
    from reservoir_rl.commands.vectorized import check_vectorized_memory
    from reservoir_rl.config import load_config
    from reservoir_rl.errors import UserError
    from reservoir_rl.runs.resources import training_bytes

    config = load_config(setup[1])
    one = sum(size for _, size in training_bytes(config).values())
    check_vectorized_memory(config, 3, available=3 * one)
    with pytest.raises(UserError, match="--vectorized with 3 seeds"):
        check_vectorized_memory(config, 3, available=3 * one - 1)


def test_a_failure_in_the_set_up_keeps_no_seed_folder_and_resume_trains_them(setup, plain, monkeypatch):
    """A seed's frame-0 checkpoint cannot be written: no seed folder is kept (nothing was trained), and
    `resume` trains every seed from frame 0 — to the plain runs' end state."""
    from reservoir_rl.errors import UserError
    from reservoir_rl.training.trainer import Trainer

    root, config = setup
    calls = []
    original = Trainer.save_checkpoint

    def failing(self):
        calls.append(self.run_dir.name)
        if len(calls) == 2:
            raise UserError("disk full")
        original(self)

    monkeypatch.setattr(Trainer, "save_checkpoint", failing)
    with pytest.raises(UserError, match="disk full"):
        train_seeds(config, [7, 8], [], root / "runs", "failed", command=["t"], vectorized=True, max_parallel=1)
    monkeypatch.undo()
    folder = root / "runs" / "failed"
    assert not (folder / "seed-7").exists() and not (folder / "seed-8").exists()
    resumed = resume_seeds(find_group(folder), command=["r"])
    assert [o.status for o in resumed.outcomes] == ["finished", "finished"]
    assert_same_training_state(_last(folder / "seed-7"), _last(plain[7]))


def test_vectorized_seeds_keep_their_baseline_levels_in_the_runs_cache(tmp_path, monkeypatch):
    """Each seed's validation baseline levels go to RUNS/.cache (as a plain run's do); a second vectorized run of
    the same seeds reads them there and rolls out no baseline, and logs the same numbers."""
    config = write_config(tmp_path, train={"total_frames": 256}, baselines={"sdp": {"storage_levels": 40}})
    runs = tmp_path / "runs"
    first = train_seeds(config, [7, 8], [], runs, "first", command=["t"], vectorized=True, max_parallel=1)
    kept = sorted((runs / ".cache" / "baseline-levels").glob("*.json"))
    assert len(kept) == 2  # one key per seed: each seed's own validation episodes

    def no_rollout(*args, **kwargs):
        raise AssertionError("baselines rolled out again")

    monkeypatch.setattr(vectorized_training, "blocked_baseline_returns", no_rollout)
    second = train_seeds(config, [7, 8], [], runs, "second", command=["t"], vectorized=True, max_parallel=1)
    for seed in (7, 8):
        ours, theirs = (read_scalars(s.run_dir / f"seed-{seed}" / "tensorboard") for s in (second, first))
        tags = [tag for tag in theirs if tag.startswith("baselines/")]
        assert tags and all(np.array_equal(ours[tag][1], theirs[tag][1]) for tag in tags)


def test_seeds_sharing_their_validation_episodes_roll_the_baselines_out_once(tmp_path, monkeypatch):
    """With ``train.eval_seed`` set, every seed is validated on the same episodes: the baselines' levels are
    rolled out on one block (not one per seed), kept under one cache key, and every seed logs the numbers a
    plain run of that config logs."""
    config = write_config(tmp_path, train={"total_frames": 256, "eval_seed": 5}, baselines={"sdp": {"storage_levels": 40}})
    runs = tmp_path / "runs"
    blocks = []
    original = vectorized_training.blocked_baseline_returns

    def counted(env, *args, **kwargs):
        blocks.append(env.n_blocks)
        return original(env, *args, **kwargs)

    monkeypatch.setattr(vectorized_training, "blocked_baseline_returns", counted)
    both = train_seeds(config, [7, 8], [], runs, "both", command=["t"], vectorized=True, max_parallel=1)
    assert blocks == [1]
    assert len(list((runs / ".cache" / "baseline-levels").glob("*.json"))) == 1
    alone = train(config, [], make_view("quiet"), tmp_path / "alone", "alone", seed=8, command=["t"])
    theirs = read_scalars(alone.run_dir / "tensorboard")
    tags = [tag for tag in theirs if tag.startswith("baselines/")]
    assert tags
    for seed in (7, 8):
        ours = read_scalars(both.run_dir / f"seed-{seed}" / "tensorboard")
        assert all(np.array_equal(ours[tag][1], theirs[tag][1]) for tag in tags)
