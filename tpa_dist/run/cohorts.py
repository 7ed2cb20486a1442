"""A submit's cohort (a census): its members listed — or read back from the database — before planning, the listing
stored, and the job's models extended by them (sources/cohort.py lists; db/store.py keeps)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

from tpa_dist.db.store import Store
from tpa_dist.errors import DownloadError, JobError
from tpa_dist.jobs import Job
from tpa_dist.settings import parse_hub_query
from tpa_dist.sources.cohort import Cohort, file_members, list_hub, read_models_file

log = logging.getLogger("tpa_dist")


def cohort_name(job: Job) -> str | None:
    """The cohort's name: --cohort, else the models file's path, else the Hub query in its own words."""
    c = job.cohort
    if c.name:
        return c.name
    if c.models_from:
        return c.models_from
    return f"hub: {parse_hub_query(c.hub_query).text()}" if c.hub_query else None


def check_budget(job: Job) -> None:
    """--max-cache-gib's limits, said before any work: shards are deleted once their matrices are stored, so a
    step that reads a model's shards again later cannot run on the budget yet."""
    if job.cohort.max_cache_gib is None:
        return
    why = (
        "--base (ΔW pairs read both models' shards after their matrices)"
        if job.base or job.bases
        else "the embedding step (it reads its shard after every matrix): add --no-embedding"
        if job.embedding.enabled
        else None
    )
    if why:
        raise JobError(f"--max-cache-gib cannot be combined with {why}")


def with_cohort(job: Job, store: Store, run_id: str) -> tuple[Job, Cohort | None]:
    """`job` with its cohort's members after its own models (each once), and the cohort (None without one). A file
    is read each time (a new listing is stored when its models changed); a Hub query is listed once and its stored,
    pinned listing reused until --relist; --cohort NAME alone re-runs a stored cohort."""
    c = job.cohort
    name = cohort_name(job)
    if name is None:
        return job, None
    stored = store.stored_cohort(name)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    if c.models_from:
        cohort = Cohort(name, "file", c.models_from, now, file_members(read_models_file(c.models_from)))
        if stored is not None and stored.specs == cohort.specs:
            cohort = stored
        else:
            store.write_cohort(cohort, run_id)
    elif c.hub_query and (stored is None or c.relist):
        query = parse_hub_query(c.hub_query)
        members = tuple(list_hub(query))
        if not members:
            raise DownloadError(f"--hub-query {query.text()}: the Hub lists no model for it")
        cohort = Cohort(name, "hub", query.text(), now, members)
        store.write_cohort(cohort, run_id)
    elif stored is None:
        raise JobError(
            f"--cohort {name!r}: no cohort of that name is stored in {job.db}; list it with --models-from FILE or "
            "--hub-query QUERY"
        )
    else:
        cohort = stored
    log.info("%s", cohort.describe())
    return replace(job, models=tuple(dict.fromkeys(job.models + cohort.specs))), cohort


__all__ = ["check_budget", "cohort_name", "with_cohort"]
