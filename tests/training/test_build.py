"""`service.build`: devices, the prioritized-replay constants, collector settings, CPU-only checkpoints;
the CUDA path (skipped without a GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from reservoir_rl.cli import app
from reservoir_rl.config import config_from_dict
from reservoir_rl.errors import ConfigError, UserError
from reservoir_rl.monitor.live import QuietView
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.commands import train as service
from reservoir_rl.training.build import build_training, cpu_tree, resolve_device
from tiny_training import tiny_config, write_config

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


def _tensors(tree, path: str = ""):
    if isinstance(tree, torch.Tensor):
        yield path, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _tensors(value, f"{path}.{key}")
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _tensors(value, f"{path}[{i}]")


@without_cuda
def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no CUDA device"):
        resolve_device("cuda")
    runs = tmp_path / "runs"
    for args in (["--device", "cuda"], ["--set", "train.device=cuda"]):
        result = CliRunner().invoke(app, ["train", str(write_config(tmp_path)), *args, "--runs-dir", str(runs)])
        output = result.output.strip()
        assert result.exit_code == 2 and len(output.splitlines()) == 1, output
        assert output.startswith("error:") and "no CUDA device" in output and "Traceback" not in output
    assert not runs.exists() or not any(runs.iterdir())


def test_cpu_tree_moves_every_tensor_and_keeps_the_rest() -> None:
    tree = {"a": torch.ones(2), "b": [torch.zeros(1), 3, "x"], "c": {"d": (torch.arange(2), None)}}
    out = cpu_tree(tree)
    assert out["b"][1:] == [3, "x"] and out["c"]["d"][1] is None and isinstance(out["c"]["d"], tuple)
    assert [path for path, _ in _tensors(out)] == [path for path, _ in _tensors(tree)]
    assert all(tensor.device.type == "cpu" for _, tensor in _tensors(out))


def test_priority_constants_reach_the_sampler() -> None:
    """train.priority_alpha shapes the sampling probabilities, train.priority_beta the importance weights."""
    config = config_from_dict(
        tiny_config(train={"prioritized_replay": True, "priority_alpha": 0.5, "priority_beta": 1.0, "batch_size": 4})
    )
    parts = build_training(config, torch.device("cpu"))
    sampler = parts.replay_buffer.sampler
    assert (sampler.alpha, sampler.beta) == (0.5, 1.0)
    batch = next(iter(parts.collector))
    parts.replay_buffer.extend(batch[:1, :2].flatten(0, 1).select("observation", "action"))
    sampler.update_priority(torch.tensor([0, 1]), torch.tensor([1.0 - sampler.eps, 4.0 - sampler.eps]))
    torch.manual_seed(0)
    index, info = sampler.sample(parts.replay_buffer.storage, 20_000)
    share_of_second = float((index == 1).double().mean())
    assert share_of_second == pytest.approx(2 / 3, abs=0.015)  # 4^0.5 : 1^0.5
    weights = info["priority_weight"]
    assert torch.allclose(weights[index == 1], torch.tensor(0.5))  # (p / p_min)^-β with p^α: (2 / 1)^-1
    assert torch.allclose(weights[index == 0], torch.tensor(1.0))


def test_collector_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"n_envs \(8\) must be a multiple of collector.workers \(3\)"):
        config_from_dict(tiny_config(train={"collector": {"backend": "process", "workers": 3}}))
    config_from_dict(tiny_config(train={"collector": {"backend": "sync", "workers": 3}}))  # unused by sync
    with pytest.raises(ConfigError, match="train.collector.backend"):
        config_from_dict(tiny_config(train={"collector": {"backend": "threads"}}))
    with pytest.raises(ConfigError, match="train.priority_alpha"):
        config_from_dict(tiny_config(train={"priority_alpha": -0.1}))


def test_sync_backend_is_built_at_once_and_process_workers_on_first_use() -> None:
    sync = build_training(config_from_dict(tiny_config()), torch.device("cpu"))
    assert sync.backend == "sync" and sync._collector is not None
    process = build_training(config_from_dict(tiny_config(train={"collector": {"backend": "process"}})), torch.device("cpu"))
    assert process.backend == "process" and process._collector is None  # no worker started yet
    process.close()  # nothing to stop: a no-op
    assert process._collector is None


# ------------------------------------------------------------------------------------------ CUDA


@needs_cuda
def test_cuda_puts_env_networks_buffer_and_batches_on_the_gpu() -> None:
    parts = build_training(config_from_dict(tiny_config(train={"device": "cuda"})), resolve_device("cuda"))
    assert parts.env.device.type == "cuda" and parts.eval_env.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in parts.agent.q_network.parameters())
    batch = next(iter(parts.collector))
    assert batch.device.type == "cuda" and batch.get("observation").device.type == "cuda"
    parts.replay_buffer.extend(batch.flatten(0, 1).select("observation", "action", ("next", "reward")))
    assert parts.replay_buffer.storage.device.type == "cuda"
    assert parts.replay_buffer.sample().get("observation").device.type == "cuda"


@needs_cuda
def test_cuda_run_trains_resumes_and_writes_cpu_checkpoints(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"total_frames": 256, "prioritized_replay": True})
    runs = tmp_path / "runs"
    first = service.train(config, [], QuietView(), runs_dir=runs, name="gpu", device="cuda", command=["test"])
    assert (first.frames, first.updates) == (256, 32)
    path = runs / "gpu" / "checkpoints" / "last.pt"
    raw = torch.load(path, weights_only=True)  # no map_location: what the file itself holds
    on_device = [name for name, tensor in _tensors(raw) if tensor.device.type != "cpu"]
    assert on_device == []
    assert ckpt.load_checkpoint(path)["config"]["train"]["device"] == "cuda"
    second = service.resume(str(runs / "gpu"), QuietView(), runs_dir=runs, total_frames=512, command=["test"])
    assert (second.frames, second.updates) == (512, 96)


@pytest.mark.parametrize("threads, expected", [(1, 1), (2, 2), (0, None)])
def test_torch_threads_of_the_training_process(threads: int, expected) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        build_training(config_from_dict(tiny_config(train={"torch_threads": threads})), torch.device("cpu"))
        assert torch.get_num_threads() == (3 if expected is None else expected)  # 0 leaves torch's setting
    finally:
        torch.set_num_threads(before)


def test_only_the_training_envs_scale_inflow_and_the_evaluation_uses_validation_years() -> None:
    config = config_from_dict(
        tiny_config(inflow={"validation_water_years": 1, "train_inflow_scale": [0.8, 1.25]})
    )
    parts = build_training(config, torch.device("cpu"))
    assert parts.env.inflow_scale_range == (0.8, 1.25)
    assert parts.eval_env.inflow_scale_range == (1.0, 1.0)
    # 6 synthetic years: 2 held out, the last of the remaining 4 validates, 3 train
    assert len(parts.env.water_years) == 3 and parts.eval_env.water_years == [max(parts.env.water_years) + 1]


def test_the_collector_stores_the_guarded_action_and_the_window_logs_its_share() -> None:
    """The release guard sits between the ε-greedy policy and the env: the batch's ``action`` (what the
    replay buffer stores) is the executed level, inside the guard's band; the window reports the override share."""
    from reservoir_rl.env.safety import GUARD_OVERRIDE_KEY, GuardedPolicy, ReleaseGuard
    from reservoir_rl.env.metrics import EpisodeAccumulator
    from reservoir_rl.training.statistics import TrainingWindow

    config = config_from_dict(tiny_config())
    parts = build_training(config, torch.device("cpu"))
    assert isinstance(parts.explore_policy, GuardedPolicy) and parts.explore_policy.policy is parts.agent.explore_policy
    batch = next(iter(parts.collector)).reshape(-1)
    guard = ReleaseGuard.for_env(parts.env)
    forecast_args = (batch["storage_hm3"], batch["observation"], batch["day_of_year"])
    again, moved = guard.apply(batch["action"], *forecast_args)
    assert torch.equal(again, batch["action"]) and not moved.any()  # already inside the band
    greedy = batch["action_value"].argmax(-1)
    assert batch[GUARD_OVERRIDE_KEY].dtype == torch.bool
    window = TrainingWindow()
    accumulator = EpisodeAccumulator(parts.env.n_envs, parts.env.config)
    window.add_batch(batch["action_value"], accumulator.update_batch(batch.reshape(parts.env.n_envs, -1)),
                     batch[GUARD_OVERRIDE_KEY])
    share = window.summary()["agent"]["guard_override_fraction"]
    assert share == pytest.approx(float(batch[GUARD_OVERRIDE_KEY].float().mean()))
    assert greedy.shape == batch["action"].shape
    parts.close()

    off = build_training(config_from_dict(tiny_config(env={"safety": {"enabled": False}})), torch.device("cpu"))
    from reservoir_rl.agent.dqn import GreedyQPolicy

    assert off.explore_policy is off.agent.explore_policy  # without the guard: the agent's policies themselves
    assert isinstance(off.greedy_policy, GreedyQPolicy) and off.greedy_policy.q_network is off.agent.q_network
    assert GUARD_OVERRIDE_KEY not in next(iter(off.collector)).keys()
    off.close()
