"""The usual first-hour mistakes get one clear line and a hint, never a traceback; job settings are checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from tpa_dist.cli import main
from tpa_dist.errors import JobError, JobFileError
from tpa_dist.jobs import Job, load_job
from tpa_dist.run.driver import submit

from .conftest import write_safetensors

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res.exit_code, res.output


def test_a_model_given_as_job_file_gets_a_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = _run("submit", "synth:tiny-llama")
    assert code == 2 and "did you mean `tpa-dist submit --models synth:tiny-llama`?" in out
    code, out = _run("submit", "Qwen/Qwen3-4B")
    assert code == 2 and "--models Qwen/Qwen3-4B" in out
    code, out = _run("submit")
    assert code == 2 and "no models" in out


def _run_logged(caplog, *args: str) -> tuple[int, str]:
    """A command's output and its log (where planning names a model it skips, once)."""
    code, out = _run(*args)
    return code, out + caplog.text


def test_unknown_preset_lists_the_presets(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    code, out = _run_logged(caplog, "submit", "--models", "synth:tiny-lama", "--no-progress", "--quiet")
    assert code == 1 and "unknown synthetic preset 'tiny-lama' (did you mean 'tiny-llama'?); known: tiny-llama" in out
    code, out = _run("inspect", "synth:tiny-lama")
    assert code == 2 and "known: tiny-llama, tiny-qwen3" in out
    code, out = _run("synth", "nope", "--out", "x")
    assert code == 2 and "unknown synthetic preset 'nope'" in out


def test_a_typo_in_a_relative_path_is_a_missing_folder_not_a_hub_miss(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "minilm_whl").mkdir()
    code, out = _run_logged(caplog, "submit", "--models", "minilm_whl/model", "--no-progress", "--quiet")
    assert code == 1 and "minilm_whl/model: no such folder" in out and "Hugging Face" not in out


def test_readme_job_file_example_is_accepted_as_written(tmp_path):
    readme = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")  # the README's reference page
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks, "docs/commands.md has no TOML job-file example"
    for i, block in enumerate(blocks):
        path = tmp_path / f"readme{i}.toml"
        path.write_text(block, encoding="utf-8")
        job = load_job(path)
        assert job.models and job.analysis.block_mib >= 1


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("analysis", 'block_mib = "big"', r"\[analysis\] block_mib \(--block-mib\) must be an integer, got 'big'"),
        ("analysis", "block_mib = 0", r"\[analysis\] block_mib \(--block-mib\) must be between 1 and"),
        ("analysis", "sparsity_threshold = -1.0", r"sparsity_threshold .* must be ≥ 0"),
        ("analysis", "force = 1", r"\[analysis\] force \(--force\) must be true or false, got 1"),
        ("embedding", "k_min = 50\nk_max = 10", r"k_min \(50\) must not exceed k_max \(10\)"),
        ("embedding", "k_step = 0", r"\[embedding\] k_step .* must be ≥ 1"),
        ("workers", "num_workers = 2.5", r"\[workers\] num_workers .* must be an integer, got 2.5"),
        ("workers", "gpus_per_worker = 0", r"\[workers\] gpus_per_worker .* must be between"),
        ("workers", 'address = ""', r"\[workers\] address .* must not be empty"),
        ("job", "db = 5", r"\[job\] db \(--db\) must be a string, got 5"),
    ],
)
def test_every_job_key_is_type_and_range_checked(tmp_path, section, line, message):
    path = tmp_path / "job.toml"
    path.write_text(f'models = ["synth:tiny-llama"]\n[{section}]\n{line}\n', encoding="utf-8")
    with pytest.raises(JobFileError, match=message):
        load_job(path)
    code, out = _run("submit", str(path))
    assert code == 2 and str(path) in out


def test_flags_and_python_api_are_checked_the_same_way():
    with pytest.raises(JobError, match=r"\[analysis\] block_mib \(--block-mib\) must be between 1"):
        Job.create(models=("synth:tiny-llama",), block_mib=0)
    code, out = _run("submit", "--models", "synth:tiny-llama", "--threads-per-worker", "0")
    assert code == 2 and "threads_per_worker (--threads-per-worker) must be between 1" in out
    job = Job.create(models=("a",), seed=3, threads_per_worker=2, embedding=False)
    assert (job.analysis.seed, job.embedding.seed, job.analysis.threads, job.embedding.enabled) == (3, 3, 2, False)


def test_model_names_from_flags_and_job_files(ray_session, synth_models, tmp_path):
    folder = synth_models["tiny-gpt2"]
    job_file = tmp_path / "named.toml"
    job_file.write_text(
        f'models = [{{ id = "{folder}", name = "gpt2-from-file" }}]\n[embedding]\nenabled = false\n', encoding="utf-8"
    )
    assert load_job(job_file).models == (f"gpt2-from-file={folder}",)
    job = Job.create(
        report=False,
        models=(f"my-gpt2={folder}", "gpt2-from-file=" + str(folder)),
        db=str(tmp_path / "n.duckdb"),
        output_dir=str(tmp_path / "out"),
        progress=False,
        embedding=False,
    )
    summary = submit(job)
    assert summary.ok, summary.describe()
    con = duckdb.connect(job.db, read_only=True)
    ids = sorted(r[0] for r in con.execute("SELECT DISTINCT model_id FROM matrix_analysis").fetchall())
    con.close()
    assert ids == ["gpt2-from-file", "my-gpt2"]


def test_the_same_model_twice_is_analyzed_once(ray_session, synth_models, tmp_path):
    folder = synth_models["tiny-gpt2"]
    job = Job.create(
        report=False,
        models=(str(folder), str(folder) + "/", str(folder)),
        db=str(tmp_path / "d.duckdb"),
        output_dir=str(tmp_path / "out"),
        progress=False,
        embedding=False,
    )
    summary = submit(job)
    assert summary.ok and summary.total == summary.done == 30, summary.describe()
    assert len(summary.warnings) == 2 and "analyzed once" in summary.warnings[0]


def test_integer_buffers_are_statistics_only(ray_session, tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "bert-buffers"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "vocab_size": 40}))
    write_safetensors(
        folder / "model.safetensors",
        {
            "embeddings.word_embeddings.weight": ("F32", rng.standard_normal((40, 16)).astype(np.float32), (40, 16)),
            "embeddings.position_ids": ("I64", np.arange(512, dtype=np.int64)[None, :], (1, 512)),
            "encoder.layer.0.attention.self.query.weight": (
                "F32",
                rng.standard_normal((16, 16)).astype(np.float32),
                (16, 16),
            ),
            "encoder.layer.0.attention.self.mask": ("BOOL", np.ones((4, 4), dtype=np.uint8), (4, 4)),
        },
    )
    db = tmp_path / "b.duckdb"
    code, out = _run(
        "submit",
        "--models",
        str(folder),
        "--db",
        str(db),
        "--output-dir",
        str(tmp_path / "out"),
        "--no-progress",
        "--no-embedding",
    )
    assert code == 0, out
    con = duckdb.connect(str(db), read_only=True)
    rows = {
        r[0]: r[1:]
        for r in con.execute("SELECT matrix_key, kind, actual_rank, rows, mean FROM matrix_analysis").fetchall()
    }
    con.close()
    assert rows["embeddings.position_ids"] == ("buffer", None, None, 255.5)
    assert rows["encoder.layer.0.attention.self.mask"][:3] == ("buffer", None, None)
    assert rows["encoder.layer.0.attention.self.query.weight"][0] == "matrix"
    summary = out.split("LAYER-BY-LAYER MATRIX ANALYSIS", 1)[1]
    assert "other" not in summary and "/1 (" not in summary and "255.5" not in summary


BAD_ARGUMENTS = [
    ["submit", "--models", "synth:tiny-llama", "--block-mib", "-3"],
    ["submit", "--models", "synth:tiny-llama", "--gpus-per-worker", "0"],
    ["submit", "no-such-job.toml"],
    ["report", "--db", "nope.duckdb"],
    ["export", "--db", "nope.duckdb", "--format", "csv", "--out", "x.csv", "--table", "runs"],
    ["download", "--model-id", "not a repo id"],
    ["inspect", "no/such/folder"],
    ["synth", "nope", "--out", "x"],
    ["status", "--db", "nope.duckdb"],
    ["sql", "--db", "nope.duckdb", "SELECT 1"],
    ["sql"],
]


@pytest.mark.parametrize("args", BAD_ARGUMENTS, ids=lambda a: a[0] + "-" + "-".join(a[1:3]))
def test_every_command_answers_a_bad_argument_without_a_traceback(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out = _run(*args)
    assert code == 2, out
    assert out.strip().splitlines()[-1].startswith(("error:", "Error:")), out


@pytest.mark.parametrize(
    "text,expected",
    [
        ("models = " + "[" * 100_000 + "]" * 100_000, "nested 100000 levels deep; a job file needs at most 8"),
        ("[a]\n" + "b = " + "{ c = " * 5000 + "1" + " }" * 5000, "nested 5000 levels deep"),
        ('models = ["synth:tiny-llama"]\n[job]\ndb = "x\\u0000y.duckdb"', "contains the control character '\\x00'"),
        ('models = ["synth:tiny-llama"]\n[job]\noutput_dir = "o\\u0000"', "output_dir contains the control character"),
        ('models = ["synth:tiny-llama"]\nbase = "' + "b" * 5000 + '"', "base is 5,000 characters long; at most 4,096"),
        ("models = 1\n" + "#" * (1 << 20), "too large for a job file"),
        ('models = ["a\\u0007b"]', "contains the control character '\\x07'"),
    ],
    ids=["deep-array", "deep-table", "nul-db", "nul-output", "long-base", "huge-file", "bell"],
)
def test_hostile_job_files_are_one_line_errors(tmp_path, text, expected):
    job = tmp_path / "job.toml"
    job.write_text(text)
    res = CliRunner().invoke(main, ["submit", str(job)])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output[:500]
    assert expected in lines[0] and len(lines[0]) < 400, lines[0][:500]
    assert not list(tmp_path.glob("x*")), "nothing created at a path cut at the NUL"


def test_hostile_flags_are_one_line_errors(tmp_path):
    for args, expected in (
        (["--models", "synth:tiny-llama", "--db", "a\x00b"], "[job] db (--db) contains the control character"),
        (["--models", "synth:tiny-llama", "--output-dir", "o\x00"], "output_dir (--output-dir) contains"),
        (["--models", "synth:tiny-llama", "--base", "b" * 100_000_000], "base (--base) is 100,000,000 characters"),
    ):
        res = CliRunner().invoke(main, ["submit", *args])
        assert res.exit_code == 2 and expected in res.output and len(res.output) < 400, res.output[:400]


def test_outputs_follow_the_database_unless_given(tmp_path):
    """Runs into different databases never share an output folder: outputs/ beside --db, unless --output-dir."""
    from tpa_dist.jobs import Job

    assert Job().output_dir == str(Path("data") / "outputs")
    assert Job.create(db=str(tmp_path / "a" / "x.duckdb")).output_dir == str(tmp_path / "a" / "outputs")
    assert Job.create(db="x.duckdb", output_dir=str(tmp_path / "o")).output_dir == str(tmp_path / "o")
    job = Job.create(db=str(tmp_path / "a" / "x.duckdb")).with_overrides(db=str(tmp_path / "b" / "y.duckdb"))
    assert job.output_dir == str(tmp_path / "b" / "outputs")
    kept = Job.create(output_dir=str(tmp_path / "o")).with_overrides(db=str(tmp_path / "b" / "y.duckdb"))
    assert kept.output_dir == str(tmp_path / "o")


def test_a_local_path_typo_is_a_missing_folder_not_a_hub_miss(tmp_path, monkeypatch):
    """`--models minilm/model` where ./minilm exists but has no `model`: a missing folder, named — never a network
    error about a Hub repository `minilm/model`."""
    from tpa_dist.errors import ModelFolderError
    from tpa_dist.sources.resolve import resolve

    (tmp_path / "minilm").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a Hub lookup would fail loudly (connection refused)
    with pytest.raises(ModelFolderError, match="no such folder"):
        resolve("minilm/model")


def test_help_lists_presets_and_writes_defaults_one_way():
    res = CliRunner().invoke(main, ["synth", "--help"])
    assert res.exit_code == 0 and "tiny-llama" in res.output and "qwen3-0.6b" in res.output
    text = CliRunner().invoke(main, ["submit", "--help"]).output
    bracketed = re.findall(r"\[([^\]]+)\]", text.replace("\n", " "))
    assert bracketed and all(b.startswith(("default:", "@")) or "|" in b or b.isupper() for b in bracketed), bracketed


def test_inspect_counts_parameters_not_buffers():
    from .conftest import minilm_folder

    res = CliRunner().invoke(main, ["inspect", str(minilm_folder())])
    assert res.exit_code == 0
    assert "22,713,216 parameters (and 1 integer/boolean buffer(s), 512 elements)" in res.output


def test_a_job_file_with_several_mistakes_names_them_all(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'models = ["synth:tiny-llama"]\n[analysis]\nblock_mib = -3\n[embedding]\nk_mni = 3\n[wrkers]\nx = 1\n'
    )
    res = CliRunner().invoke(main, ["submit", str(bad)])
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "3 problems" in res.output and "block_mib" in res.output and "k_mni" in res.output and "wrkers" in res.output
