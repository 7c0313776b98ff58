"""Tests of reservoir_rl.config: the schema, YAML loading, ``--set`` overrides and one-line errors.

Every user mistake must give one `ConfigError` line that names the file (or ``--set``), the dotted key
and the bad value.
"""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from reservoir_rl.config import (
    Config,
    apply_overrides,
    check_scale_range,
    check_seed,
    check_total_frames,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    parse_override,
    read_yaml,
)
from reservoir_rl.errors import ConfigError, UserError

BASE_YAML = Path(__file__).resolve().parents[1] / "configs" / "base.yaml"


def config_error(raw, source: str = "run.yaml") -> str:
    """The message of the ConfigError that validating ``raw`` raises; checks it is one line."""
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, source)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{source}: ")
    assert isinstance(info.value, UserError)
    return message


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ valid input


def test_empty_input_gives_the_defaults():
    assert config_from_dict({}) == Config()
    assert config_from_dict(None) == Config()
    assert Config().env.reservoir.capacity_hm3 == 1500.0


def test_bundled_base_config_is_valid():
    config = load_config(BASE_YAML)
    assert config.inflow.source == "bundled"
    assert config.env.horizon_days >= 1


def test_dump_and_load_round_trip(tmp_path):
    config = config_from_dict({"env": {"horizon_days": 100, "initial_storage_fraction": [0.5, 0.6]},
                               "agent": {"hidden_sizes": [32, 16]}, "train": {"lr": 3e-4, "lr_end": 1e-5}})
    path = write(tmp_path, dump_config(config))
    assert load_config(path) == config
    assert config_to_dict(config)["env"]["initial_storage_fraction"] == [0.5, 0.6]  # plain lists for YAML


def test_yaml_reads_exponent_floats(tmp_path):
    """``1e-3`` (no dot) is a float in YAML 1.2; PyYAML alone would read a string."""
    path = write(tmp_path, "train:\n  lr: 1e-3\n  total_frames: 2e5\n  lr_end: 5E-5\nagent:\n  gamma: .99\n")
    config = load_config(path)
    assert config.train.lr == 1e-3 and isinstance(config.train.lr, float)
    assert config.train.total_frames == 200_000 and isinstance(config.train.total_frames, int)
    assert config.train.lr_end == 5e-5
    assert config.agent.gamma == 0.99


# ------------------------------------------------------------------ unknown keys, wrong types, out of range


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"envv": {}}, "unknown key 'envv' (= {}); did you mean 'env'?"),
        ({"env": {"horizon_day": 10}}, "unknown key 'env.horizon_day' (= 10); did you mean 'horizon_days'?"),
        ({"env": {"reservoir": {"capacity": 900}}}, "unknown key 'env.reservoir.capacity' (= 900); did you mean 'capacity_hm3'?"),
        ({"train": {"zzz": "q"}}, "unknown key 'train.zzz' (= 'q')"),
    ],
)
def test_unknown_keys(raw, expected):
    assert config_error(raw) == f"run.yaml: {expected}"


@pytest.mark.parametrize(
    "raw, start",
    [
        ({"env": {"horizon_days": "abc"}}, "env.horizon_days = 'abc': Input should be a valid integer"),
        ({"env": {"horizon_days": 3.5}}, "env.horizon_days = 3.5: Input should be a valid integer"),
        ({"train": {"lr": "fast"}}, "train.lr = 'fast': Input should be a valid number"),
        ({"train": {"total_frames": True}}, "train.total_frames = True: expected a number, got a boolean (true)"),
        ({"env": {"reservoir": {"efficiency": False}}}, "env.reservoir.efficiency = False: expected a number"),
        ({"env": {"terminate_on_failure": "maybe"}}, "env.terminate_on_failure = 'maybe': Input should be a valid boolean"),
        ({"agent": {"hidden_sizes": "64"}}, "agent.hidden_sizes = '64': Input should be a valid list"),
        ({"agent": {"hidden_sizes": [64, "x"]}}, "agent.hidden_sizes.1 = 'x': Input should be a valid integer"),
        ({"train": {"device": "gpu"}}, "train.device = 'gpu': Input should be 'cpu' or 'cuda'"),
        ({"env": {"extra_features": ["bogus"]}}, "env.extra_features.0 = 'bogus': Input should be"),
        ({"env": "notamapping"}, "env = 'notamapping': expected a section (a mapping of keys)"),
        ({"env": {"reservoir": [1, 2]}}, "env.reservoir = [1, 2]: expected a section"),
        ({"env": {"horizon_days": {"x": 1}}}, "env.horizon_days = {'x': 1}: Input should be a valid integer"),
        ({"inflow": {"heldout_water_years": True}}, "inflow.heldout_water_years = True: expected a number"),
    ],
)
def test_wrong_types_name_the_key_and_the_value(raw, start):
    assert config_error(raw).startswith(f"run.yaml: {start}")


@pytest.mark.parametrize(
    "raw, start",
    [
        ({"env": {"horizon_days": 0}}, "env.horizon_days = 0: Input should be greater than or equal to 1"),
        ({"env": {"reservoir": {"capacity_hm3": -5}}}, "env.reservoir.capacity_hm3 = -5: Input should be greater than 0"),
        ({"env": {"reservoir": {"efficiency": 1.5}}}, "env.reservoir.efficiency = 1.5: Input should be less than or equal to 1"),
        ({"env": {"forecast": {"lead_days": 61}}}, "env.forecast.lead_days = 61: Input should be less than or equal to 60"),
        ({"env": {"n_release_levels": 1}}, "env.n_release_levels = 1: Input should be greater than or equal to 2"),
        ({"agent": {"gamma": 0}}, "agent.gamma = 0: Input should be greater than 0"),
        ({"train": {"eps_start": 2}}, "train.eps_start = 2: Input should be less than or equal to 1"),
        ({"baselines": {"dp_storage_levels": 5}}, "baselines.dp_storage_levels = 5: Input should be greater than or equal to 10"),
        ({"inflow": {"train_inflow_scale": [2, 1]}}, "inflow: train_inflow_scale must be [low, high] with 0 < low <= high"),
        ({"inflow": {"train_inflow_scale": [0, 1]}}, "inflow: train_inflow_scale must be [low, high] with 0 < low <= high"),
        ({"inflow": {"train_flood_scale": [0.9, 1.5]}}, "inflow: train_flood_scale must be [low, high] with 1 <= low <= high"),
        ({"inflow": {"train_flood_scale": [1.5, 1.2]}}, "inflow: train_flood_scale must be [low, high] with 1 <= low <= high"),
        ({"inflow": {"flood_threshold_cms": 0}}, "inflow.flood_threshold_cms = 0: Input should be greater than 0"),
        ({"inflow": {"validation_water_years": -2}}, "inflow: validation_water_years must be >= 0, got -2"),
        ({"inflow": {"synthetic": {"mean_inflow_cms": float("inf")}}},
         "inflow.synthetic.mean_inflow_cms = inf: Input should be a finite number"),
        ({"inflow": {"synthetic": {"cv": float("nan")}}}, "inflow.synthetic.cv = nan: Input should be a finite number"),
        ({"baselines": {"sdp": {"inflow_classes": 0}}},
         "baselines.sdp.inflow_classes = 0: Input should be greater than or equal to 1"),
        ({"baselines": {"sdp": {"period_days": 366}}},
         "baselines.sdp.period_days = 366: Input should be less than or equal to 365"),
        ({"baselines": {"sdp": {"discount": 1.0}}}, "baselines.sdp.discount = 1.0: Input should be less than 1"),
        ({"baselines": {"sdp": {"tolerance": 0}}}, "baselines.sdp.tolerance = 0: Input should be greater than 0"),
        ({"agent": {"distributional_quantiles": 201}},
         "agent.distributional_quantiles = 201: Input should be less than or equal to 200"),
        ({"agent": {"distributional_quantiles": -1}},
         "agent.distributional_quantiles = -1: Input should be greater than or equal to 0"),
        ({"agent": {"distributional_quantiles": 1}},
         "agent: distributional_quantiles must be 0 (off) or 2 … 200 quantiles, got 1"),
        ({"agent": {"distributional_quantiles": 8, "loss": "l2"}},
         "agent: distributional_quantiles trains with the quantile Huber loss (κ = 1)"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_value(raw, start):
    assert config_error(raw).startswith(f"run.yaml: {start}")


def test_several_errors_report_the_first_and_count_the_rest():
    message = config_error({"env": {"horizon_days": 0, "n_release_levels": 1}, "train": {"lr": -1}})
    assert message.startswith("run.yaml: env.n_release_levels = 1") or message.startswith("run.yaml: env.horizon_days = 0")
    assert message.endswith("(and 2 more errors)")
    assert config_error({"env": {"horizon_days": 0}, "train": {"lr": -1}}).endswith("(and 1 more error)")


def test_top_level_must_be_a_mapping():
    assert config_error([1, 2]) == "run.yaml: the top level must be a mapping of sections, got list"


def test_assignment_is_validated_too():
    config = Config()
    with pytest.raises(pydantic.ValidationError):
        config.train.total_frames = True
    with pytest.raises(pydantic.ValidationError):
        config.env.horizon_days = 0


# ------------------------------------------------------------------ cross-key checks


@pytest.mark.parametrize(
    "reservoir, low_key, high_key",
    [
        ({"dead_storage_hm3": 400.0}, "dead_storage_hm3 (400.0)", "min_operating_hm3 (300.0)"),
        ({"min_operating_hm3": 1300.0}, "min_operating_hm3 (1300.0)", "flood_zone_hm3 (1275.0)"),
        ({"flood_zone_hm3": 1600.0}, "flood_zone_hm3 (1600.0)", "capacity_hm3 (1500.0)"),
        ({"capacity_hm3": 1000.0}, "flood_zone_hm3 (1275.0)", "capacity_hm3 (1000.0)"),
        ({"min_operating_hm3": 150.0}, "dead_storage_hm3 (150.0)", "min_operating_hm3 (150.0)"),
    ],
)
def test_zones_must_be_ordered(reservoir, low_key, high_key):
    message = config_error({"env": {"reservoir": reservoir}})
    assert message == f"run.yaml: env.reservoir: zones must be ordered: {low_key} must be below {high_key}"


@pytest.mark.parametrize(
    "curve, message",
    [
        ([[0, 900.0], [180, 1600.0]], "zones must be ordered: flood_zone_hm3 (1600.0) must be below capacity_hm3 (1500.0)"),
        ([[0, 900.0], [180, 250.0]], "zones must be ordered: min_operating_hm3 (300.0) must be below flood_zone_hm3 (250.0)"),
        ([[90, 900.0], [30, 1000.0]], "flood_zone_hm3 curve days must be strictly increasing within 0..365"),
        ([[0, 900.0], [400, 1000.0]], "flood_zone_hm3 curve days must be strictly increasing within 0..365"),
        ([], "flood_zone_hm3 curve days must be strictly increasing within 0..365"),
    ],
)
def test_seasonal_flood_zone_checks(curve, message):
    assert config_error({"env": {"reservoir": {"flood_zone_hm3": curve}}}) == f"run.yaml: env.reservoir: {message}"


def test_seasonal_flood_zone_is_read_as_a_curve_and_a_number_stays_a_number():
    curve = config_from_dict({"env": {"reservoir": {"flood_zone_hm3": [[0, 900], [180, 1200.5]]}}})
    assert curve.env.reservoir.flood_zone_hm3 == [(0, 900.0), (180, 1200.5)]
    assert config_from_dict({}).env.reservoir.flood_zone_hm3 == 1275.0


def test_other_cross_key_checks():
    assert "turbine_capacity_cms (500.0) exceeds release_capacity_cms (400.0)" in config_error(
        {"env": {"reservoir": {"turbine_capacity_cms": 500.0}}})
    assert "level_table needs at least two rows" in config_error(
        {"env": {"reservoir": {"level_table": [[600, 40], [300, 20]]}}})
    assert config_error({"env": {"initial_storage_fraction": [0.05, 0.5]}}).startswith(
        "run.yaml: env: initial_storage_fraction [0.05, 0.5] must satisfy dead fraction (0.100) <= low")
    assert config_error({"inflow": {"source": "csv"}}) == "run.yaml: inflow: source 'csv' needs inflow.path"
    assert "hedging_end_fraction must be below hedging_start_fraction" in config_error(
        {"baselines": {"hedging_start_fraction": 0.3, "hedging_end_fraction": 0.5}})
    assert "rule_curve days must be strictly increasing" in config_error(
        {"baselines": {"rule_curve": [[100, 0.5], [50, 0.6]]}})


def test_frames_per_batch_must_split_evenly_over_the_envs():
    assert config_error({"train": {"n_envs": 8, "frames_per_batch": 60}}) == (
        "run.yaml: train: frames_per_batch (60) must be a multiple of n_envs (8): "
        "every batch holds the same number of days of each env"
    )
    assert config_from_dict({"train": {"n_envs": 8, "frames_per_batch": 24}}).train.frames_per_batch == 24


@pytest.mark.parametrize(
    "bounds, at_least_one, ok",
    [((0.5, 2.0), False, True), ((0.0, 1.0), False, False), ((2.0, 1.0), False, False),
     ((1.0, 1.5), True, True), ((0.9, 1.5), True, False), ((1.6, 1.5), True, False)],
)
def test_scale_range_rule_of_the_training_inflow_factors(bounds, at_least_one, ok):
    if ok:
        assert check_scale_range("x", list(bounds), at_least_one) == bounds
    else:
        relation = "1 <= low <= high" if at_least_one else "0 < low <= high"
        with pytest.raises(ValueError) as info:
            check_scale_range("x", bounds, at_least_one)
        assert str(info.value) == f"x must be [low, high] with {relation}, got [{bounds[0]}, {bounds[1]}]"


def test_total_frames_option_follows_the_rule_of_train_total_frames():
    assert check_total_frames(1) == 1
    for value in (0, -64):
        with pytest.raises(ConfigError) as info:
            check_total_frames(value)
        assert str(info.value) == f"--total-frames {value} (train.total_frames): Input should be greater than or equal to 1"


# ------------------------------------------------------------------ --set overrides


@pytest.mark.parametrize(
    "override, path, value",
    [
        ("env.horizon_days=200", ["env", "horizon_days"], 200),
        ("train.lr=0.0005", ["train", "lr"], 0.0005),
        ("train.lr=1e-3", ["train", "lr"], 1e-3),
        ("train.total_frames=2e5", ["train", "total_frames"], 2e5),
        ("agent.hidden_sizes=[64, 32]", ["agent", "hidden_sizes"], [64, 32]),
        ("env.terminate_on_failure=false", ["env", "terminate_on_failure"], False),
        ("agent.dueling=true", ["agent", "dueling"], True),
        ("train.lr_end=null", ["train", "lr_end"], None),
        ("inflow.source=synthetic", ["inflow", "source"], "synthetic"),
        (" env.reservoir.capacity_hm3 = 2000", ["env", "reservoir", "capacity_hm3"], 2000),
        ("inflow.path=data/flows=2020.csv", ["inflow", "path"], "data/flows=2020.csv"),
    ],
)
def test_parse_override_types_values(override, path, value):
    parsed_path, parsed = parse_override(override)
    assert parsed_path == path
    assert parsed == value and type(parsed) is type(value)


def test_overrides_convert_types_and_validate(tmp_path):
    path = write(tmp_path, "env:\n  horizon_days: 365\ntrain:\n  lr: 0.001\n")
    config = load_config(path, [
        "env.horizon_days=120",
        "train.lr=3e-4",
        "train.total_frames=1e5",
        "agent.hidden_sizes=[64, 64, 32]",
        "env.terminate_on_failure=false",
        "env.reservoir.capacity_hm3=2000",  # nested section absent from the file
        "env.initial_storage_fraction=[0.5, 0.9]",
        "inflow.heldout_water_years=[2001, 2002]",
        "train.seed=7",
        "train.seed=8",  # repeatable: the last one wins
    ])
    assert config.env.horizon_days == 120
    assert config.train.lr == pytest.approx(3e-4) and isinstance(config.train.lr, float)
    assert config.train.total_frames == 100_000 and isinstance(config.train.total_frames, int)
    assert config.agent.hidden_sizes == [64, 64, 32]
    assert config.env.terminate_on_failure is False
    assert config.env.reservoir.capacity_hm3 == 2000.0
    assert config.env.reservoir.dead_storage_hm3 == 150.0  # the rest of the section keeps its defaults
    assert config.env.initial_storage_fraction == (0.5, 0.9)
    assert config.inflow.heldout_water_years == [2001, 2002]
    assert config.train.seed == 8


def test_overrides_leave_the_raw_mapping_untouched():
    raw = {"env": {"reservoir": {"capacity_hm3": 1500.0}}}
    result = apply_overrides(raw, ["env.reservoir.capacity_hm3=900", "train.lr=0.1"])
    assert raw == {"env": {"reservoir": {"capacity_hm3": 1500.0}}}
    assert result == {"env": {"reservoir": {"capacity_hm3": 900}}, "train": {"lr": 0.1}}


@pytest.mark.parametrize(
    "override, expected",
    [
        ("env.horizon_days", "--set 'env.horizon_days': expected section.key=value"),
        ("=5", "--set '=5': empty key"),
        ("env..horizon_days=5", "--set 'env..horizon_days=5': empty key"),
        ("env.horizon_days.x=1", "--set 'env.horizon_days.x=1': 'env.horizon_days' is not a section"),
    ],
)
def test_bad_override_syntax(tmp_path, override, expected):
    path = write(tmp_path, "env:\n  horizon_days: 365\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, [override])
    assert str(info.value) == expected


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.lrr=0.1", "unknown key 'train.lrr' (= 0.1); did you mean 'lr'?"),
        ("env.horizon_days=abc", "env.horizon_days = 'abc': Input should be a valid integer"),
        ("env.horizon_days=0", "env.horizon_days = 0: Input should be greater than or equal to 1"),
        ("train.lr=", "train.lr = None: Input should be a valid number"),
        ("train.lr=[1", "train.lr = '[1': Input should be a valid number"),
        ("env.reservoir.flood_zone_hm3=1600", "env.reservoir: zones must be ordered: flood_zone_hm3 (1600"),
    ],
)
def test_bad_override_values_name_the_override_key_and_value(tmp_path, override, expected):
    path = write(tmp_path, "env:\n  horizon_days: 365\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, [override])
    assert str(info.value).startswith(f"--set {override!r}: {expected}")  # the --set, not the file, is wrong
    assert "\n" not in str(info.value)


def test_errors_are_attributed_to_the_file_or_the_override_that_caused_them(tmp_path):
    bad_file = write(tmp_path, "train:\n  lr: -1\n  n_envs: 7\n", "bad.yaml")
    with pytest.raises(ConfigError, match=r"^.*bad\.yaml: train\.lr = -1"):
        load_config(bad_file, ["env.horizon_days=30"])  # an unrelated override: the file is at fault
    with pytest.raises(ConfigError, match=r"bad\.yaml: train: frames_per_batch \(64\) must be a multiple of n_envs \(7\)"):
        load_config(bad_file, ["train.lr=0.1", "train.batch_size=16"])  # the n_envs rule names its file
    good = write(tmp_path, "train:\n  n_envs: 8\n", "good.yaml")
    with pytest.raises(ConfigError, match=r"^--set 'train\.n_envs=7': train: frames_per_batch"):
        load_config(good, ["train.n_envs=7"])  # a rule across keys broken by an override names the override
    with pytest.raises(ConfigError, match=r"^--set 'train\.lr=0': train\.lr = 0"):
        load_config(good, ["train.lr=1", "train.lr=0"])  # the override that won


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.lr=.inf", "train.lr = inf: inf is not a finite number"),
        ("train.lr_end=.nan", "train.lr_end = nan"),
        ("env.reservoir.capacity_hm3=1.0e39", "env.reservoir.capacity_hm3 = 1e+39: 1e+39 is beyond float32"),
        ("env.reservoir.max_head_m=-.inf", "env.reservoir.max_head_m = -inf"),
        ("inflow.flood_threshold_cms=1e300", "beyond float32"),
        ("env.reservoir.flood_zone_hm3=[[0, 1000.0], [200, .inf]]", "inf is not a finite number"),
        ("env.reservoir.level_table=[[0.0, 1.0], [1500.0, 4e38]]", "4e+38 is beyond float32"),
        ("inflow.synthetic.mean_inflow_cms=1e39", "beyond float32"),
    ],
)
def test_non_finite_and_float32_overflowing_values_are_refused(tmp_path, override, fragment):
    """Every float of every section must be finite in float32 (the env and the networks compute in it):
    `.inf` trained to NaN weights, and capacity_hm3 = 1.0e39 gave a NaN return."""
    path = write(tmp_path, "train:\n  lr: 0.001\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, [override])
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(f"--set {override!r}: ")


def test_the_largest_float32_value_is_accepted():
    config = config_from_dict({"env": {"reservoir": {"spillway_capacity_cms": 3.0e38}}})
    assert config.env.reservoir.spillway_capacity_cms == 3.0e38


def test_duplicate_yaml_keys_are_refused_with_their_line(tmp_path):
    """A second `train:` silently replaced the first."""
    path = write(tmp_path, "train:\n  lr: 0.1\nenv:\n  horizon_days: 30\ntrain:\n  seed: 3\n")
    with pytest.raises(ConfigError, match=r"line 5, column 1: .*duplicate key 'train' \(first given on line 1\)"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"duplicate key 'lr'"):
        load_config(write(tmp_path, "train: {lr: 0.1, seed: 2, lr: 0.2}\n", "flow.yaml"))
    merged = write(tmp_path, "x: &defaults {lr: 0.5}\ntrain:\n  <<: *defaults\n  lr: 0.2\n", "merge.yaml")
    assert read_yaml(merged)["train"] == {"lr": 0.2}  # a merge key may still be overridden


@pytest.mark.parametrize("seed", [-1, -2_000_000, 2**63, 10**23])
def test_seeds_outside_the_one_range_are_refused(seed):
    assert "train.seed" in config_error({"train": {"seed": seed}})
    assert "inflow.synthetic.seed" in config_error({"inflow": {"synthetic": {"seed": seed}}})
    with pytest.raises(ConfigError, match=rf"^--seed {seed}: a seed must be a whole number with 0 <= seed < 2\*\*63$"):
        check_seed(seed)


def test_the_validation_seed_is_eval_seed_or_derived_from_the_training_seed():
    from reservoir_rl.config.train import EVAL_SEED_OFFSET

    assert config_from_dict({"train": {"seed": 4}}).train.validation_env_seed == 4 + EVAL_SEED_OFFSET
    assert config_from_dict({"train": {"seed": 4, "eval_seed": 11}}).train.validation_env_seed == 11
    assert config_from_dict({"train": {"seed": 5, "eval_seed": 11}}).train.validation_env_seed == 11
    assert config_from_dict({"train": {"eval_seed": 0}}).train.validation_env_seed == 0
    for bad in (-1, 2**63, 1.5, "x"):
        assert "train.eval_seed" in config_error({"train": {"eval_seed": bad}})


def test_seeds_at_the_ends_of_the_range_are_accepted():
    for seed in (0, 2**63 - 1):
        assert check_seed(seed) == seed
        assert config_from_dict({"train": {"seed": seed}}).train.seed == seed


# ------------------------------------------------------------------ files


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "env:\n  horizon_days: 365\n   n_release_levels: 11\ntrain: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 3, column ")
    assert "YAML syntax error" in message and "\n" not in message


def test_yaml_syntax_error_unclosed_bracket(tmp_path):
    path = write(tmp_path, "agent:\n  hidden_sizes: [64, 64\ntrain:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: YAML syntax error") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == f"{missing}: config file not found"
    with pytest.raises(ConfigError, match="is a directory, not a config file"):
        load_config(tmp_path)  # a directory is not a config file (not "not found")


def test_unreadable_and_non_mapping_files(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match=r"binary.yaml: cannot read config file \(UnicodeDecodeError\)"):
        load_config(binary)
    with pytest.raises(ConfigError, match="the top level must be a mapping of sections"):
        load_config(write(tmp_path, "- env\n- train\n", "list.yaml"))
    assert load_config(write(tmp_path, "# only a comment\n", "empty.yaml")) == Config()


def test_file_errors_name_the_file(tmp_path):
    path = write(tmp_path, yaml.safe_dump({"env": {"reservoir": {"capacity_hm3": "big"}}}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: env.reservoir.capacity_hm3 = 'big': Input should be a valid number")


def test_mpc_settings_and_their_horizon_within_the_forecast():
    assert (Config().baselines.mpc.storage_levels, Config().baselines.mpc.horizon_days) == (500, None)
    mpc = config_from_dict({"env": {"forecast": {"lead_days": 14}}, "baselines": {"mpc": {"horizon_days": 14}}})
    assert mpc.baselines.mpc.horizon_days == 14
    assert config_error({"baselines": {"mpc": {"horizon_days": 11}}}) == (
        "run.yaml: <top level>: baselines.mpc.horizon_days (11) exceeds env.forecast.lead_days (10): "
        "MPC plans only over the forecast the agent observes"
    )
    assert config_error({"baselines": {"mpc": {"horizon_days": 0}}}).startswith(
        "run.yaml: baselines.mpc.horizon_days = 0: Input should be greater than or equal to 1")
    assert config_error({"baselines": {"mpc": {"storage_levels": 5}}}).startswith(
        "run.yaml: baselines.mpc.storage_levels = 5: Input should be greater than or equal to 10")
    assert "did you mean 'storage_levels'" in config_error({"baselines": {"mpc": {"storage_level": 300}}})
