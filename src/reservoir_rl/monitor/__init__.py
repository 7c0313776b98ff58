"""What the user sees of a run: TensorBoard logging, the terminal progress view, figures."""
