"""The numbers: analysis tasks, the exact float64 spectrum of a streamed matrix (CPU and GPU), statistics, rank and
energy metrics, heavy-tail fits, ΔW of a fine-tune, exact k-means and the embedding analysis, and the typed result
rows workers return. What runs inside workers; no Ray, DuckDB, click or matplotlib."""
