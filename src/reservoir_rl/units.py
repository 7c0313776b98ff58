"""Unit constants shared by every layer (the project's units: volumes hm³, flows m³/s, one step = one day)."""

from __future__ import annotations

HM3_PER_CMS_DAY = 0.0864
"""hm³ carried by 1 m³/s flowing for one day (86,400 s × 1 m³/s = 86,400 m³ = 0.0864 hm³)."""

DAYS_PER_YEAR = 365.0
"""Days in the model's year: the period of every day-of-year curve (seasonal flood zone, rule curve,
evaporation, demand, the sin / cos day features)."""
