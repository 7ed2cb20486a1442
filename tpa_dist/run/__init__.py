"""One submit, wired: planning every model, the executors that run its tasks — the Ray scheduler over an elastic
worker pool, or the local pool of forked workers, under one retry policy — the workers themselves, the result sink,
the embedding step, Ray's start-up, and the driver that records the run."""
