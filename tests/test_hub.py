"""Hub ids against a local emulator of the Hub's HTTP API: only what the analysis reads is fetched, revisions
are pinned to commit shas, 404/401 are explained, tokens never leak, the cache serves offline re-runs, and an
interrupted transfer resumes."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pytest

from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.errors import UnknownModelSpecError
from tpa_dist.jobs import Job
from tpa_dist.run.driver import submit
from tpa_dist.settings import AnalysisSettings
from tpa_dist.sources.resolve import resolve

from .hub_emulator import HubEmulator

DECOYS = ("pytorch_model.bin", "model.onnx", "weights.pt", "model.gguf", "logo.png")


def _job(tmp_path, models: tuple[str, ...], name: str, **options: object) -> Job:
    """A matrices-only submit of `models` into tmp_path/NAME.duckdb."""
    return Job.create(
        report=False,
        models=models,
        db=str(tmp_path / f"{name}.duckdb"),
        output_dir=str(tmp_path / "o"),
        progress=False,
        embedding=False,
        **options,
    )


@pytest.fixture()
def hub(synth_models, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(synth_models["tiny-llama"], repo)
    for name in DECOYS:
        (repo / name).write_bytes(b"decoy, must never be requested")
    gated = tmp_path / "gated"
    shutil.copytree(synth_models["tiny-gpt2"], gated)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with HubEmulator({"org/tiny-llama": repo, "org/gated-gpt2": gated}, gated={"org/gated-gpt2": "hf_secret123"}) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        yield h


def test_submit_hub_id_end_to_end_without_decoys(ray_session, hub, tmp_path):
    """`HF_ENDPOINT=… tpa-dist submit --models org/tiny-llama` (the CLI, in-process)."""
    from click.testing import CliRunner

    from tpa_dist.cli import main

    db = tmp_path / "h.duckdb"
    args = ["submit", "--models", "org/tiny-llama", "--db", str(db), "--output-dir", str(tmp_path / "o")]
    result = CliRunner().invoke(main, [*args, "--no-progress", "--no-embedding"])
    assert result.exit_code == 0, result.output
    assert "21/21 analyzed (0 reused from earlier runs), 0 failed" in result.output, result.output
    requested = [path for _, path, _, _ in hub.log]
    assert not [p for p in requested if p.endswith(DECOYS)], requested
    assert any(p.endswith("model-00001-of-00002.safetensors") for p in requested)
    con = duckdb.connect(str(db), read_only=True)
    revision = con.execute("SELECT revision FROM models WHERE model_id = 'org/tiny-llama'").fetchone()[0]
    n = con.execute(
        "SELECT count(*) FROM matrix_analysis WHERE model_id = 'org/tiny-llama' AND kind = 'matrix'"
    ).fetchone()[0]
    con.close()
    assert revision == hub.sha("org/tiny-llama") and n == 16


def test_revision_pinning_and_offline_rerun_from_cache(hub, monkeypatch):
    sha = hub.sha("org/tiny-llama")
    main = resolve("org/tiny-llama")  # the branch, resolved to its commit
    pinned = resolve(f"org/tiny-llama@{sha}")
    assert main.revision == pinned.revision == sha and (pinned.path / "config.json").exists()
    with pytest.raises(UnknownModelSpecError, match="revision 'nope' not found"):
        resolve("org/tiny-llama@nope")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.log)
    again = resolve("org/tiny-llama")
    assert again.path == pinned.path and len(hub.log) == before  # served from the cache, no request
    with pytest.raises(UnknownModelSpecError, match="not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve("org/never-downloaded")


def test_missing_and_gated_repos_explained_token_never_leaks(ray_session, hub, tmp_path, monkeypatch, caplog):
    with pytest.raises(UnknownModelSpecError, match="org/missing: not found .* check the id"):
        resolve("org/missing")
    with pytest.raises(
        UnknownModelSpecError, match="gated repository — accept its licence on the Hub and set HF_TOKEN"
    ):
        resolve("org/gated-gpt2")
    monkeypatch.setenv("HF_TOKEN", "hf_secret123")
    job = _job(tmp_path, ("org/gated-gpt2", "org/missing"), "g")
    summary = submit(job)
    assert not summary.ok and "org/missing: not found" in summary.describe()  # the other model still ran
    con = duckdb.connect(job.db, read_only=True)
    assert con.execute("SELECT count(*) FROM matrix_analysis WHERE model_id = 'org/gated-gpt2'").fetchone()[0] == 30
    dump = " ".join(
        str(r) for t in ("runs", "models", "settings") for r in con.execute(f"SELECT * FROM {t}").fetchall()
    )  # noqa: S608 - fixed table names
    con.close()
    assert "hf_secret123" not in dump and "hf_secret123" not in caplog.text and "hf_secret123" not in summary.describe()
    assert any(auth for _, path, auth, _ in hub.log if "gated-gpt2/resolve" in path)


def test_interrupted_transfer_resumes(hub, tmp_path):
    """A transfer cut half-way (after more than huggingface_hub's 10 MB chunk) resumes with an HTTP Range."""
    import numpy as np

    from .conftest import write_safetensors

    big = tmp_path / "big"
    big.mkdir()
    w = np.random.default_rng(0).standard_normal((3072, 4096)).astype(np.float16)  # 24 MiB
    write_safetensors(big / "model.safetensors", {"model.layers.0.mlp.up_proj.weight": ("F16", w, w.shape)})
    hub.repos["org/big"] = big
    hub.cut_once.add("model.safetensors")
    src = resolve("org/big")
    assert (src.path / "model.safetensors").read_bytes() == (big / "model.safetensors").read_bytes()
    gets = [
        rng
        for method, path, _, rng in hub.log
        if method == "GET" and path.endswith("org/big/resolve/" + hub.sha("org/big") + "/model.safetensors")
    ]
    assert len(gets) == 2 and gets[0] == "" and gets[1].startswith("bytes=") and gets[1] != "bytes=0-", gets


def test_disk_space_checked_before_downloading(hub, monkeypatch):
    import collections

    from tpa_dist.errors import DiskSpaceError

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DiskSpaceError, match=r"downloading needs 0\.00 GiB but .* has 0\.00 GiB free"):
        resolve("org/tiny-llama")
    assert not [p for m, p, _, _ in hub.log if m == "GET" and "/resolve/" in p]  # nothing was fetched


def test_download_command_into_a_plain_folder(hub, tmp_path):
    from click.testing import CliRunner

    from tpa_dist.cli import main

    out = tmp_path / "plain"
    res = CliRunner().invoke(main, ["download", "--model-id", "org/tiny-llama", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert hub.sha("org/tiny-llama") in res.output
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


@pytest.fixture(scope="module")
def hub_nodes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One two-node cluster for both tests below (its start costs seconds): a Hub model, then a census on a budget."""
    from .test_distributed import _scenario

    return _scenario("hub_nodes", tmp_path_factory.mktemp("hub-nodes"))


def test_two_nodes_fetch_only_their_own_shards(hub_nodes):
    """Worker nodes that cannot see the driver's Hub cache fetch, one file at a time, exactly the shards of the
    tasks they run (shard-local scheduling keeps a shard's tasks on one node); the driver reads headers only."""
    import collections
    import re

    facts = hub_nodes
    assert facts["ok"], facts["describe"]
    ran = collections.defaultdict(set)
    for r in facts["rows"]:
        ran[r["node"]].add(r["shard"])
    fetched = collections.defaultdict(list)
    driver = []
    for path, agent, rng in facts["fetches"]:
        node = re.search(r"tpa-node/(\w+)", agent)
        if node:
            fetched[node.group(1)].append(path.rsplit("/", 1)[1])
        else:  # the driver: shard headers by Range only, no shard data (the nodes fetch their own)
            driver.append((path.rsplit("/", 1)[1], rng))
    assert driver and all(rng.startswith("bytes=0-") for _, rng in driver), driver
    assert len(ran) == 2 and len(fetched) == 2  # both worker nodes worked and fetched
    for node, shards in fetched.items():
        assert len(shards) == len(set(shards))  # each file once per node
        assert set(shards) == ran[node]  # only the shards its tasks needed


def test_a_census_keeps_its_disk_budget_on_every_node(hub_nodes):
    """--max-cache-gib on a cluster: 30 two-shard models (18× the 0.5 MiB budget in all, each node fetching several
    times its budget) and one whose shard alone is larger than it. Every model's matrices are stored; each node's
    census cache never held more than the budget — sampled on disk every 2 ms by the test, and by the node's own walk
    after each download; it is empty at the end; the oversized shard is one error for its model; the model already in
    each node's own Hugging Face cache is read there, never fetched, never deleted."""
    import re

    facts = hub_nodes["census"]
    limit = facts["limit"]
    assert not facts["ok"] and len(facts["failures"]) == 1, facts["describe"]
    assert "org/big" in facts["failures"][0] and "larger than --max-cache-gib" in facts["failures"][0], facts
    counts = facts["counts"]
    assert all(counts[f"org/c{i:02d}"] == 2 for i in range(30)), counts
    reports = facts["node_caches"]
    assert len(reports) == 2, reports  # both nodes worked, each kept its own ledger
    for r in reports:
        assert 0 < r["peak"] <= limit and 0 < r["measured_peak"] <= limit, r
        assert r["fetched"] > 2 * limit, r  # more than twice its budget went through each node's cache
    sampled = facts["sampled_peaks"]
    assert len(sampled) == 2 and all(0 < v <= limit for v in sampled.values()), sampled
    assert sum(r["fetched"] for r in reports) >= 5 * limit
    assert facts["shard_bytes"] * 30 >= 5 * limit
    assert facts["left"] == [], facts["left"]  # every node's census cache emptied at the end
    by_node: dict[str, list[str]] = {}
    for path, agent, rng in facts["fetched"]:
        node = re.search(r"tpa-node/(\w+)", agent)
        if node is None:  # the driver: headers by Range only
            assert rng.startswith("bytes=0-"), (path, rng)
            continue
        by_node.setdefault(node.group(1), []).append(path)
    assert len(by_node) == 2, list(by_node)
    assert not any("org/c00/" in p for paths in by_node.values() for p in paths)  # each node's own copy
    assert facts["theirs"] and all(present for _, present in facts["theirs"]), facts["theirs"]
    assert "census cache on 2 node(s)" in facts["describe"], facts["describe"]


def test_analysis_starts_before_the_download_ends(ray_session, hub, tmp_path, monkeypatch):
    """Shard headers come by HTTP Range first; shard 1 is analyzed and stored while shard 2 is still held
    back by the server; then the run completes with every matrix."""
    import json
    import threading
    import time

    import huggingface_hub.constants

    from tpa_dist.db.live import live_progress_path

    # the held response must outlast any load on the machine: huggingface_hub's read timeout would otherwise
    # give up on it and resume, fetching the shard twice
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DOWNLOAD_TIMEOUT", 600)
    release = threading.Event()
    hub.hold["model-00002-of-00002.safetensors"] = release
    job = _job(tmp_path, ("org/tiny-llama",), "s")
    out: dict = {}
    runner = threading.Thread(target=lambda: out.update(summary=submit(job)), daemon=True)
    runner.start()
    live = live_progress_path(job.db)
    deadline = time.monotonic() + 600  # an upper bound for a hang, not a schedule
    done = 0
    while time.monotonic() < deadline and not done:
        time.sleep(0.2)
        if live.exists():
            done = json.loads(live.read_text()).get("done", 0)
    held = not release.is_set()
    release.set()
    runner.join(timeout=600)
    assert held and done > 0, "no result was stored while the second shard was still downloading"
    summary = out["summary"]
    assert summary.ok, summary.describe()
    ranges = [(path, rng) for method, path, _, rng in hub.log if path.endswith(".safetensors") and rng]
    assert {p.rsplit("/", 1)[1] for p, r in ranges if r.startswith("bytes=0-")} == {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }, ranges
    whole = [p for method, p, _, rng in hub.log if method == "GET" and p.endswith(".safetensors") and not rng]
    assert sorted(p.rsplit("/", 1)[1] for p in whole) == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]  # each shard's data fetched exactly once
    con = duckdb.connect(job.db, read_only=True)
    statuses = con.execute(
        "SELECT status, count(*) FROM matrix_analysis WHERE model_id = 'org/tiny-llama' GROUP BY ALL"
    ).fetchall()
    con.close()
    assert dict(statuses).get("ok") == summary.total and set(dict(statuses)) == {"ok"}


def test_pickle_only_repo_is_refused_without_fetching_it(ray_session, hub, tmp_path):
    pickles = tmp_path / "pickles"
    pickles.mkdir()
    (pickles / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (pickles / "pytorch_model.bin").write_bytes(b"PK pickle, must never be requested")
    hub.repos["org/old-llama"] = pickles
    job = _job(tmp_path, ("org/old-llama", "org/tiny-llama"), "p")
    summary = submit(job)
    (failure,) = summary.failures
    assert "org/old-llama" in failure and "only pickle weights on the Hub (pytorch_model.bin)" in failure, failure
    assert "never downloads or unpickles" in failure and "refs/pr/N" in failure
    assert not [p for m, p, _, _ in hub.log if m == "GET" and p.endswith(".bin")]
    con = duckdb.connect(job.db, read_only=True)
    ok = con.execute(
        "SELECT count(*) FROM matrix_analysis WHERE model_id = 'org/tiny-llama' AND status = 'ok'"
    ).fetchone()
    con.close()
    assert ok[0] > 0  # the other model of the same submit ran


def test_remote_headers_validated_and_read_without_the_data(hub, tmp_path):
    """Shard headers come from the start of each file only, also from a server that ignores Range; a hostile
    header length is refused before anything that long is read."""
    import struct

    from tpa_dist.errors import HeaderError
    from tpa_dist.sources.resolve import open_hub_stream

    hub.ignore_range = True
    source = open_hub_stream("org/tiny-llama")
    assert [s.filename for s in source.pending] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    local = open_model(hub.repos["org/tiny-llama"])
    for shard in source.pending:
        assert source.remote[shard.filename].header_bytes == local.header(shard.filename).header_bytes
        assert source.remote[shard.filename].path == shard.local_path
    assert not list((tmp_path / "hf-cache").rglob("*.safetensors"))  # no shard data was stored

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}" + b"\0" * 64)
    hub.repos["org/bad"] = bad
    with pytest.raises(
        HeaderError, match=r"model\.safetensors: invalid safetensors header: header length 1099511627776 exceeds"
    ):
        open_hub_stream("org/bad")


def test_a_download_thread_that_ends_early_leaves_nothing_waiting():
    from tpa_dist.sources.hub import Downloads, PendingShard, ShardFetcher

    class Silent(ShardFetcher):
        def _run(self) -> None:  # ends without marking its shard ready or failed
            pass

    path = "/nowhere/model-00001-of-00001.safetensors"
    downloads = Downloads()
    downloads.add(Silent("org/x", "sha", [PendingShard("model-00001-of-00001.safetensors", path, 10)], {}))
    assert downloads.state(path).coming and downloads.state("/elsewhere/local.safetensors").ready
    downloads.start()
    downloads.join()
    assert downloads.state(path).error == "the download of org/x ended without model-00001-of-00001.safetensors"


def test_a_node_fetches_an_fp8_weight_and_its_scale_from_two_shards(hub, tmp_path, monkeypatch):
    """A worker that cannot see the files fetches every file its task reads — here an FP8 weight in shard 1 and
    its block scales in shard 2 — and analyzes the dequantized matrix exactly."""
    import json
    from dataclasses import replace

    import numpy as np
    import scipy.linalg as sl
    import torch
    from safetensors.torch import save_file

    from tpa_dist.compute.tasks import plan_tasks, task_paths
    from tpa_dist.run.actors import AnalysisWorker
    from tpa_dist.sources.resolve import open_hub_stream

    from .test_spectrum import _assert_spectrum_close

    rng = np.random.default_rng(5)
    w = torch.from_numpy(rng.standard_normal((64, 96)))
    scale = torch.from_numpy(rng.uniform(0.01, 0.1, (2, 3))).float()
    expanded = scale.repeat_interleave(32, 0).repeat_interleave(32, 1)
    q = (w / expanded).to(torch.float8_e4m3fn)
    repo = tmp_path / "fp8"
    repo.mkdir()
    name = "model.layers.0.mlp.down_proj.weight"
    save_file({name: q}, str(repo / "model-00001-of-00002.safetensors"))
    save_file({f"{name}_scale_inv": scale}, str(repo / "model-00002-of-00002.safetensors"))
    weight_map = {name: "model-00001-of-00002.safetensors", f"{name}_scale_inv": "model-00002-of-00002.safetensors"}
    (repo / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (repo / "config.json").write_text("{}")
    hub.repos["org/fp8"] = repo
    source = open_hub_stream("org/fp8")  # headers only: nothing of the shards is on disk
    catalog = open_model(source.path, remote=source.remote)
    (task,) = [
        t for t in plan_tasks("org/fp8", source.revision, catalog.tensors(), catalog.config) if t.matrix_key == name
    ]
    task = replace(task, hub=("org/fp8", source.revision))
    assert len(task_paths(task)) == 2
    monkeypatch.setenv("TPA_DIST_NODE_CACHE", str(tmp_path / "nodes"))
    ((row, sv),) = AnalysisWorker(AnalysisSettings(block_mib=1)).analyze([task])
    assert row["status"] == "ok", row["error"]
    _assert_spectrum_close(sv, sl.svdvals((q.to(torch.float64) * expanded.double()).numpy()))
    fetched = [p.rsplit("/", 1)[1] for m, p, ua, r in hub.agents if m == "GET" and "tpa-node" in ua and not r]
    assert sorted(fetched) == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def test_a_hub_base_at_a_revision_gives_the_same_deltas_as_a_local_one(ray_session, hub, tmp_path):
    """`--models synth:tiny-llama-ft --base org/tiny-llama@SHA`: the base comes through the Hub (pinned, recorded
    as base_model_id/base_revision) and every ΔW row and spectrum equals the run against the same weights as a
    local base."""
    sha = hub.sha("org/tiny-llama")

    def deltas(base: str, name: str) -> dict:
        job = _job(tmp_path, ("synth:tiny-llama-ft",), name, base=base)
        summary = submit(job)
        assert summary.ok, summary.describe()
        con = duckdb.connect(job.db, read_only=True)
        rows = con.execute(
            "SELECT matrix_key, base_model_id, base_revision, actual_rank, frobenius_norm, relative_update, "
            "spectral_update, s.singular_values FROM delta_analysis JOIN delta_spectra s "
            "USING (model_id, revision, base_model_id, base_revision, settings_id, matrix_key)"
        ).fetchall()
        con.close()
        return {r[0]: r[1:] for r in rows}

    remote = deltas(f"org/tiny-llama@{sha}", "hub")
    local = deltas("synth:tiny-llama", "local")
    assert len(remote) == len(local) == 16
    assert {(r[0], r[1]) for r in remote.values()} == {("org/tiny-llama", sha)}
    for key, (_, _, rank, fro, rel, spec, sv) in remote.items():
        l_rank, l_fro, l_rel, l_spec, l_sv = local[key][2:]
        assert rank == l_rank and fro == pytest.approx(l_fro, rel=1e-12), key
        assert rel == pytest.approx(l_rel, rel=1e-12) and spec == pytest.approx(l_spec, rel=1e-12), key
        np.testing.assert_allclose(sv, l_sv, rtol=1e-12, atol=0)
    fetched = {path for method, path, _, _ in hub.log if method == "GET" and path.endswith(".safetensors")}
    assert fetched == {f"/org/tiny-llama/resolve/{sha}/model-0000{i}-of-00002.safetensors" for i in (1, 2)}, fetched
