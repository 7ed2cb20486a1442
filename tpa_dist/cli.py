"""The `tpa-dist` command line: one click group whose commands are thin wrappers over the library.

Every error tpa-dist raises on purpose (TpaError) becomes one line `error: ...` and exit status 2, in one place
(`_Group.invoke`); click's own usage errors keep click's format.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from tpa_dist import __version__
from tpa_dist.db.sandbox import DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_S
from tpa_dist.errors import TpaError, UnknownPresetError, unknown_preset_message
from tpa_dist.text import printable

DEFAULT_DB = "data/tpa.duckdb"


_program: list[float] = []  # the process is the `tpa-dist` command (entry): when it started
_began: list[float] = []  # when this command began: the process's start, or main()'s call from another program


class _Group(click.Group):
    """The command group: TpaError, and click's own usage errors (a missing option, a bad value), -> one line
    `error: …` on stderr and exit 2, never a traceback or a usage block."""

    def main(self, *args: object, **kwargs: object) -> object:
        _began[:] = [_program[0] if _program else time.monotonic()]  # a call from a program: from this call on
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "tpa-dist"
            message = printable(exc.format_message())
            click.echo(f"error: {where}: {message} (`{where} --help` lists the options)", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {printable(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TpaError as exc:
            click.echo(f"error: {printable(str(exc))}", err=True)  # one line: a name cannot forge more
            sys.exit(2)
        except KeyboardInterrupt:  # Ctrl-C in a command other than submit (which says more): the shell's 130
            click.echo("interrupted", err=True)
            sys.exit(130)


def _one_line(record: logging.LogRecord) -> bool:
    """A log line's text with every control character escaped: a tensor or model name holding a newline or a
    terminal escape (OSC `ESC]0;…BEL`) can neither forge console lines nor retitle the terminal."""
    record.msg, record.args = printable(record.getMessage()), None
    return True


def db_option(func: Callable) -> Callable:
    return click.option("--db", default=DEFAULT_DB, show_default=True, help="The DuckDB results file.")(func)


def models_option(func: Callable) -> Callable:
    return click.option("--models", help="Comma-separated model ids [default: every model in the database].")(func)


def _split(models: str | None) -> list[str] | None:
    return [m.strip() for m in models.split(",") if m.strip()] if models else None


@click.group(cls=_Group)
@click.version_option(__version__, "--version", prog_name="tpa-dist")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (and Ray's own messages).")
def main(verbose: bool) -> None:
    """tpa-dist: exact spectra, ranks and heavy-tail metrics of LLM weights, on Ray, into DuckDB."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_one_line)
    if not verbose:  # one line per HTTP request drowns the progress lines; tpa-dist logs each shard it fetched
        for name in ("httpx", "httpx2", "httpcore", "ray"):
            logging.getLogger(name).setLevel(logging.WARNING if name != "ray" else logging.ERROR)


@main.command()
@click.argument("job_file", required=False, type=click.Path(dir_okay=True))
@click.option(
    "--models", help="Comma-separated: local folders, synth:PRESET, Hub ids org/name[@rev]; NAME=SPEC names one."
)
@click.option(
    "--base",
    help="Also analyze ΔW = model − BASE for every model (a model spec; 'previous': each model's predecessor).",
)
@click.option("--db", help=f"DuckDB file [default: {DEFAULT_DB}].")
@click.option("--output-dir", help="Folder for the CSV/report files [default: outputs/ beside --db].")
@click.option("--cpu-only", "--use-cpu", "cpu_only", is_flag=True, default=None, help="Never use GPUs.")
@click.option("--num-workers", type=int, help="CPU worker actors [default: cluster CPUs / threads].")
@click.option("--gpus-per-worker", type=float, help="GPUs per GPU worker; fractions share a GPU [default: 1].")
@click.option(
    "--gpu-streams", type=int, help="Batches a GPU worker runs at once, each on its CUDA stream [default: 4]."
)
@click.option("--threads-per-worker", type=int, help="BLAS threads per worker [default: 1].")
@click.option(
    "--address",
    help="Join this Ray cluster ('auto': the one on this machine) [default: RAY_ADDRESS, else a fresh local Ray].",
)
@click.option(
    "--request-cpus", type=int, help="CPU workers to ask an autoscaling cluster for [default: one per 4 matrices]."
)
@click.option(
    "--request-gpus",
    type=int,
    help="GPU workers to ask an autoscaling cluster for [default: 1 when there are matrices].",
)
@click.option(
    "--wait-for-workers",
    "wait_for_workers_s",
    type=float,
    help="Seconds batches wait for a worker to join [default: 600].",
)
@click.option("--sparsity-threshold", type=float, help="|w| at or below this counts as zero [default: 1e-8].")
@click.option("--block-mib", type=int, help="Per-worker memory budget of one streamed block [default: 64].")
@click.option("--force", is_flag=True, default=None, help="Recompute matrices already stored.")
@click.option("--no-progress", is_flag=True, help="Plain log lines instead of a progress bar.")
@click.option("--no-embedding", is_flag=True, help="Skip the k-means clustering of the token embeddings.")
@click.option(
    "--include-special-tokens",
    "include_special",
    is_flag=True,
    default=None,
    help="Cluster special/unused/padding/never-trained embedding rows too.",
)
@click.option("--k-range", help="k range of the embedding sweep, MIN:MAX [default: 2:100].")
@click.option("--k-step", type=int, help="Plain sweep with this step instead of coarse-to-fine.")
@click.option(
    "--embedding-metric",
    "metric",
    type=click.Choice(["cosine", "euclidean"]),
    help="Cluster unit-normalized rows (cosine) or raw rows [default: cosine].",
)
@click.option(
    "--rmt",
    is_flag=True,
    default=None,
    help="Also WeightWatcher's analyses: MP fit, shuffled ESD (correlation traps), detX, eigenvector localization.",
)
@click.option(
    "--models-from", type=click.Path(dir_okay=False), help="A file of model specs, one per line (# comments): a cohort."
)
@click.option(
    "--hub-query",
    help="A cohort from the Hub's model listing: 'author=ORG search=TEXT filter=TAG sort=downloads limit=100' "
    "(filter repeats, e.g. filter=base_model:finetune:ORG/NAME); each model pinned to the commit listed.",
)
@click.option("--cohort", help="The cohort's name in the database [default: the file or the query]; alone: re-run it.")
@click.option("--relist", is_flag=True, default=None, help="List --hub-query again instead of reusing its stored list.")
@click.option(
    "--max-cache-gib",
    type=float,
    help="Hub shards fetched just in time into a cache the census owns and deleted once stored: never more than "
    "this many GiB on disk (with --no-embedding, without --base).",
)
@click.option("--seed", type=int, help="Seed of k-means, of --rmt's shuffles and of synth: presets [default: 0].")
@click.option("--quiet", is_flag=True, help="No layer-by-layer console summary at the end.")
@click.option(
    "--no-report", is_flag=True, help="Store the results and the CSV only: no report.md/html (scripted runs)."
)
def submit(
    job_file: str | None,
    models: str | None,
    no_progress: bool,
    no_embedding: bool,
    k_range: str | None,
    quiet: bool,
    no_report: bool,
    **options: object,
) -> None:
    """Analyze every weight matrix of every model and store the results."""
    from tpa_dist.report import drawserver

    if not no_report:  # matplotlib imported on a spare core while this process imports, plans and analyzes
        drawserver.start()
    from tpa_dist.jobs import Job, load_job
    from tpa_dist.run.driver import submit as run_submit

    job = load_job(job_file) if job_file else Job()
    if models:
        options["models"] = tuple(m.strip() for m in models.split(",") if m.strip())
    if no_embedding:
        options["embedding"] = False
    if no_report:
        options["report"] = False
    if k_range:
        lo, _, hi = k_range.partition(":")
        if not (lo.isdigit() and hi.isdigit() and 2 <= int(lo) <= int(hi)):
            raise click.BadParameter("--k-range must be MIN:MAX with 2 <= MIN <= MAX", param_hint="--k-range")
        options["k_min"], options["k_max"] = int(lo), int(hi)
    job = job.with_overrides(
        **options, progress=False if no_progress else None, argv=tuple(sys.argv), started=_began[0] if _began else None
    )
    if not job.report:  # the job file's [outputs] said so
        drawserver.stop()
    if not job.models and not job.cohort.enabled:
        raise click.UsageError(
            "no models: give --models A,B, --models-from FILE or --hub-query QUERY (or a job file that lists them)"
        )
    from tpa_dist.errors import ClusterLostError

    try:
        summary = run_submit(job)
    except ClusterLostError as exc:  # stored and recorded; Ray's own exit would wait on the dead head: leave now
        click.echo(f"error: {exc}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(1)
    except KeyboardInterrupt:
        from tpa_dist.interrupts import describe, exit_code

        click.echo(f"{describe()}: every stored batch is kept; run the same submit again to resume", err=True)
        sys.exit(exit_code())
    if not quiet and summary.models:
        from tpa_dist.report.console import layer_summary

        click.echo(layer_summary(job.db, sorted({m for m, _ in summary.models})))
    click.echo(summary.describe(console=True))
    if summary.outputs:
        click.echo(summary.outputs)
    sys.exit(0 if summary.ok else 1)


@main.command()
@db_option
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for report.md/html and figures [default: outputs/ beside --db].",
)
@models_option
@click.option(
    "--sql-dir",
    "sql_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="A folder of your own .sql section files (repeatable).",
)
@click.option("--all-revisions", is_flag=True, help="Show every stored revision of a model, not only its latest.")
def report(db: str, out: str | None, models: str | None, sql_dirs: tuple[str, ...], all_revisions: bool) -> None:
    """Write report.md and a self-contained report.html from the SQL report sections."""
    from tpa_dist.report import drawserver

    drawserver.start()  # matplotlib imported on a spare core while this process opens the database and queries
    from tpa_dist.report.render import write_report

    out = out or str(Path(db).parent / "outputs")
    rendered = write_report(db, out, _split(models), sql_dirs, all_revisions=all_revisions)
    failed = [r.error for r in rendered if r.error]
    click.echo(f"{len(rendered)} sections -> {out}/report.md, {out}/report.html")
    for err in failed:
        click.echo(f"section failed: {err}", err=True)
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("model_a")
@click.argument("model_b")
@db_option
@click.option("--top", default=5, show_default=True, type=click.IntRange(min=1), help="Largest differences listed.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def compare(model_a: str, model_b: str, db: str, top: int, fmt: str) -> None:
    """MODEL_B against MODEL_A by block type and relative depth: Δalpha, Δr90, Δstable rank, largest first."""
    from tpa_dist.report.compare import compare as run_compare
    from tpa_dist.report.compare import format_comparison

    text = format_comparison(run_compare(db, model_a, model_b, top), fmt)
    click.echo(printable(text, keep_newlines=True) if fmt == "table" else text)  # names never drive the terminal


def limits_options(func: Callable) -> Callable:
    """--timeout and --memory-mib: the bounds of a sandboxed query (sandbox.py)."""
    func = click.option(
        "--timeout",
        "timeout_s",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_TIMEOUT_S,
        show_default=True,
        help="Seconds a query may run before it is interrupted.",
    )(func)
    return click.option(
        "--memory-mib",
        type=click.IntRange(min=64),
        default=DEFAULT_MEMORY_MIB,
        show_default=True,
        help="Memory the query may use (DuckDB's memory_limit; the process is capped a little above).",
    )(func)


@main.command()
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "parquet"]),
    help="The file's format [default: from --out's suffix: .csv, .json, .parquet].",
)
@click.option("--out", required=True, type=click.Path(), help="File to write (a folder with --partition-by).")
@click.option("--table", help="A table or view, e.g. transformer_matrix_analysis.")
@click.option("--query", help="One SELECT whose result to export (read-only, like tpa-dist sql).")
@click.option(
    "--partition-by",
    help="A Parquet dataset in the folder --out: every table (or --table's), hive-partitioned by this column "
    "(model_id) — the way to publish a census (docs/census.md).",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists (an earlier export, for a dataset).")
@limits_options
def export(
    db: str,
    fmt: str | None,
    out: str,
    table: str | None,
    query: str | None,
    partition_by: str | None,
    force: bool,
    timeout_s: float,
    memory_mib: int,
) -> None:
    """Export a table, view or query result (csv, json or parquet) into --out and nothing else; with --partition-by,
    every table as a hive-partitioned Parquet dataset in the folder --out."""
    from tpa_dist.db.sandbox import bounded_memory

    if partition_by is not None:
        from tpa_dist.db.dataset import MANIFEST, export_dataset

        if fmt not in (None, "parquet") or query is not None:
            raise click.UsageError("--partition-by writes Parquet tables: no --query, and --format parquet")
        with bounded_memory(memory_mib):
            counts = export_dataset(
                db,
                out,
                partition_by,
                [table] if table else None,
                overwrite=force,
                timeout_s=timeout_s,
                memory_mib=memory_mib,
            )
        click.echo(
            f"{out}: {len(counts)} tables, {sum(counts.values()):,} rows ({out}/{MANIFEST} says how to read them)"
        )
        return
    from tpa_dist.db.export import export as run_export

    if fmt is None:
        fmt = Path(out).suffix.lower().lstrip(".")
        if fmt not in ("csv", "json", "parquet"):
            raise click.UsageError("give --format csv|json|parquet, or an --out ending in .csv, .json or .parquet")

    with bounded_memory(memory_mib):
        path = run_export(db, fmt, out, table, query, overwrite=force, timeout_s=timeout_s, memory_mib=memory_mib)
    click.echo(path)


@main.group(cls=_Group)
def plan() -> None:
    """Plans from the stored measurements: what to fine-tune, prune or factor (files a training script reads)."""


class _Fraction(click.ParamType):
    """A number from 0 to 1; a percentage (50) is answered with the fraction it likely means."""

    name = "fraction"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if 0 <= number <= 1:
            return number
        hint = f": did you mean {number / 100:g}?" if 1 < number <= 100 else ""
        self.fail(f"{number:g} is not a fraction from 0 to 1{hint}", param, ctx)


FRACTION = _Fraction()


def _plan_options(func: Callable) -> Callable:
    func = click.option("--force", is_flag=True, help="Replace --out if it exists (a regular file only).")(func)
    func = click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write.")(func)
    func = click.option("--model", help="The model (of its latest revision) [default: the database's only one].")(func)
    return db_option(func)


@plan.command()
@_plan_options
@click.option("--top-percent", type=click.FloatRange(0, 100), default=50, show_default=True)
def unfreeze(db: str, model: str | None, out: str, force: bool, top_percent: float) -> None:
    """Spectrum's unfrozen_parameters YAML (Axolotl): per weight type the modules of highest SNR."""
    import yaml

    from .report.plans import unfreeze_yaml, write_plan

    text, key = unfreeze_yaml(db, top_percent, model)
    entries = len(yaml.safe_load(text)["unfrozen_parameters"])
    click.echo(f"{key.model_id}: {entries} entries -> {write_plan(text, out, force)}")


@plan.command()
@_plan_options
@click.option(
    "--sparsity", type=FRACTION, required=True, help="Parameter-weighted mean sparsity, a fraction (0.5 = half)."
)
@click.option("--epsilon", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True)
@click.option("--per-block", is_flag=True, help="Each layer's matrices share their mean alpha (block-wise).")
def prune(db: str, model: str | None, out: str, force: bool, sparsity: float, epsilon: float, per_block: bool) -> None:
    """AlphaPruning's per-matrix sparsities from the heavy-tail alpha (JSON)."""
    from .report.plans import prune_plan, write_plan

    result = prune_plan(db, sparsity, epsilon, model, per_block)
    click.echo(
        f"{result['model_id']}: {len(result['matrices'])} matrices, mean sparsity {result['mean_sparsity']:.4f}"
        + (f", {result['clipped']} clipped to [0, 1]" if result["clipped"] else "")
        + f" -> {write_plan(result, out, force)}"
    )


@plan.command()
@_plan_options
@click.option("--energy", type=float, help="Σσ² each matrix keeps, e.g. 0.9.")
@click.option(
    "--budget", type=float, help="Fraction of the matrices' parameters to keep (the largest energy that fits)."
)
@click.option("--base", help="The ΔW plan against this base instead (the lora_plan view).")
def lowrank(
    db: str,
    model: str | None,
    out: str,
    force: bool,
    energy: float | None,
    budget: float | None,
    base: str | None,
) -> None:
    """Per matrix the rank that keeps an energy and the parameters it saves (JSON, or CSV by the file's name)."""
    from .report.plans import lora_plan, lowrank_plan, write_plan

    if base is not None:
        result = lora_plan(db, model, base)
        click.echo(f"{result['model_id']} vs {base}: {len(result['blocks'])} rows -> {write_plan(result, out, force)}")
        return
    result = lowrank_plan(db, energy, budget, model)
    click.echo(
        f"{result['model_id']}: energy {result['energy']:.4f}, keeps {result['planned_params']:,} of "
        f"{result['params']:,} parameters -> {write_plan(result, out, force)}"
    )


@main.command()
@click.option("--model-id", required=True, help="Hub id, org/name.")
@click.option("--revision", help="Branch, tag or commit [default: main].")
@click.option("--out", type=click.Path(file_okay=False), help="A plain folder instead of the Hugging Face cache.")
def download(model_id: str, revision: str | None, out: str | None) -> None:
    """Fetch a model's safetensors, index, config and tokenizer files (never pickles) from the Hub."""
    from tpa_dist.sources.resolve import download as run_download

    src = run_download(model_id, revision, out)
    click.echo(f"{src.path} (revision {src.revision})")


@main.command()
@click.argument("model")
def inspect(model: str) -> None:
    """List every tensor (shard, dtype, shape, layer, block type) from headers only."""
    from tpa_dist.sources.inventory import format_inventory, inventory

    click.echo(format_inventory(inventory(model)))


class _PresetsCommand(click.Command):
    """`synth --help` ends with the presets there are (read when help is asked for: no import cost otherwise)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from tpa_dist.sources.synth.derived import all_presets

        formatter.write_paragraph()
        formatter.write_text("PRESET is one of: " + ", ".join(all_presets()))


@main.command(cls=_PresetsCommand)
@click.argument("preset")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--seed", default=0, show_default=True)
def synth(preset: str, out: str, seed: int) -> None:
    """Write a synthetic checkpoint with a real family's names, shapes, dtypes and sharding."""
    from tpa_dist.sources.synth.derived import all_presets, write_any

    if preset not in all_presets():
        raise UnknownPresetError(unknown_preset_message(preset, all_presets()))
    click.echo(write_any(preset, out, seed=seed))


@main.command()
@db_option
@click.option("--limit", default=10, show_default=True, help="How many recent runs.")
def status(db: str, limit: int) -> None:
    """Recent runs, or the live progress of the run writing the database now."""
    from tpa_dist.db.status import status_text

    click.echo(status_text(db, limit))


@main.command()
@click.argument("query", required=False)
@click.option(
    "--file",
    "sql_file",
    type=click.Path(dir_okay=False),
    help="Run this .sql file, or a bundled report section by name (e.g. compressibility); $models is bound.",
)
@db_option
@models_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option(
    "--max-rows",
    type=click.IntRange(min=1, max=10**9),
    default=10_000,
    show_default=True,
    help="Cap on the rows fetched.",
)
@click.option(
    "--max-mib", type=click.IntRange(min=1, max=1 << 20), default=64, show_default=True, help="Cap on the MiB fetched."
)
@limits_options
def sql(
    query: str | None,
    sql_file: str | None,
    db: str,
    models: str | None,
    fmt: str,
    max_rows: int,
    max_mib: int,
    timeout_s: float,
    memory_mib: int,
) -> None:
    """Run one read-only SQL statement (or a .sql file) against the results database."""
    from tpa_dist.db.query import format_result, run_sql
    from tpa_dist.db.sandbox import bounded_memory

    if (query is None) == (sql_file is None):
        raise click.UsageError("give a QUERY or --file PATH (one of them)")
    limits = dict(max_bytes=max_mib << 20, timeout_s=timeout_s, memory_mib=memory_mib)
    with bounded_memory(memory_mib):
        result = run_sql(db, query, sql_file, _split(models), max_rows, **limits)
    click.echo(format_result(result, fmt))


def entry() -> None:
    """The `tpa-dist` command: `main`, then the process ends at once — every file is closed and written by then, and
    the interpreter's teardown (freeing matplotlib, DuckDB, numpy: 0.25 s after a small submit) would change nothing
    on disk. Where Ray runs in this process its own exit handlers stop what it started, so the usual exit is kept."""
    from tpa_dist.processes import process_started

    _program[:] = [process_started()]  # the start-up the summary reports: the interpreter's and the imports' too
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        sys.exit(code)
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): nothing more can be said there
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    entry()
