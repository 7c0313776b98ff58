"""Collection backends: ``process`` (TorchRL's MultiSyncCollector over worker processes) and ``ray``.

The workers are spawned processes (a second or two each to import torch), so this module starts them
as few times as it can: once for the batch-layout and weight-push checks, twice for train + resume.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from reservoir_rl.config import config_from_dict
from reservoir_rl.errors import CheckpointError, UserError
from reservoir_rl.monitor.live import QuietView
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.commands import train as service
from reservoir_rl.training.build import build_training
from reservoir_rl.training.collection import RAY_EXTRA_HINT, worker_env_seed, worker_exploration_seed
from tiny_training import scalar_series, tiny_config, write_config

PROCESS = {"collector": {"backend": "process", "workers": 2}}


def _rows_continue(first, second) -> None:
    """Each row is one reservoir through time: where a day did not end an episode, the next day starts
    from its ``("next", ...)`` state — inside a batch and from one batch to the next."""
    for batch in (first, second):
        not_done = ~batch.get(("next", "done"))[:, :-1, 0]
        for key in ("observation", "storage_hm3", "record_index"):
            nxt, now = batch.get(("next", key))[:, :-1], batch.get(key)[:, 1:]
            assert torch.equal(nxt[not_done], now[not_done]), key
    carried = ~first.get(("next", "done"))[:, -1, 0]
    assert carried.any()
    for key in ("observation", "storage_hm3", "record_index"):
        assert torch.equal(first.get(("next", key))[:, -1][carried], second.get(key)[:, 0][carried]), key


@pytest.fixture(scope="module")
def process_parts():
    config = config_from_dict(tiny_config(train=PROCESS))
    parts = build_training(config, torch.device("cpu"))
    yield parts
    parts.close()


def test_process_batches_have_the_sync_layout(process_parts) -> None:
    """(n_envs, T) batches, worker 0's reservoirs first, every row a continuous trajectory; the two
    workers step differently seeded reservoirs."""
    parts = process_parts
    train = parts.config.train
    parts.agent.set_epsilon(1.0)
    iterator = iter(parts.collector)
    first, second = next(iterator).clone(), next(iterator).clone()
    days = train.frames_per_batch // train.n_envs
    assert first.batch_size == torch.Size([train.n_envs, days])
    assert first.numel() == train.frames_per_batch
    _rows_continue(first, second)
    # each worker's reservoirs are its own: the two halves start from different records and storages
    assert not torch.equal(first.get("record_index")[:4, 0], first.get("record_index")[4:, 0])
    assert not torch.equal(first.get("storage_hm3")[:4, 0], first.get("storage_hm3")[4:, 0])
    assert worker_env_seed(train.seed, 0) != worker_env_seed(train.seed, 1)
    assert worker_exploration_seed(train.seed, 0, 0) != worker_exploration_seed(train.seed, 0, 320)


def test_process_workers_follow_the_policy_after_every_update(process_parts) -> None:
    """Weights and ε set in the training process reach the workers before the next batch."""
    parts = process_parts
    agent = parts.agent
    iterator = iter(parts.collector)
    with torch.no_grad():
        for parameter in agent.q_network.parameters():
            parameter.zero_()
        agent.q_network.head.bias[3] = 1.0  # greedy action: release level 3 whatever the state
    agent.set_epsilon(0.0)
    assert (next(iterator).get("action") == 3).all()
    agent.q_network.head.bias.data[3], agent.q_network.head.bias.data[7] = 0.0, 1.0
    assert (next(iterator).get("action") == 7).all()
    agent.set_epsilon(1.0)  # uniform over 11 levels: 64 draws are not all 7
    assert not (next(iterator).get("action") == 7).all()


def test_process_worker_state_restores_the_same_days(process_parts) -> None:
    """Each worker's reservoirs, generator and carried tensordict, saved then put back into the running
    workers: under a deterministic policy the next batch is the same, day for day."""
    parts = process_parts
    with torch.no_grad():
        for parameter in parts.agent.q_network.parameters():
            parameter.zero_()
        parts.agent.q_network.head.bias[5] = 1.0
    parts.agent.set_epsilon(0.0)
    iterator = iter(parts.collector)
    next(iterator)
    state = parts.collection_state()
    assert len(state["env_state"]["workers"]) == 2 and len(state["carrier"]["workers"]) == 2
    assert state["env_state"]["workers"][0]["storage_hm3"].shape == (4,)  # 8 reservoirs over 2 workers
    expected = next(iterator).clone()
    parts.load_collection_state(state)
    got = next(iter(parts.collector)).clone()  # a new loop continues the same stream
    for key in ("observation", "storage_hm3", "record_index", ("next", "reward"), ("next", "done"), ("next", "observation")):
        assert torch.equal(got.get(key), expected.get(key)), key


def test_process_checkpoint_of_another_layout_is_refused(process_parts, tmp_path) -> None:
    sync_parts = build_training(config_from_dict(tiny_config()), torch.device("cpu"))
    with pytest.raises(CheckpointError, match="collector"):
        process_parts.load_collection_state(sync_parts.collection_state())
    worker_payload = {"env_state": {"workers": [{}]}, "carrier": {"workers": [{}]}}
    with pytest.raises(CheckpointError, match="2 collector workers"):
        process_parts.load_collection_state(worker_payload)
    with pytest.raises(CheckpointError, match="collector"):
        sync_parts.load_collection_state(worker_payload)


def test_process_backend_trains_logs_checkpoints_and_resumes(tmp_path: Path) -> None:
    """A tiny run with 2 worker processes: frames, updates and episodes add up, TensorBoard gets its
    curves, the checkpoint holds each worker's episodes, and a resumed run continues them (the
    episode accounting of the training process agrees with the workers' reservoirs)."""
    config = write_config(tmp_path, train={**PROCESS, "total_frames": 256})
    runs = tmp_path / "runs"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a seed of a multi-seed run sets it
    try:
        first = service.train(config, [], QuietView(), runs_dir=runs, name="p", command=["test"])
        assert torch.get_num_threads() == 1  # starting and stopping the workers leaves this process's threads
    finally:
        torch.set_num_threads(threads)
    assert (first.frames, first.updates, first.stopped_by) == (256, (256 - 128) // 4, "done")
    saved = ckpt.load_checkpoint(runs / "p" / "checkpoints" / "last.pt")
    assert [w["steps"].tolist() for w in saved["env_state"]["workers"]] == [[32] * 4] * 2  # 256 frames / 8 envs
    assert saved["config"]["train"]["collector"]["backend"] == "process"

    second = service.resume(str(runs / "p"), QuietView(), runs_dir=runs, total_frames=512, command=["test"])
    assert (second.frames, second.updates) == (512, (512 - 128) // 4)
    # 64 days per reservoir on a 60-day horizon: every reservoir finished an episode after the resume
    assert second.episodes >= 8
    final = ckpt.load_checkpoint(runs / "p" / "checkpoints" / "last.pt")
    steps = torch.cat([w["steps"] for w in final["env_state"]["workers"]])
    # workers that restarted their episodes at frame 256 would be 32 days in, the accounting 64
    assert torch.equal(final["episode_accumulator"]["length"].to(steps.dtype), steps)
    curves = scalar_series(runs / "p" / "tensorboard")
    assert [step for step, _ in curves["train/buffer_size"]] == [128, 256, 384, 512]
    assert "episode/return_mean" in curves and "eval/return" in curves


# ------------------------------------------------------------------------------------------- ray


def test_ray_backend_without_ray_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from reservoir_rl.cli import app

    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # `import ray` fails as if not installed
    config = config_from_dict(tiny_config(train={"collector": {"backend": "ray"}}))
    with pytest.raises(UserError, match="the 'ray' extra of reservoir-rl"):
        build_training(config, torch.device("cpu"))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["train", str(write_config(tmp_path)), "--set", "train.collector.backend=ray", "--runs-dir", str(runs)]
    )
    output = result.output.strip()
    assert result.exit_code == 2 and len(output.splitlines()) == 1 and "Traceback" not in output, output
    assert output.startswith("error:") and output.endswith(RAY_EXTRA_HINT) and "ray" in output.split(":")[1]
    assert not runs.exists() or not any(runs.iterdir())


needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="needs the ray extra (scripts/setup.sh and .ci/run install it, so CI always runs these tests)",
)
# Ray's collectors join a process group with a fixed 60 s timeout (torchrl.weight_update._ray) that a CPU busy with
# other tests can exceed: scripts/test.sh runs the tests marked `serial` after the others, alone.
serial = pytest.mark.serial


@serial
@needs_ray
def test_ray_backend_trains_and_resumes(tmp_path: Path, monkeypatch) -> None:
    """train.collector.ray_address null: this process starts a local Ray instance for the run (~30 s).
    (Recent Ray saves a token for a new local instance in ~/.ray: HOME is the test's folder.)"""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    config = write_config(tmp_path, train={"collector": {"backend": "ray", "workers": 2}, "total_frames": 256},
                          logging={"baseline_levels": False})
    runs = tmp_path / "runs"
    first = service.train(config, [], QuietView(), runs_dir=runs, name="r", command=["test"])
    assert (first.frames, first.updates) == (256, 32)
    second = service.resume(str(runs / "r"), QuietView(), runs_dir=runs, total_frames=512, command=["test"])
    assert (second.frames, second.updates) == (512, 96) and second.episodes >= 8
    final = ckpt.load_checkpoint(runs / "r" / "checkpoints" / "last.pt")
    steps = torch.cat([w["steps"] for w in final["env_state"]["workers"]])
    assert torch.equal(final["episode_accumulator"]["length"].to(steps.dtype), steps)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@serial
@needs_ray
def test_ray_backend_joins_a_running_cluster_at_ray_address(tmp_path: Path) -> None:
    """As a user with a cluster: a Ray head started on its own (``ray start --head``, secured with a token
    given in the environment, in its own process session, stopped through its process group), then
    ``reservoir-rl train CONFIG --set train.collector.ray_address=HOST:PORT`` with the same token. The run's
    Ray driver and its collector actor live in that cluster (their logs are in the head's folder), and the
    cluster outlives the run. (One worker, 128 frames: the connection is what is tested here; the local
    instance above tests two workers and a resume.)"""
    import secrets
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    port = _free_port()
    head_dir = Path(tempfile.mkdtemp(prefix="rrl-ray-", dir="/tmp"))  # short: Ray's socket paths have a limit
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "HOME": str(tmp_path)}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}", "--num-cpus=2",
         "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={head_dir}", "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(head_dir.glob("session_*/logs/raylet.out")):
            assert head.poll() is None, head.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the Ray head did not start within 120 s"
            time.sleep(0.2)
        config = write_config(tmp_path, train={"collector": {"backend": "ray", "workers": 1}, "total_frames": 128},
                              logging={"baseline_levels": False})
        run = subprocess.run(
            [sys.executable, "-m", "reservoir_rl", "train", str(config), "--runs-dir", str(tmp_path / "runs"),
             "--name", "cluster", "--set", f"train.collector.ray_address=127.0.0.1:{port}", "--quiet"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
        last = ckpt.load_checkpoint(tmp_path / "runs" / "cluster" / "checkpoints" / "last.pt")
        assert last["counters"]["frames"] == 128 and last["config"]["train"]["collector"]["ray_address"] == \
            f"127.0.0.1:{port}"
        logs = [path.name for path in head_dir.glob("session_*/logs/*")]
        assert any(name.startswith("python-core-driver") for name in logs), sorted(logs)
        assert any(name.startswith("python-core-worker") for name in logs), sorted(logs)  # the collector actor
        assert head.poll() is None  # the run only disconnected: the cluster is still up
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head and every process it started: its own session
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:  # `ray start --block` outlives SIGTERM: its group gets SIGKILL
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(head_dir, ignore_errors=True)
