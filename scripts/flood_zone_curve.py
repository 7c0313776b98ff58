"""Print the seasonal flood-control zone sized from a config's training years, and its rule curve kept
under that zone, as YAML lines for ``env.reservoir.flood_zone_hm3`` and ``baselines.rule_curve``.

Usage: python scripts/flood_zone_curve.py CONFIG [--volume-days 10] [--window-days 30] [--points 12]
       [--min-space-fraction 0.15] [--margin-fraction 0.05] [--rule-curve "[[0, 0.62], ...]"]

Space on each of the evenly spread days = the largest volume of inflow above the release capacity over
``volume-days`` days, among the windows starting within ``window-days`` of that day in the training years
(never less than ``min-space-fraction`` of capacity); the rule curve (default: the config's) is lowered to
stay ``margin-fraction`` of capacity below the zone (reservoir_rl.env.flood_zone).
"""

from __future__ import annotations

import argparse
import sys

import yaml

from reservoir_rl.config import load_config
from reservoir_rl.env.flood_zone import flood_zone_curve, rule_curve_below_flood_zone
from reservoir_rl.env.inflow import split_validation, split_water_years
from reservoir_rl.env.sources import load_inflow
from reservoir_rl.errors import UserError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--volume-days", type=int, default=10)
    parser.add_argument("--window-days", type=int, default=30)
    parser.add_argument("--points", type=int, default=12)
    parser.add_argument("--min-space-fraction", type=float, default=0.15)
    parser.add_argument("--margin-fraction", type=float, default=0.05)
    parser.add_argument("--rule-curve", default=None, help="YAML list [[day, fraction], ...]; default: the config's")
    args = parser.parse_args()
    try:
        config = load_config(args.config)
        record = load_inflow(config.inflow)
        train_years, _ = split_water_years(record, config.inflow.heldout_water_years)
        fit_years, _ = split_validation(record, train_years, config.inflow.validation_water_years)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    reservoir = config.env.reservoir
    zone = flood_zone_curve(
        record, fit_years, reservoir.capacity_hm3, reservoir.release_capacity_cms,
        min_space_hm3=args.min_space_fraction * reservoir.capacity_hm3,
        volume_days=args.volume_days, window_days=args.window_days, n_points=args.points,
    )
    rule = yaml.safe_load(args.rule_curve) if args.rule_curve else config.baselines.rule_curve
    rule = rule_curve_below_flood_zone(rule, zone, reservoir.capacity_hm3, args.margin_fraction)
    print(f"# {record.name}: training water years {fit_years[0]}-{fit_years[-1]}, {args.volume_days}-day volumes "
          f"above {reservoir.release_capacity_cms:g} m³/s within {args.window_days} days")
    print("flood_zone_hm3: [" + ", ".join(f"[{day}, {storage:.0f}]" for day, storage in zone) + "]")
    print("rule_curve: [" + ", ".join(f"[{day}, {fraction:.3f}]" for day, fraction in rule) + "]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
