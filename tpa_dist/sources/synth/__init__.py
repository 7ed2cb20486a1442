"""Synthetic checkpoints with real families' names, shapes, dtypes, sharding, config.json and tokenizers: the
presets, the writer (trained-like spectra, planted ranks), derived fine-tunes and training trajectories."""
