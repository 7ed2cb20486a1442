"""The `tpa-dist` command line: thin wrappers over the library (submit, inspect, synth, sql)."""

from __future__ import annotations

import logging
import sys

import click

from .errors import TpaError
from .jobs import Job, load_job


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """tpa-dist: exact spectra, ranks and heavy-tail metrics of LLM weights, on Ray, into DuckDB."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    if not verbose:  # one line per HTTP request drowns the progress lines; tpa-dist logs each shard it fetched
        for name in ("httpx", "httpx2", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)


@main.command()
@click.argument("job_file", required=False, type=click.Path(dir_okay=False))
@click.option("--models", help="Comma-separated: local folders, synth:PRESET, or Hub ids org/name[@rev].")
@click.option("--db", help="DuckDB file [default: data/tpa.duckdb].")
@click.option("--output-dir", help="Folder for the CSV/report files [default: data/outputs].")
@click.option("--cpu-only", "--use-cpu", "cpu_only", is_flag=True, default=None, help="Never use GPUs.")
@click.option("--num-workers", type=int, help="CPU worker actors [default: cluster CPUs / threads].")
@click.option("--gpus-per-worker", type=float, help="GPUs per GPU worker; fractions share a GPU [0.25].")
@click.option("--threads-per-worker", type=int, help="BLAS threads per worker [default: 1].")
@click.option("--address", help="Address of a running Ray cluster [default: start a local one].")
@click.option("--sparsity-threshold", type=float, help="|w| at or below this counts as zero [1e-8].")
@click.option("--block-mib", type=int, help="Per-worker memory budget of one streamed block [64].")
@click.option("--force", is_flag=True, default=None, help="Recompute matrices already stored.")
@click.option("--no-progress", is_flag=True, help="Plain log lines instead of a progress bar.")
@click.option("--no-embedding", is_flag=True, help="Skip the k-means clustering of the token embeddings.")
@click.option("--k-range", help="k range of the embedding sweep, MIN:MAX [2:100].")
@click.option("--k-step", type=int, help="Plain sweep with this step instead of coarse-to-fine.")
@click.option("--seed", type=int, help="Seed of k-means and of synth: presets [0].")
@click.option("--quiet", is_flag=True, help="No layer-by-layer console summary at the end.")
def submit(
    job_file: str | None,
    models: str | None,
    no_progress: bool,
    no_embedding: bool,
    k_range: str | None,
    quiet: bool,
    **options: object,
) -> None:
    """Analyze every weight matrix of every model and store the results."""
    from .driver import submit as run_submit

    try:
        job = load_job(job_file) if job_file else Job()
        if models:
            options["models"] = tuple(m.strip() for m in models.split(",") if m.strip())
        if no_embedding:
            options["embedding"] = False
        if k_range:
            lo, _, hi = k_range.partition(":")
            if not (lo.isdigit() and hi.isdigit() and 2 <= int(lo) <= int(hi)):
                raise click.BadParameter("--k-range must be MIN:MAX with 2 <= MIN <= MAX", param_hint="--k-range")
            options["k_min"], options["k_max"] = int(lo), int(hi)
        job = job.with_overrides(**options, progress=False if no_progress else None, argv=tuple(sys.argv))
        if not job.models:
            raise click.UsageError("no models: give --models or a job file")
        summary = run_submit(job)
    except TpaError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("interrupted: every stored batch is kept; run the same submit again to resume", err=True)
        sys.exit(130)
    if not quiet and summary.models:
        from .console import layer_summary

        click.echo(layer_summary(job.db, sorted({m for m, _ in summary.models})))
    click.echo(summary.describe())
    click.echo(
        f"report: {job.output_dir}/report.html, {job.output_dir}/report.md; "
        f"CSV: {job.output_dir}/transformer_matrix_analysis.csv"
    )
    sys.exit(0 if summary.ok else 1)


@main.command()
@click.option("--db", default="data/tpa.duckdb", show_default=True)
@click.option("--out", default="data/outputs", show_default=True, type=click.Path(file_okay=False))
@click.option("--models", help="Comma-separated model ids [default: every model in the database].")
@click.option(
    "--sql-dir",
    "sql_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="A folder of your own .sql section files (repeatable).",
)
def report(db: str, out: str, models: str | None, sql_dirs: tuple[str, ...]) -> None:
    """Write report.md and a self-contained report.html from the SQL report sections."""
    from .report import write_report

    try:
        rendered = write_report(db, out, [m.strip() for m in models.split(",")] if models else None, sql_dirs)
    except TpaError as exc:
        _fail(exc)
    failed = [r.error for r in rendered if r.error]
    click.echo(f"{len(rendered)} sections -> {out}/report.md, {out}/report.html")
    for err in failed:
        click.echo(f"section failed: {err}", err=True)
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--db", default="data/tpa.duckdb", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]), required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--table", help="A table or view, e.g. transformer_matrix_analysis.")
@click.option("--query", help="A SELECT whose result to export.")
def export(db: str, fmt: str, out: str, table: str | None, query: str | None) -> None:
    """Export a table, view or query result with DuckDB's COPY."""
    from .export import export as run_export

    try:
        click.echo(run_export(db, fmt, out, table, query))
    except TpaError as exc:
        _fail(exc)


@main.command()
@click.option("--model-id", required=True, help="Hub id, org/name.")
@click.option("--revision", help="Branch, tag or commit [main].")
@click.option("--out", type=click.Path(file_okay=False), help="A plain folder instead of the Hugging Face cache.")
def download(model_id: str, revision: str | None, out: str | None) -> None:
    """Fetch a model's safetensors, index, config and tokenizer files (never pickles) from the Hub."""
    from .sources import download as run_download

    try:
        src = run_download(model_id, revision, out)
    except TpaError as exc:
        _fail(exc)
    click.echo(f"{src.path} (revision {src.revision})")


@main.command()
@click.argument("model")
def inspect(model: str) -> None:
    """List every tensor (shard, dtype, shape, layer, block type) from headers only."""
    from .inspect import format_inventory, inventory

    try:
        click.echo(format_inventory(inventory(model)))
    except TpaError as exc:
        _fail(exc)


@main.command()
@click.argument("preset")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--seed", default=0, show_default=True)
def synth(preset: str, out: str, seed: int) -> None:
    """Write a synthetic checkpoint with a real family's names, shapes, dtypes and sharding."""
    from .synth import write_synthetic
    from .synth_presets import PRESETS

    if preset not in PRESETS:
        raise click.BadParameter(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    click.echo(write_synthetic(preset, out, seed=seed))


@main.command()
@click.option("--db", default="data/tpa.duckdb", show_default=True)
@click.option("--limit", default=10, show_default=True, help="How many recent runs.")
def status(db: str, limit: int) -> None:
    """Recent runs, or the live progress of the run writing the database now."""
    from .status import status_text

    try:
        click.echo(status_text(db, limit))
    except TpaError as exc:
        _fail(exc)


@main.command()
@click.argument("query")
@click.option("--db", default="data/tpa.duckdb", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def sql(query: str, db: str, fmt: str) -> None:
    """Run a read-only SQL query against the results database."""
    from .query import format_result, run_query

    try:
        click.echo(format_result(run_query(db, query), fmt))
    except TpaError as exc:
        _fail(exc)


if __name__ == "__main__":
    main()
