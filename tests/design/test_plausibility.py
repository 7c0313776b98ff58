"""Every plausibility warning: it fires on the design it is about and stays silent on a fitting one."""

from __future__ import annotations

import pytest

from reservoir_rl.config import Config
from reservoir_rl.design.plausibility import PlausibilityError, plausibility_warnings, raise_if_strict
from reservoir_rl.env.inflow import InflowRecord, load_bundled


@pytest.fixture(scope="module")
def montague() -> InflowRecord:
    return load_bundled("montague")


def _config(**reservoir) -> Config:
    config = Config()
    return config.model_copy(update={"env": config.env.model_copy(
        update={"reservoir": config.env.reservoir.model_copy(update=reservoir)})})


def test_the_default_design_on_its_river_raises_none(montague: InflowRecord) -> None:
    assert plausibility_warnings(Config(), montague) == []


def test_a_reservoir_far_too_large_for_its_river(montague: InflowRecord) -> None:
    small_river = InflowRecord("small", montague.dates, montague.inflow_cms * (4.0 / 169.0))
    warnings = plausibility_warnings(Config(), small_river)
    assert any(w.startswith("active storage 1,350 hm³ is") and "years of the training years' mean inflow" in w
               for w in warnings), warnings
    # and SOP's target falls below the first release level there
    assert any("below the first release level" in w for w in warnings)


def test_a_dam_that_overtops(montague: InflowRecord) -> None:
    warnings = plausibility_warnings(_config(spillway_capacity_cms=500.0), montague)
    assert any("release + spillway capacity (900 m³/s) is below the training years' largest daily inflow "
               "(5,295 m³/s on 1955-08-19)" in w and "overtop the dam" in w for w in warnings), warnings


def test_an_environmental_flow_above_the_median(montague: InflowRecord) -> None:
    warnings = plausibility_warnings(_config(env_flow_cms=120.0), montague)
    assert any(w.startswith("environmental flow 120 m³/s is above the training years' median flow (97") for w in warnings)


def test_one_absurd_day(montague: InflowRecord) -> None:
    flow = montague.inflow_cms.copy()
    flow[20000] = 1e12
    warnings = plausibility_warnings(Config(), InflowRecord("m", montague.dates, flow))
    outlier = [w for w in warnings if "far above the rest of the record" in w]
    # the training years' mean (1946 … 2004), what scales the observation, not the whole record's
    assert len(outlier) == 1 and "1e+12 m³/s on 1999-10-05" in outlier[0] and "from 160.4 to 4.64e+07" in outlier[0]
    flow = montague.inflow_cms.copy()
    flow[-100] = 1e12  # in a held-out year: still a suspect record, but nothing the agent or baselines see
    warnings = plausibility_warnings(Config(), InflowRecord("m", montague.dates, flow))
    outlier = [w for w in warnings if "far above the rest of the record" in w]
    assert len(outlier) == 1 and "they lie outside the training years" in outlier[0] and "from " not in outlier[0]


def test_too_few_training_years(montague: InflowRecord) -> None:
    config = Config().model_copy(update={"inflow": Config().inflow.model_copy(update={"heldout_water_years": 72})})
    assert any(w.startswith("only 7 training water year(s)") for w in plausibility_warnings(config, montague))


def test_strict_makes_the_first_warning_an_error() -> None:
    seen: list[str] = []
    raise_if_strict(["a", "b"], False, seen.append)
    assert seen == ["a", "b"]
    with pytest.raises(PlausibilityError, match=r"^a \(and 1 more\) \[--strict\]$"):
        raise_if_strict(["a", "b"], True, seen.append)
    raise_if_strict([], True)
