"""Reservoir design from a river's record: sizing rules, the record's summary, the config `init` writes, plausibility warnings."""
