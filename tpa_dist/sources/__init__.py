"""Where models come from: a --models entry resolved to a folder (local, synth:PRESET, a Hub id), Hub downloads that
overlap the analysis, the headers-only inventory (`tpa-dist inspect`), and the synthetic checkpoints of `synth/`."""
