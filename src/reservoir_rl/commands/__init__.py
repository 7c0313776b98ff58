"""The use cases every interface calls: train / resume (train), several seeds (seeds), evaluate, plot, inspect."""
