"""A census (issue 39): a cohort enumerated from a file or from the Hub's model listing (the local emulator answers
it), pinned, stored as the cohort's definition, reused on a re-run, and each broken member failing alone with the
failures grouped by reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from tpa_dist.cli import main
from tpa_dist.errors import JobError
from tpa_dist.settings import parse_hub_query

from .hub_emulator import HubEmulator, disk_bytes

BASE_TAG = "base_model:finetune:org/base"


def _rows(db, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _submit(tmp_path, *args: str) -> object:
    db = tmp_path / "census.duckdb"
    common = ["--db", str(db), "--output-dir", str(tmp_path / "out"), "--no-progress", "--no-embedding", "--quiet"]
    return CliRunner().invoke(main, ["submit", *args, *common, "--no-report"])


def test_models_from_a_file_is_a_stored_cohort(synth_models, tmp_path):
    listing = tmp_path / "family.txt"
    listing.write_text(
        "# the family\n\nsynth:tiny-llama   # the base\nft=synth:tiny-llama-ft\n  \n# done\n", encoding="utf-8"
    )
    first = _submit(tmp_path, "--models-from", str(listing))
    assert first.exit_code == 0, first.output
    db = tmp_path / "census.duckdb"
    cohorts = _rows(db, "SELECT name, source, query, members FROM cohorts")
    assert cohorts == [(str(listing), "file", str(listing), ["synth:tiny-llama", "ft=synth:tiny-llama-ft"])]
    members = _rows(db, "SELECT position, model_id FROM cohort_members ORDER BY position")
    assert members == [(1, "synth:tiny-llama"), (2, "ft")]
    stored = {m for (m,) in _rows(db, "SELECT model_id FROM models WHERE status = 'ok'")}
    assert stored == {"synth:tiny-llama", "ft"}
    # the same file again: the listing is reused (one row); a changed file is a new listing of the same cohort
    again = _submit(tmp_path, "--models-from", str(listing), "--cohort", str(listing))
    assert again.exit_code == 0 and "0 failed" in again.output, again.output
    assert _rows(db, "SELECT count(*) FROM cohorts") == [(1,)]
    listing.write_text("synth:tiny-llama\n", encoding="utf-8")
    assert _submit(tmp_path, "--models-from", str(listing)).exit_code == 0
    assert _rows(db, "SELECT count(*), min(len(members)), max(len(members)) FROM cohorts") == [(2, 1, 2)]


def test_a_models_file_problem_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("synth:tiny-llama\nsynth:tiny\x07llama\n", encoding="utf-8")
    result = _submit(tmp_path, "--models-from", str(bad))
    assert result.exit_code != 0
    assert f"--models-from {bad}, line 2" in result.output and "control character" in result.output, result.output
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    result = _submit(tmp_path, "--models-from", str(empty))
    assert result.exit_code != 0 and "no model in it" in result.output, result.output


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=5", "give at least one of author=, search=, filter="),
        ("author=org limit=0", "limit must be an integer from 1 to 100,000"),
        ("author=org sort=stars", "sort must be one of downloads"),
        ("author=org colour=red", "unknown key 'colour'"),
        ("author='org", "No closing quotation"),
        ("author", "is not KEY=VALUE"),
    ],
)
def test_a_bad_hub_query_is_one_line(query, message):
    with pytest.raises(JobError, match=message):
        parse_hub_query(query)


def test_a_hub_query_is_a_pinned_cohort_reused_until_relisted(synth_models, tmp_path, monkeypatch):
    """Five fine-tunes of org/base on the emulator (one gated, one with pickle weights only), one unrelated model:
    `--hub-query filter=…` analyzes the five's listing pinned to their commits; the broken two fail alone, grouped
    by reason; a re-run reuses the stored listing (the Hub is not listed again) until --relist."""
    repos = {}
    for i in range(3):
        repos[f"org/ft-{i}"] = synth_models["tiny-llama"]
    repos["org/ft-gated"] = synth_models["tiny-gpt2"]
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    (pickled / "pytorch_model.bin").write_bytes(b"not unpickled")
    repos["org/ft-pickled"] = pickled
    repos["org/other"] = synth_models["tiny-gpt2"]
    tags = {r: [BASE_TAG] for r in repos if r != "org/other"}
    downloads = {"org/ft-0": 50, "org/ft-1": 40, "org/ft-2": 30, "org/ft-gated": 20, "org/ft-pickled": 10}
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with HubEmulator(repos, gated={"org/ft-gated": "hf_x"}, tags=tags, downloads=downloads) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        result = _submit(tmp_path, "--hub-query", f"filter={BASE_TAG} limit=10", "--cohort", "fts")
        assert result.exit_code == 1, result.output  # two members failed; the others are stored
        listings = [p for m, p, _, _ in hub.log if p == "/api/models"]
        assert len(listings) == 1
        db = tmp_path / "census.duckdb"
        members = _rows(
            db, "SELECT position, spec, model_id, revision, downloads, gated FROM cohort_members ORDER BY position"
        )
        assert [m[2] for m in members] == ["org/ft-0", "org/ft-1", "org/ft-2", "org/ft-gated", "org/ft-pickled"]
        for _, spec, model_id, revision, _, gated in members:
            assert revision == hub.sha(model_id) and spec == f"{model_id}@{revision}"
            assert gated == ("manual" if model_id == "org/ft-gated" else None)
        (query,) = _rows(db, "SELECT query FROM cohorts WHERE name = 'fts'")[0]
        assert query == f"filter={BASE_TAG} sort=downloads limit=10"
        status = dict(_rows(db, "SELECT model_id, status FROM models"))
        assert status == {
            "org/ft-0": "ok",
            "org/ft-1": "ok",
            "org/ft-2": "ok",
            "org/ft-gated@" + hub.sha("org/ft-gated"): "error",
            "org/ft-pickled@" + hub.sha("org/ft-pickled"): "error",
        }
        out = result.output
        assert "failures by reason:" in out, out
        assert "1 gated" in out and "1 only pickle weights" in out, out
        # a re-run: the stored listing, not the Hub's (nothing listed again); --relist lists again
        again = _submit(tmp_path, "--cohort", "fts")
        assert "cohort 'fts': 5 models" in again.output and "stored listing reused" in again.output, again.output
        assert len([p for _, p, _, _ in hub.log if p == "/api/models"]) == 1
        relisted = _submit(tmp_path, "--hub-query", f"filter={BASE_TAG} limit=2", "--cohort", "fts", "--relist")
        assert relisted.exit_code == 0, relisted.output
        assert len([p for _, p, _, _ in hub.log if p == "/api/models"]) == 2
        assert _rows(db, "SELECT count(*), min(len(members)) FROM cohorts WHERE name = 'fts'") == [(2, 2)]


def test_an_unknown_cohort_name_is_one_line(tmp_path):
    result = _submit(tmp_path, "--cohort", "nope")
    assert result.exit_code != 0
    assert "no cohort of that name is stored" in result.output, result.output


def test_a_cohort_file_in_a_job_file(synth_models, tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("synth:tiny-llama\n", encoding="utf-8")
    job = tmp_path / "census.toml"
    job.write_text(f'[cohort]\nname = "tiny"\nmodels_from = "{listing}"\n', encoding="utf-8")
    result = _submit(tmp_path, str(job))
    assert result.exit_code == 0, result.output
    assert _rows(tmp_path / "census.duckdb", "SELECT name, members FROM cohorts") == [("tiny", ["synth:tiny-llama"])]
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_a_census_exports_as_a_partitioned_parquet_dataset_read_back_equal(synth_models, tmp_path):
    """Every table, spectra included, hive-partitioned by model_id — hostile model names included — reads back equal
    with DuckDB's read_parquet; nothing is written outside --out; an existing folder is replaced only when it is an
    earlier export."""
    hostile = ["..", "a\\=b", "<img onerror>", "x%2Fy", "2024"]
    models = ",".join(f"{name}=synth:tiny-llama" for name in hostile) + ",synth:tiny-qwen3"
    result = _submit(tmp_path, "--models", models)
    assert result.exit_code == 0, result.output
    db = tmp_path / "census.duckdb"
    out = tmp_path / "pub" / "dataset"
    before = {p for p in tmp_path.rglob("*")}
    exported = CliRunner().invoke(
        main, ["export", "--db", str(db), "--format", "parquet", "--partition-by", "model_id", "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    written = {p for p in tmp_path.rglob("*")} - before
    assert all(p == out.parent or out in p.parents or p == out for p in written), sorted(written)
    import json

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    con = duckdb.connect()
    con.execute("ATTACH $db AS src (READ_ONLY)", {"db": str(db)})
    tables = [
        t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'src'").fetchall()
    ]
    assert set(manifest["tables"]) == set(tables) and {"spectra", "matrix_analysis", "models"} <= set(tables)
    for table in tables:
        info = manifest["tables"][table]
        cols = [c for (c,) in con.execute(f"SELECT name FROM pragma_table_info('src.{table}')").fetchall()]
        listed = ", ".join(f'"{c}"' for c in cols)
        read = info["read"].replace("'./", f"'{out}/")
        if info["rows"] == 0:
            continue
        assert info["partitioned"] == ("model_id" in cols)
        (n,) = con.execute(f"SELECT count(*) FROM {read}").fetchone()
        assert n == info["rows"] == con.execute(f"SELECT count(*) FROM src.{table}").fetchone()[0], table
        for a, b in ((f"src.{table}", read), (read, f"src.{table}")):
            (diff,) = con.execute(
                f"SELECT count(*) FROM (SELECT {listed} FROM {a} EXCEPT ALL SELECT {listed} FROM {b})"
            ).fetchone()
            assert diff == 0, table
    names = {
        m
        for (m,) in con.execute(
            f"SELECT DISTINCT model_id FROM {manifest['tables']['spectra']['read'].replace(chr(39) + './', chr(39) + str(out) + '/')}"
        ).fetchall()
    }
    assert {"..", "a=b", "<img onerror>", "x%2Fy", "2024", "synth:tiny-qwen3"} == names
    con.close()
    # again: refused without --force; with it, the earlier export is replaced; a folder that is not one never is
    again = ["export", "--db", str(db), "--partition-by", "model_id", "--out", str(out)]
    assert CliRunner().invoke(main, again).exit_code != 0
    assert CliRunner().invoke(main, [*again, "--force"]).exit_code == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep", encoding="utf-8")
    refused = CliRunner().invoke(
        main, ["export", "--db", str(db), "--partition-by", "model_id", "--out", str(mine), "--force"]
    )
    assert refused.exit_code != 0 and "not an earlier export" in refused.output, refused.output
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep"


def test_a_census_on_a_disk_budget_never_holds_more_than_it(synth_models, tmp_path, monkeypatch):
    """32 two-shard models on the emulator (8.8 MiB, 8.8× the 1 MiB budget) and one whose shard alone is larger than
    the budget: every model's matrices are stored, the census cache never holds more than 1 MiB (sampled every few
    ms while it runs, and by its own count), it is empty at the end, the oversized shard is one error for its model,
    and the model already in the user's Hugging Face cache is read there and left in place."""
    import threading

    import numpy as np
    from huggingface_hub import snapshot_download

    from .conftest import write_safetensors

    repos = {f"org/m{i:02d}": synth_models["tiny-llama"] for i in range(32)}
    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    write_safetensors(big / "model.safetensors", {"big.weight": ("F32", np.ones((600, 600), np.float32), (600, 600))})
    repos["org/big"] = big
    user_cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(user_cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    listing = tmp_path / "census.txt"
    listing.write_text("\n".join(repos) + "\n", encoding="utf-8")
    db = tmp_path / "census.duckdb"
    cache = tmp_path / "census.duckdb.census-cache"
    with HubEmulator(repos) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        mine = snapshot_download("org/m00", cache_dir=str(user_cache), endpoint=hub.url)  # the user's own copy
        theirs = sorted(p.resolve() for p in Path(mine).glob("*.safetensors"))
        peak, done = [0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], disk_bytes(cache))
                done.wait(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = _submit(tmp_path, "--models-from", str(listing), "--max-cache-gib", str(1 / 1024))
        finally:
            done.set()
            sampler.join()
    assert result.exit_code == 1, result.output  # org/big's shard did not fit
    assert "census cache: peak" in result.output and "of the 1.0 MiB budget" in result.output, result.output
    stated = float(result.output.split("census cache: peak ")[1].split(" MiB")[0])
    assert 0.25 < stated <= 1.0 and 0 < peak[0] <= 2**20, (stated, peak[0])
    assert "larger than --max-cache-gib" in result.output and "model org/big" in result.output, result.output
    counts = dict(_rows(db, "SELECT model_id, count(*) FILTER (status = 'ok') FROM matrix_analysis GROUP BY 1"))
    assert all(counts[f"org/m{i:02d}"] == 21 for i in range(32)), counts
    assert not cache.exists()  # every shard deleted once stored, and the cache with them
    assert all(p.is_file() for p in theirs)  # the user's cache untouched
    assert sum(p.stat().st_size for p in repos["org/m01"].glob("*.safetensors")) * 32 > 8 * 2**20


def test_a_census_analyzes_its_first_models_while_later_ones_are_still_resolved(synth_models, tmp_path, monkeypatch):
    """20 Hub models and two broken ones among them; every request about the last one waits until the run has stored
    matrices (its live progress counts them). A census whose planning had to end before its analysis began would sit
    at that request: the emulator's wait would end at its bound instead of being released. The members that fail
    while the analysis runs fail alone, grouped by reason in the summary."""
    import threading

    from tpa_dist.db.live import live_progress

    good = {f"org/s{i:02d}": synth_models["tiny-llama"] for i in range(20)}
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    (pickled / "pytorch_model.bin").write_bytes(b"not unpickled")
    repos = {**dict(list(good.items())[:12]), "org/gated": synth_models["tiny-gpt2"], "org/pickled": pickled}
    repos.update(good)  # the two broken ones planned while the analysis runs
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TPA_DIST_EXECUTOR", "local")  # no Ray start-up: the engine is not what is tested here
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    listing = tmp_path / "census.txt"
    listing.write_text("\n".join(repos) + "\n", encoding="utf-8")
    db = tmp_path / "census.duckdb"
    release, ended, stored_first = threading.Event(), threading.Event(), []
    with HubEmulator(repos, gated={"org/gated": "hf_x"}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.hold_repo["org/s19"] = release

        def watch() -> None:  # releases org/s19 once the live progress counts a stored matrix
            while not ended.is_set():
                live = live_progress(db)
                if live is not None and live.done > 0:
                    stored_first.append(live.done)
                    release.set()
                    return
                ended.wait(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            result = _submit(tmp_path, "--models-from", str(listing))
        finally:
            ended.set()
            release.set()
            watcher.join()
        assert hub.hold_timeouts == [], "org/s19 was never released: the analysis had not started"
    assert result.exit_code == 1, result.output  # the two broken members
    assert stored_first and stored_first[0] > 0
    streamed = int(result.output.split(" model(s) planned while the analysis ran")[0].rsplit("\n", 1)[-1])
    assert 3 <= streamed <= 21, result.output  # the broken two and org/s19 among them
    assert "failures by reason: " in result.output and "1 gated" in result.output, result.output
    assert "1 only pickle weights" in result.output, result.output
    counts = dict(_rows(db, "SELECT model_id, count(*) FILTER (status = 'ok') FROM matrix_analysis GROUP BY 1"))
    assert counts == {repo: 21 for repo in good}, counts
    runs = _rows(db, "SELECT status, matrices_total, matrices_done, matrices_failed FROM runs")
    assert runs == [("failed", 420, 420, 0)], runs


def test_planned_models_are_recorded_in_batches_and_a_refused_row_fails_only_its_model(
    synth_models, tmp_path, monkeypatch
):
    """A census records its planned models RECORD_BATCH at a time (one transaction each); a batch the database
    refuses is recorded model by model, and the one model it still refuses is that model's failure — out of the plan,
    its failure row stored — while the others keep their rows and tasks."""
    from tpa_dist.db.store import Store
    from tpa_dist.errors import StoreError
    from tpa_dist.jobs import Job
    from tpa_dist.run.planning import RECORD_BATCH, plan_job

    folder = synth_models["tiny-llama"]
    names = [f"m{i:02d}" for i in range(RECORD_BATCH + 4)]
    job = Job.create(models=tuple(f"{n}={folder}" for n in names), db=str(tmp_path / "p.duckdb"))
    batches: list[list[str]] = []
    record_models = Store.record_models

    def many(self, models):  # noqa: ANN001, ANN202
        batches.append([r.model_id for r, _ in models])
        if len(models) > 1 and any(r.model_id == "m03" for r, _ in models):
            raise StoreError("refused the batch")
        if [r.model_id for r, _ in models] == ["m03"]:
            raise StoreError("refused m03")
        return record_models(self, models)

    monkeypatch.setattr(Store, "record_models", many)
    store = Store(job.db)
    try:
        plan = plan_job(job, store, "run-1")
    finally:
        store.close()
    assert batches[0] == names[:RECORD_BATCH]  # the first batch, whole, refused ...
    assert batches[1 : RECORD_BATCH + 1] == [[n] for n in names[:RECORD_BATCH]]  # ... then model by model
    assert batches[RECORD_BATCH + 1 :] == [names[RECORD_BATCH:]]  # the rest in one batch
    assert [m.model_id for m in plan.models] == [n for n in names if n != "m03"]
    assert plan.total == 21 * (len(names) - 1) and len(plan.tasks) == plan.total
    assert len(plan.failures) == 1 and "refused m03" in plan.failures[0] and plan.failures[0].startswith("model m03=")
    rows = dict(_rows(job.db, "SELECT model_id, status FROM models"))
    assert {m: s for m, s in rows.items() if s == "ok"} == {n: "ok" for n in names if n != "m03"}
    assert [m for m, s in rows.items() if s == "error"] == [f"m03={folder}"]
    tensors = dict(_rows(job.db, "SELECT model_id, count(*) FROM tensors GROUP BY 1"))
    assert tensors == {n: 21 for n in names if n != "m03"}


def test_a_disk_budget_says_what_it_cannot_hold(tmp_path):
    db = ["--db", str(tmp_path / "x.duckdb"), "--no-progress"]
    with_embedding = CliRunner().invoke(main, ["submit", "--models", "synth:tiny-llama", "--max-cache-gib", "1", *db])
    assert with_embedding.exit_code != 0 and "add --no-embedding" in with_embedding.output, with_embedding.output
    base = ["submit", "--models", "synth:tiny-llama-ft", "--base", "synth:tiny-llama", "--no-embedding"]
    with_base = CliRunner().invoke(main, [*base, "--max-cache-gib", "1", *db])
    assert with_base.exit_code != 0 and "--max-cache-gib cannot be combined with --base" in with_base.output


def test_the_census_guide_runs_as_written(synth_models, tmp_path, monkeypatch):
    """docs/census.md, command by command and query by query, against the emulator serving Qwen/Qwen3-0.6B's
    fine-tunes (tiny weights under the real names)."""
    from tpa_dist.db.query import run_sql

    from .test_docs import FENCE, ROOT, _commands

    text = (ROOT / "docs" / "census.md").read_text(encoding="utf-8")
    tag = ["base_model:finetune:Qwen/Qwen3-0.6B"]
    repos = {"Qwen/Qwen3-0.6B": synth_models["tiny-qwen3"]}
    repos.update({f"user{i}/Qwen3-0.6B-ft-{i}": synth_models["tiny-qwen3"] for i in range(3)})
    repos["other/unrelated"] = synth_models["tiny-llama"]
    tags = {r: tag for r in repos if "-ft-" in r}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with HubEmulator(repos, tags=tags, downloads={r: 10 + i for i, r in enumerate(tags)}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        fences = FENCE.findall(text)
        commands = [c for lang, block in fences if lang == "bash" for c in _commands(f"```bash\n{block}```")]
        assert [c[0] for c in commands] == ["submit", "submit", "export"], commands
        for argv in commands:
            result = CliRunner().invoke(main, [*argv, "--no-progress"] if argv[0] == "submit" else argv)
            assert result.exit_code == 0, (argv, result.output)
    assert (tmp_path / "census-parquet" / "manifest.json").is_file() and not (
        tmp_path / "census.duckdb.census-cache"
    ).exists()
    blocks = [(lang, block) for lang, block in fences if lang in ("sql", "duckdb")]
    assert [lang for lang, _ in blocks] == ["sql", "sql", "duckdb"]
    members = run_sql("census.duckdb", blocks[0][1], None, None)
    assert [r[1] for r in members.rows] == ["user2/Qwen3-0.6B-ft-2", "user1/Qwen3-0.6B-ft-1", "user0/Qwen3-0.6B-ft-0"]
    assert len(run_sql("census.duckdb", blocks[1][1], None, None).rows) == 3
    read = duckdb.connect().execute(blocks[2][1]).fetchall()
    assert [r[0] for r in read] == sorted(tags) and all(r[1] > 0 for r in read)


@pytest.mark.parametrize(
    ("sha", "filename"),
    [
        ("0" * 40, "../../outside.safetensors"),
        ("0" * 40, "/etc/passwd.safetensors"),
        ("../../" + "0" * 34, "model.safetensors"),
        (None, "model.safetensors"),
        ("0" * 40, "a\\..\\..\\b.safetensors"),
    ],
)
def test_a_hostile_mirror_cannot_place_a_shard_outside_the_census_cache(tmp_path, sha, filename):
    from tpa_dist.errors import DownloadError
    from tpa_dist.sources.resolve import census_path

    with pytest.raises(DownloadError, match="not a file of one commit"):
        census_path(tmp_path, "org/name", sha, filename)
    inside = census_path(tmp_path, "org/name", "a" * 40, "sub/model-00001.safetensors")
    assert inside == tmp_path / "models--org--name" / "snapshots" / ("a" * 40) / "sub" / "model-00001.safetensors"
