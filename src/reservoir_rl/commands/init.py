"""Use cases `init` (a config sized to a user's daily record) and `flood-zone` (a config's seasonal
flood-control zone and rule curve remade from its training years)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from reservoir_rl.baselines.firm_yield import training_firm_yield_hm3
from reservoir_rl.config import Config, config_from_dict, load_config
from reservoir_rl.design import sizing
from reservoir_rl.design.config_text import RecordSource, config_text, curve_text, replace_flow_value
from reservoir_rl.design.plausibility import plausibility_warnings, raise_if_strict
from reservoir_rl.design.sizing import ReservoirDesign, design_reservoir
from reservoir_rl.design.summary import RecordSummary, summarize
from reservoir_rl.env.flood_zone import flood_zone_curve, rule_curve_below_flood_zone
from reservoir_rl.env.inflow import UNITS_TO_CMS, InflowRecord, load_csv, split_validation, split_water_years
from reservoir_rl.env.rdb import is_rdb, load_rdb
from reservoir_rl.baselines.features import build_env
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import UserError
from reservoir_rl.files import write_text_atomic
from reservoir_rl.units import HM3_PER_CMS_DAY

MAX_DEFAULT_HELDOUT_YEARS = 20
# validation water years init writes: one per TRAINING_YEARS_PER_VALIDATION_YEAR training years, at most
# MAX_DEFAULT_VALIDATION_YEARS (5 of the bundled records' 59); none when that gives fewer than
# MIN_VALIDATION_YEARS (an episode of 365 days and its 10-day forecast window span two water years)
TRAINING_YEARS_PER_VALIDATION_YEAR = 6
MAX_DEFAULT_VALIDATION_YEARS = 5
MIN_VALIDATION_YEARS = 2


@dataclass
class InitResult:
    """What `init` read, sized and wrote."""

    config_path: Path
    record_format: str  # csv | rdb
    summary: RecordSummary
    design: ReservoirDesign
    firm_yield_cms: float
    warnings: list[str] = field(default_factory=list)


def default_heldout_years(n_complete: int) -> int:
    """Held-out water years when none are asked for: a quarter of the complete years, 1 … 20."""
    return max(1, min(MAX_DEFAULT_HELDOUT_YEARS, n_complete // 4))


def default_validation_years(n_training: int) -> int:
    """Validation water years init writes for ``n_training`` training years (those left after the held-out
    ones): one per `TRAINING_YEARS_PER_VALIDATION_YEAR`, at most `MAX_DEFAULT_VALIDATION_YEARS`; 0 when that
    is below `MIN_VALIDATION_YEARS`, i.e. below 12 training years (too few to spare two consecutive years,
    which one 365-day episode and its forecast window need: the in-training evaluation then runs on the
    training years). At least five sixths of the training years are always left to train on."""
    n_validation = min(MAX_DEFAULT_VALIDATION_YEARS, max(0, n_training) // TRAINING_YEARS_PER_VALIDATION_YEAR)
    return n_validation if n_validation >= MIN_VALIDATION_YEARS else 0


def read_record(
    path: str | Path, units: Optional[str] = None, date_column: Optional[str] = None,
    flow_column: Optional[str] = None,
) -> tuple[InflowRecord, str]:
    """The record of a CSV (plain or gzip) or USGS RDB file, and its format ("csv" or "rdb")."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: record file not found" if not path.exists() else f"{path}: not a file")
    if is_rdb(path):
        if units not in (None, "cfs"):
            raise UserError(f"--units {units}: a USGS RDB file's discharge (parameter 00060) is in ft³/s (cfs)")
        if date_column not in (None, "datetime"):
            raise UserError(f"--date-column {date_column}: a USGS RDB file's day is its 'datetime' column")
        return load_rdb(path, flow_column), "rdb"
    if units is not None and units not in UNITS_TO_CMS:
        raise UserError(f"--units {units!r}: choose {', '.join(UNITS_TO_CMS)}")
    return load_csv(path, date_column or "date", flow_column, units or "cms"), "csv"


def _train_span(years: list[int]) -> str:
    return f"{years[0]}–{years[-1]}" if len(years) > 1 else str(years[0])


def init(
    record_path: str | Path,
    out: Optional[str | Path] = None,
    units: Optional[str] = None,
    date_column: Optional[str] = None,
    flow_column: Optional[str] = None,
    heldout_water_years: Optional[int] = None,
    force: bool = False,
    strict: bool = False,
) -> InitResult:
    """Read a daily record, size a reservoir to its training years and write a complete config.

    Args:
        record_path: a daily CSV (plain or gzip; ``units``, ``date_column``, ``flow_column`` as in the
            ``inflow`` section) or a USGS NWIS RDB daily-value file (ft³/s, ``<ts>_00060_00003``).
        out: the config to write (default: ``<record name>.yaml`` in the working directory); an existing
            file is refused unless ``force``.
        heldout_water_years: the last N complete water years never trained on (default:
            `default_heldout_years`).
        strict: a plausibility warning is an error (nothing is written).
    """
    record_path = Path(record_path)
    record, record_format = read_record(record_path, units, date_column, flow_column)
    complete = record.complete_water_years()
    if len(complete) < 2:
        raise UserError(f"{record_path}: {len(complete)} complete water year(s) (Oct 1 – Sep 30); need at least 2")
    heldout = default_heldout_years(len(complete)) if heldout_water_years is None else heldout_water_years
    if heldout < 1:
        raise UserError(f"--heldout-water-years {heldout}: must be at least 1")
    train_years, heldout_years = split_water_years(record, heldout)
    n_validation = default_validation_years(len(train_years))
    _, validation_years = split_validation(record, train_years, n_validation)
    validation_years = validation_years if n_validation else []
    out_path = Path(out) if out is not None else Path(_stem(record_path) + ".yaml")
    if out_path.is_dir():
        raise UserError(f"--out {out_path}: is a folder, not a file")
    if out_path.exists() and not force:
        raise UserError(f"--out {out_path}: file exists; choose another name or add --force to overwrite it")

    design = design_reservoir(record, train_years)
    source = RecordSource(
        source=record_format,
        path=os.path.relpath(record_path.resolve(), out_path.resolve().parent),
        date_column=(date_column or "date") if record_format == "csv" else "date",
        flow_column=flow_column,
        units=(units or "cms") if record_format == "csv" else "cfs",
        name=f"{record_path.name} ({record.dates[0]} .. {record.dates[-1]})",
    )
    span = _train_span(train_years)
    validation = (n_validation, _train_span(validation_years) if validation_years else "")
    text = config_text(design, source, heldout, span, firm_yield_cms=0.0, validation=validation)
    config = _validated(text, out_path, record_path)
    firm_yield_cms = training_firm_yield_hm3(build_env(config, "train", inflow=record)) / HM3_PER_CMS_DAY
    text = config_text(design, source, heldout, span, firm_yield_cms=firm_yield_cms, validation=validation)
    config = _validated(text, out_path, record_path)
    warnings = plausibility_warnings(config, record)
    raise_if_strict(warnings, strict)
    _write(out_path, text)
    return InitResult(out_path, record_format, summarize(record, train_years, heldout_years, validation_years), design, firm_yield_cms,
                      warnings)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv", ".rdb", ".txt", ".tsv"):
        name = name.removesuffix(suffix)
    return name or "reservoir"


def _validated(text: str, out_path: Path, record_path: Path) -> Config:
    """The config ``text`` holds, with its record path made absolute (as `load_config` makes it)."""
    raw = yaml.safe_load(text)
    raw["inflow"]["path"] = str(record_path.resolve())
    return config_from_dict(raw, source=f"{out_path} (as init wrote it)")


def _write(path: Path, text: str) -> None:
    try:
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    except OSError as error:
        raise UserError(f"{path}: cannot write it ({error.strerror or error})") from None


@dataclass
class FloodZoneResult:
    """The flood-control zone and rule curve remade for a config, and whether its file was rewritten."""

    config_path: Path
    record_name: str
    fit_years: list[int]
    release_capacity_cms: float
    flood_zone_hm3: list[tuple[int, float]]
    rule_curve: list[tuple[int, float]]
    written: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def yaml_lines(self) -> list[str]:
        """The two YAML lines (keys and values) as the config holds them."""
        return [f"flood_zone_hm3: {curve_text(self.flood_zone_hm3)}",
                f"rule_curve: {curve_text(self.rule_curve, fraction=True)}"]


def flood_zone(
    config_path: str | Path,
    write: bool = False,
    volume_days: int = sizing.FLOOD_VOLUME_DAYS,
    window_days: int = sizing.FLOOD_WINDOW_DAYS,
    points: int = sizing.FLOOD_ZONE_POINTS,
    min_space_fraction: float = sizing.MIN_SPACE_FRACTION,
    max_space_fraction: float = sizing.MAX_SPACE_FRACTION,
    margin_fraction: float = sizing.RULE_MARGIN,
    rule_curve: Optional[list[tuple[int, float]]] = None,
) -> FloodZoneResult:
    """The seasonal flood-control zone of a config's reservoir sized on its water years that are not held out
    (validation years included, as `init` sizes the reservoir; `reservoir_rl.env.flood_zone.flood_zone_curve`), and ``rule_curve`` (default: `sizing.DEFAULT_RULE_CURVE`)
    kept ``margin_fraction`` of capacity under it; with ``write``, both replace the config file's
    ``flood_zone_hm3`` and ``rule_curve`` lines (comments and every other line kept)."""
    if volume_days < 1 or window_days < 0 or points < 1:
        raise UserError(f"--volume-days {volume_days}, --window-days {window_days}, --points {points}: need "
                        "volume days >= 1, window days >= 0, points >= 1")
    if not 0 <= min_space_fraction <= max_space_fraction <= 1 or not 0 <= margin_fraction < 1:
        raise UserError(f"--min-space-fraction {min_space_fraction}, --max-space-fraction {max_space_fraction}, "
                        f"--margin-fraction {margin_fraction}: need 0 <= min <= max <= 1 and 0 <= margin < 1")
    config_path = Path(config_path)
    config = load_config(config_path)
    record = load_inflow(config.inflow)
    # the design years: every year not held out, validation years included, as `init` sizes the reservoir (the
    # reservoir is the problem every policy is judged on, not a choice made on the validation years)
    fit_years, _ = split_water_years(record, config.inflow.heldout_water_years)
    reservoir = config.env.reservoir
    zone = flood_zone_curve(
        record, fit_years, reservoir.capacity_hm3, reservoir.release_capacity_cms,
        min_space_hm3=min_space_fraction * reservoir.capacity_hm3, volume_days=volume_days,
        window_days=window_days, n_points=points, max_space_hm3=max_space_fraction * reservoir.capacity_hm3,
    )
    rule = rule_curve_below_flood_zone(rule_curve or sizing.DEFAULT_RULE_CURVE, zone, reservoir.capacity_hm3,
                                       margin_fraction)
    result = FloodZoneResult(config_path, record.name, fit_years, reservoir.release_capacity_cms, zone, rule, write)
    if write:
        text = config_path.read_text(encoding="utf-8")
        text = replace_flow_value(text, "flood_zone_hm3", curve_text(zone), str(config_path))
        text = replace_flow_value(text, "rule_curve", curve_text(rule, fraction=True), str(config_path))
        raw = yaml.safe_load(text)
        if isinstance(raw, dict) and isinstance(raw.get("inflow"), dict) and raw["inflow"].get("path"):
            raw["inflow"]["path"] = config.inflow.path
        rewritten = config_from_dict(raw, source=f"{config_path} (rewritten)")
        result.warnings = plausibility_warnings(rewritten, record)
        _write(config_path, text)
    return result


def read_rule_curve(text: str) -> list[tuple[int, float]]:
    """``--rule-curve "[[0, 0.62], ...]"`` as [(day, fraction), ...]; a bad value is one line."""
    try:
        value = yaml.safe_load(text)
        curve = [(int(day), float(fraction)) for day, fraction in value]
    except (yaml.YAMLError, TypeError, ValueError):
        raise UserError(f"--rule-curve {text!r}: expected [[day_of_year, storage fraction], ...]") from None
    if not curve:
        raise UserError("--rule-curve: needs at least one [day_of_year, storage fraction] point")
    return curve

