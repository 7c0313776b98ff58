"""The search space of `tune`: the shipped space applies to the shipped config, distributions sample what
they say, and every mistake in a space file is one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reservoir_rl.config import Config, load_config
from reservoir_rl.errors import ConfigError
from reservoir_rl.tuning.space import load_space, parse_space

optuna = pytest.importorskip("optuna")
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _trial():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()


def test_the_shipped_space_samples_valid_configs_of_the_shipped_configs() -> None:
    space = load_space()
    keys = {d.key for d in space.dimensions}
    assert {"train.lr", "train.batch_size", "agent.hidden_sizes", "agent.gamma", "train.target_update_period",
            "train.eps_decay_frames", "agent.n_step"} <= keys
    for name in ("base.yaml", "trenton.yaml"):
        base = load_config(CONFIGS / name)
        for _ in range(5):
            trial = _trial()
            overrides = space.overrides(trial, base)
            config = load_config(CONFIGS / name, overrides)  # the normal validation accepts it
            assert config.train.lr == pytest.approx(trial.params["train.lr"])
            assert 1.0e-4 <= config.train.lr <= 3.0e-3


def test_layers_and_fraction_become_the_config_values_they_describe() -> None:
    space = parse_space({
        "agent.hidden_sizes": {"type": "layers", "width": [48], "depth": [3, 3]},
        "train.eps_decay_frames": {"type": "fraction", "of": "train.total_frames", "low": 0.25, "high": 0.25},
        "agent.dueling": {"type": "categorical", "choices": [True]},
        "train.target_update_period": {"type": "int", "low": 7, "high": 7},
    }, "space.yaml")
    config = Config.model_validate({"train": {"total_frames": 10_000}})
    trial = _trial()
    overrides = space.overrides(trial, config)
    assert overrides == ["agent.hidden_sizes=[48, 48, 48]", "train.eps_decay_frames=2500", "agent.dueling=true",
                         "train.target_update_period=7"]
    assert set(trial.params) == {"agent.hidden_sizes.width", "agent.hidden_sizes.depth",
                                 "train.eps_decay_frames/train.total_frames", "agent.dueling",
                                 "train.target_update_period"}


def test_numbers_written_1e_4_are_read_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("train.lr: {type: float, low: 1e-4, high: 1e-3, log: true}\n")
    (dimension,) = load_space(path).dimensions
    assert (dimension.low, dimension.high, dimension.log) == (1e-4, 1e-3, True)


@pytest.mark.parametrize(
    ("space", "fragments"),
    [
        ({"train.lrr": {"type": "float", "low": 0.1, "high": 0.2}}, ["'train.lrr' is not a config key", "train.lr"]),
        ({"trian.lr": {"type": "float", "low": 0.1, "high": 0.2}}, ["'trian.lr'", "did you mean 'train'"]),
        ({"agent": {"type": "float", "low": 0.1, "high": 0.2}}, ["'agent' is a section"]),
        ({"agent.gamma": 0.99}, ["agent.gamma: expected a mapping"]),
        ({"agent.gamma": {"low": 0.9, "high": 0.99}}, ["agent.gamma.type = None", "float, int, categorical"]),
        ({"agent.gamma": {"type": "uniform", "low": 0.9, "high": 0.99}}, ["agent.gamma.type = 'uniform'"]),
        ({"agent.gamma": {"type": "float", "low": 0.9}}, ["agent.gamma: a float distribution needs high"]),
        ({"agent.gamma": {"type": "float", "low": 0.99, "high": 0.9}}, ["agent.gamma: low (0.99) is above high (0.9)"]),
        ({"train.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, ["train.lr: log: true needs low > 0"]),
        ({"agent.gamma": {"type": "float", "low": 0.9, "high": 0.99, "scale": 2}}, ["agent.gamma: unknown field 'scale'"]),
        ({"agent.gamma": {"type": "float", "low": "high", "high": 0.99}}, ["agent.gamma.low = 'high': expected a number"]),
        ({"agent.n_step": {"type": "int", "low": 1.5, "high": 3}}, ["agent.n_step.low = 1.5: expected an integer"]),
        ({"train.batch_size": {"type": "categorical", "choices": []}}, ["train.batch_size.choices: expected a non-empty list"]),
        ({"agent.hidden_sizes": {"type": "layers", "width": [0, 64], "depth": [1, 2]}}, ["agent.hidden_sizes.width = [0, 64]"]),
        ({"agent.hidden_sizes": {"type": "layers", "width": [64], "depth": 2}}, ["agent.hidden_sizes.depth = 2: expected [low, high]"]),
        ({"train.eps_decay_frames": {"type": "fraction", "of": "train.total_frame", "low": 0.1, "high": 0.5}},
         ["train.eps_decay_frames.of", "'train.total_frame' is not a config key"]),
        ({"train.total_frames": {"type": "int", "low": 1000, "high": 2000},
          "train.eps_decay_frames": {"type": "fraction", "of": "train.total_frames", "low": 0.1, "high": 0.5}},
         ["train.eps_decay_frames.of = 'train.total_frames': that key is itself in the space"]),
        ([], ["expected a mapping of config keys to distributions"]),
    ],
)
def test_a_bad_space_file_is_one_line_naming_the_key(tmp_path: Path, space: object, fragments: list[str]) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(ConfigError) as error:
        load_space(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_missing_or_unreadable_space_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="search space file not found"):
        load_space(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train.lr: {type: float, low: [\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_space(broken)


def test_a_fraction_of_a_key_that_is_no_number_is_one_line() -> None:
    space = parse_space({"train.eps_decay_frames": {"type": "fraction", "of": "agent.activation", "low": 0.1,
                                                    "high": 0.5}}, "space.yaml")
    with pytest.raises(ConfigError, match=r"train.eps_decay_frames: a fraction of 'agent.activation' needs a number"):
        space.overrides(_trial(), Config())
