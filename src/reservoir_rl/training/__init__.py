"""Training: build the env and DQN pieces from a config (build), collect (collection), the loop (trainer), what it logs (statistics)."""
