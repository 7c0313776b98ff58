"""Use cases shared by every command: train, resume, evaluate, plot, inspect; run folders; checkpoints."""
