"""`ReservoirLogger` events read back with TensorBoard's own `EventAccumulator`: every group of a training
run is present with real values (schedules, buffer fill, physically possible storages)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from tensorboard.plugins.hparams import plugin_data_pb2

from reservoir_rl.monitor.live import QuietView
from reservoir_rl.monitor.logger import ReservoirLogger, flatten
from reservoir_rl.runs import checkpoint as ckpt
from reservoir_rl.commands import train as service
from tiny_training import TINY_CONFIG, read_events, write_config

TOTAL_FRAMES = 768
LOG_EVERY = 128
DEAD_HM3, CAPACITY_HM3, HORIZON_DAYS = 150.0, 1500.0, 60  # the default reservoir, TINY_CONFIG's horizon


@pytest.fixture(scope="module")
def run_events(tmp_path_factory):
    root = tmp_path_factory.mktemp("logged")
    config = write_config(
        root,
        train={"total_frames": TOTAL_FRAMES, "eval_every_frames": 384, "lr_end": 5e-4, "lr_decay_frames": 512},
        logging={"figure_every_frames": 768},
    )
    summary = service.train(config, [], QuietView(), root / "runs")
    return summary, read_events(summary.run_dir / "tensorboard")


def values(events, tag: str) -> dict[int, float]:
    return {event.step: event.value for event in events.Scalars(tag)}


def test_every_group_is_present(run_events) -> None:
    _summary, events = run_events
    tags = events.Tags()
    expected_scalars = {
        "train/loss", "train/epsilon", "train/learning_rate", "train/grad_norm", "train/buffer_size",
        "train/frames_per_second",
        "episode/return_mean", "episode/return_min", "episode/return_max", "episode/length", "episode/success_rate",
        "reservoir/storage_mean_hm3", "reservoir/storage_min_hm3", "reservoir/storage_max_hm3", "reservoir/energy_gwh",
        "reservoir/spill_hm3", "reservoir/flood_zone_days", "reservoir/env_flow_deficit_days",
        "reservoir/supply_deficit_hm3",
        "agent/q_mean", "agent/q_max", "agent/q_min", "agent/td_error",
        "eval/return", "eval/energy_gwh", "eval/spill_hm3", "eval/flood_zone_days", "eval/storage_min_hm3",
        "eval/success",
    }
    assert expected_scalars <= set(tags["scalars"]), expected_scalars - set(tags["scalars"])
    assert {"agent/q_values", "agent/actions"} <= set(tags["histograms"])
    assert {"figures/trajectory", "figures/action_histogram", "figures/reward_breakdown"} <= set(tags["images"])
    assert set(events.PluginTagToContent("hparams")) >= {"_hparams_/experiment", "_hparams_/session_start_info"}


def test_train_values_follow_the_schedules_and_the_buffer(run_events) -> None:
    _summary, events = run_events
    train = TINY_CONFIG["train"]
    steps = list(range(LOG_EVERY, TOTAL_FRAMES + 1, LOG_EVERY))
    epsilon = values(events, "train/epsilon")
    assert sorted(epsilon) == steps
    for step, eps in epsilon.items():
        expected = 1.0 if step < train["init_random_frames"] else 1.0 + (0.01 - 1.0) * min(step / train["eps_decay_frames"], 1.0)
        assert eps == pytest.approx(expected, abs=1e-6)
    assert list(epsilon.values()) == sorted(epsilon.values(), reverse=True)
    assert values(events, "train/buffer_size") == {s: float(min(s, train["buffer_size"])) for s in steps}
    for step, lr in values(events, "train/learning_rate").items():  # 1e-3 → 5e-4 over 512 frames
        assert lr == pytest.approx(1e-3 + (5e-4 - 1e-3) * min(step / 512, 1.0), rel=1e-6)
    loss = values(events, "train/loss")
    assert sorted(loss) == [s for s in steps if s > train["init_random_frames"]]  # no loss before updates
    assert all(v > 0 and math.isfinite(v) for v in loss.values())
    assert all(v > 0 for v in values(events, "train/grad_norm").values())
    assert all(v > 0 for v in values(events, "train/frames_per_second").values())
    assert values(events, "train/updates")[TOTAL_FRAMES] == (TOTAL_FRAMES - train["init_random_frames"]) * 0.25


def test_the_optimizer_ran_with_the_logged_learning_rate(run_events) -> None:
    summary, _events = run_events
    saved = ckpt.load_checkpoint(summary.run_dir / "checkpoints" / "last.pt")
    assert [group["lr"] for group in saved["optimizer"]["param_groups"]] == [pytest.approx(5e-4)]
    assert saved["learning_rate"] == pytest.approx(5e-4)


def test_episode_and_reservoir_values_are_physical(run_events) -> None:
    _summary, events = run_events
    low, mean, high = (values(events, f"reservoir/storage_{k}_hm3") for k in ("min", "mean", "max"))
    assert low and set(low) == set(mean) == set(high)
    for step in low:
        assert DEAD_HM3 - 1e-3 <= low[step] <= mean[step] <= high[step] <= CAPACITY_HM3 + 1e-3
    r_min, r_mean, r_max = (values(events, f"episode/return_{k}") for k in ("min", "mean", "max"))
    for step in r_mean:
        assert r_min[step] <= r_mean[step] <= r_max[step]
    assert all(1 <= v <= HORIZON_DAYS for v in values(events, "episode/length").values())
    assert all(0 <= v <= 1 for v in values(events, "episode/success_rate").values())
    assert all(v >= 0 for v in values(events, "reservoir/energy_gwh").values())
    assert all(0 <= v <= HORIZON_DAYS for v in values(events, "reservoir/flood_zone_days").values())
    q_min, q_mean, q_max = (values(events, f"agent/q_{k}") for k in ("min", "mean", "max"))
    for step in q_mean:
        assert q_min[step] <= q_mean[step] <= q_max[step]


def test_histograms_and_evaluations(run_events) -> None:
    summary, events = run_events
    actions = events.Histograms("agent/actions")
    assert [h.step for h in actions] == [256, 512, 768]
    n_actions = 11
    for histogram in actions:
        value = histogram.histogram_value
        assert value.num == TINY_CONFIG["train"]["frames_per_batch"]  # the actions of one collector batch
        assert 0 <= value.min and value.max <= n_actions - 1
    evals = values(events, "eval/return")
    assert sorted(evals) == [384, 768]
    assert evals[768] == pytest.approx(summary.last_eval["return"], rel=1e-6)
    images = events.Images("figures/trajectory")
    assert [image.step for image in images] == [768] and images[0].width > 100 and images[0].height > 100


def test_hyperparameters_are_recorded_with_the_metrics_to_show(run_events) -> None:
    _summary, events = run_events
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} >= {"eval/return", "episode/return_mean"}
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["train.total_frames"].number_value == TOTAL_FRAMES
    assert session.hparams["agent.loss"].string_value == "smooth_l1"
    assert session.hparams["agent.hidden_sizes"].string_value == "[32]"


def test_logger_skips_non_finite_values_and_purges_on_resume(tmp_path: Path) -> None:
    logger = ReservoirLogger(tmp_path)
    for step in (1, 2, 3):
        logger.scalars("train", {"loss": float(step), "nan": math.nan, "none": None}, step)
    logger.close()
    resumed = ReservoirLogger(tmp_path, purge_step=2)  # the checkpoint was at step 1
    resumed.scalars("train", {"loss": 20.0}, 2)
    resumed.close()
    events = read_events(tmp_path)
    assert set(events.Tags()["scalars"]) == {"train/loss"}
    assert values(events, "train/loss") == {1: 1.0, 2: 20.0}


def test_logger_histograms_figures_and_flatten(tmp_path: Path) -> None:
    logger = ReservoirLogger(tmp_path)
    logger.histogram("agent/actions", np.array([0, 1, 1, 2]), 5, bins=np.arange(4) - 0.5)
    logger.histogram("agent/empty", np.array([]), 5)  # nothing to show: nothing written
    figure = Figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    logger.figure("figures/line", figure, 5)
    logger.close()
    events = read_events(tmp_path)
    [histogram] = events.Histograms("agent/actions")
    assert (histogram.step, histogram.histogram_value.num, histogram.histogram_value.sum) == (5, 4, 4.0)
    assert "agent/empty" not in events.Tags()["histograms"]
    assert [image.step for image in events.Images("figures/line")] == [5]
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}


def test_a_resumed_logger_file_is_read_after_the_file_it_continues(tmp_path: Path) -> None:
    """Event files are read in name order; names start with the creation second, so a logger opened
    right after another one still gets a later name (and its purge applies to the earlier file)."""
    first = ReservoirLogger(tmp_path)
    first.scalars("train", {"loss": 1.0}, 10)
    first.close()
    second = ReservoirLogger(tmp_path, purge_step=5)
    second.scalars("train", {"loss": 2.0}, 5)
    second.close()
    names = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert len(names) == 2 and int(names[0].split(".")[3]) < int(names[1].split(".")[3])
    assert values(read_events(tmp_path), "train/loss") == {5: 2.0}
