"""reservoir-rl: DQN agents for the daily release decision of a reservoir, on real river records."""

__version__ = "0.1.0"
