"""The embedding phase's work: one EmbeddingTask per embedding matrix (the token embedding, and an untied output
head), run by the run's one engine like any other work — placed by the same rules, on any worker, which reads its
tensor itself; a worker that dies under it is handled by the same policy (batches.py). Its results go to the store
(the per-model files are made from those: embedding_files.py)."""

from __future__ import annotations

import logging

from tpa_dist.checkpoint.vocab import load_vocab
from tpa_dist.compute.embedding import find_embeddings
from tpa_dist.compute.tasks import EmbeddingTask
from tpa_dist.settings import EmbeddingSettings

log = logging.getLogger("tpa_dist")


def embedding_tasks(model: object, settings: EmbeddingSettings) -> list[EmbeddingTask]:
    """The embedding tasks of one planned model (run/planning.PlannedModel): its vocabulary read here, once."""
    catalog = model.catalog
    vocab = load_vocab(catalog.root)
    infos = model.embeddings if model.embeddings is not None else find_embeddings(catalog)
    first = model.tasks[0] if model.tasks else None
    hub, synth = (first.hub, first.synth) if first is not None else (None, None)
    return [EmbeddingTask(model.model_id, model.revision, info, vocab, settings, hub, synth) for info in infos]


def log_result(model_id: str, res: object) -> None:
    """The console line of one clustered embedding."""
    log.info(
        "embedding %s %s: %s; the seed's method: k=%d by max F (silhouette best %s, elbow %d)%s; in %.1fs",
        model_id,
        res.param_name,
        res.verdict_words or "no gap statistic",
        res.chosen_k,
        res.silhouette_k,
        res.elbow_k,
        f" — degenerate: {res.degenerate}" if res.degenerate else "",
        res.seconds,
    )
