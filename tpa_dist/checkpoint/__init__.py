"""Checkpoints as stored: safetensors headers (validated, never trusted), dtypes and their decoding, the names of
tensors read as layers and block types, a model folder's catalog (shards, index, config), quantized formats, the
streaming reader of one matrix's byte range, and the tokenizer's vocabulary. No Ray, DuckDB, click or matplotlib."""
