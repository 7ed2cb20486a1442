"""Ray scenarios that need their own cluster (fake GPUs, several nodes); run as a subprocess by the tests.

Usage: python -m tests.scenarios NAME WORKDIR — prints one JSON line of facts for the test to assert on.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import duckdb

from .conftest import wait_until_stored


def _rows(db: str) -> list[dict]:
    con = duckdb.connect(db, read_only=True)
    cur = con.execute(
        "SELECT model_id, matrix_key, kind, status, device, fallback_reason, node, worker, nbytes, shard FROM matrix_analysis"
    )
    cols = [d[0] for d in cur.description]
    out = [dict(zip(cols, r)) for r in cur.fetchall()]
    con.close()
    return out


def _job(work: Path, name: str, models: tuple[str, ...], **options: object):  # noqa: ANN202 - a tpa_dist Job
    """A matrices-only, quiet submit of `models` into work/NAME.duckdb."""
    from tpa_dist.jobs import Job

    return Job.create(
        models=models,
        db=str(work / f"{name}.duckdb"),
        output_dir=str(work / f"out-{name}"),
        progress=False,
        embedding=False,
        report=False,
        **options,
    )


def gpu_fallback(work: Path) -> dict:
    """Fake GPU resources: injected CUDA OOM above N bytes, and the planner's memory routing."""
    import ray

    from tpa_dist.run.driver import submit

    ray.init(num_cpus=3, num_gpus=1, include_dashboard=False, log_to_driver=False)
    os.environ["TPA_DIST_FAKE_GPU"] = "1"
    # each submit plans once its GPU worker has answered: on a starved machine its start can take over the default 60 s
    os.environ["TPA_DIST_FIRST_WORKER_WAIT_S"] = "900"
    os.environ["TPA_DIST_FAKE_GPU_MEMORY"] = str(1 << 30)
    os.environ["TPA_DIST_INJECT_OOM_BYTES"] = "10000"
    oom = submit(_job(work, "oom", ("synth:tiny-llama",), gpus_per_worker=1.0))
    del os.environ["TPA_DIST_INJECT_OOM_BYTES"]
    os.environ["TPA_DIST_FAKE_GPU_MEMORY"] = "1600000"  # 4 streams of one worker share it: 400000 each
    shared = submit(_job(work, "shared", ("synth:tiny-llama",)))
    os.environ["TPA_DIST_FAKE_GPU_MEMORY"] = "800000"  # 2 worker processes share it: 400000 each, as above
    fractional = submit(_job(work, "fractional", ("synth:tiny-llama",), gpus_per_worker=0.5, gpu_streams=1))
    # ΔW pairs on GPU workers: the small ones on the (fake) GPU, the larger ones hit an injected OOM and re-run
    os.environ["TPA_DIST_FAKE_GPU_MEMORY"] = str(1 << 30)
    os.environ["TPA_DIST_INJECT_OOM_BYTES"] = "40000"
    # the CPU workers wait until the GPU worker has taken a pair: on a starved machine they would take all 16 first
    held = {"TPA_DIST_INJECT_HOLD": "model.", "TPA_DIST_INJECT_HOLD_UNTIL": str(work / "gpu-took-one")}
    os.environ.update(held, TPA_DIST_INJECT_HOLD_FOR_GPU="1")
    delta = submit(_job(work, "delta", ("synth:tiny-llama-ft",), base="synth:tiny-llama", gpus_per_worker=1.0))
    for name in ("TPA_DIST_INJECT_OOM_BYTES", "TPA_DIST_INJECT_HOLD_FOR_GPU", *held):
        del os.environ[name]
    delta_cpu = submit(_job(work, "delta-cpu", ("synth:tiny-llama-ft",), base="synth:tiny-llama", cpu_only=True))

    def deltas(name: str) -> list[dict]:
        con = duckdb.connect(str(work / f"{name}.duckdb"), read_only=True)
        cur = con.execute(
            "SELECT matrix_key, device, status, rows, cols, relative_update, actual_rank, intruders "
            "FROM delta_analysis ORDER BY matrix_key"
        )
        cols = [d[0] for d in cur.description]
        out = [dict(zip(cols, r)) for r in cur.fetchall()]
        con.close()
        return out

    return {
        "ok": [oom.ok, shared.ok, fractional.ok, delta.ok, delta_cpu.ok],
        "delta": deltas("delta"),
        "delta_cpu": deltas("delta-cpu"),
        "shared": _rows(str(work / "shared.duckdb")),
        "fractional": _rows(str(work / "fractional.duckdb")),
        "oom": _rows(str(work / "oom.duckdb")),
        "cpu_only": _rows(str(work / "delta-cpu.duckdb")),  # --cpu-only with a GPU there: the models' matrices too
    }


def cluster(work: Path) -> dict:
    """Head + 2 worker nodes: work spreads over nodes; then a node removed mid-run."""
    import ray
    from ray.cluster_utils import Cluster

    from tpa_dist.run.driver import submit

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    spread = submit(_job(work, "spread", ("synth:tiny-mixtral",), address=c.address))
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    # node removal while the run is in flight: once 5 results are stored, with one task held until released
    release = work / "release-removed"
    os.environ.update(
        TPA_DIST_INJECT_DELAY_S="0.15",
        TPA_DIST_INJECT_HOLD="model.norm.weight",
        TPA_DIST_INJECT_HOLD_UNTIL=str(release),
    )
    spare = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    result: dict = {}
    job = _job(work, "removed", ("synth:tiny-gpt2", "synth:tiny-llama"), address=c.address, num_workers=3)
    thread = threading.Thread(target=lambda: result.setdefault("summary", submit(job)))
    thread.start()
    stored_at_removal = wait_until_stored(work / "removed.duckdb", 5, timeout=900)
    c.remove_node(workers[0])
    release.touch()
    thread.join(timeout=900)  # an upper bound for a hang
    for name in ("TPA_DIST_INJECT_DELAY_S", "TPA_DIST_INJECT_HOLD", "TPA_DIST_INJECT_HOLD_UNTIL"):
        del os.environ[name]
    summary = result.get("summary")
    out = {
        "spread_ok": spread.ok,
        "spread": _rows(str(work / "spread.duckdb")),
        "alive_nodes": len(nodes),
        "removed_ok": bool(summary and summary.ok),
        "stored_at_removal": stored_at_removal,
        "removed_total": summary.total if summary else None,
        "removed": _rows(str(work / "removed.duckdb")) if summary else [],
        "spare": spare.unique_id,
    }
    ray.shutdown()
    c.shutdown()
    return out


def hub_nodes(work: Path) -> dict:
    """Head + 2 worker nodes that cannot see the driver's Hub cache: each fetches only its tasks' shards."""
    import shutil

    import ray
    from ray.cluster_utils import Cluster

    from tests.hub_emulator import HubEmulator
    from tpa_dist.run.driver import submit
    from tpa_dist.sources.resolve import cache_dir
    from tpa_dist.sources.synth.writer import write_synthetic

    repo = work / "repo"
    shutil.copytree(write_synthetic("tiny-mixtral", cache_dir() / "synth" / "tiny-mixtral-seed0"), repo)
    with HubEmulator({"org/mixtral": repo}) as hub:
        os.environ.update(
            HF_ENDPOINT=hub.url,
            HF_HUB_CACHE=str(work / "driver-cache"),
            TPA_DIST_HIDE_PREFIX=str(work / "driver-cache"),
            TPA_DIST_NODE_CACHE=str(work / "nodes"),
        )
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        for _ in range(2):
            c.add_node(num_cpus=1)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False)
        summary = submit(_job(work, "hub", ("org/mixtral",), address=c.address))
        agents = [
            (p, ua, rng)
            for m, p, ua, rng in hub.agents
            if m == "GET" and "/resolve/" in p and p.endswith(".safetensors")
        ]
        census = _census_on_nodes(work, c.address)
        ray.shutdown()
        c.shutdown()
    return {
        "ok": summary.ok,
        "describe": summary.describe(),
        "rows": _rows(str(work / "hub.duckdb")),
        "fetches": agents,
        "census": census,
    }


#: a census on a disk budget kept on every node: 0.5 MiB each, against 30 two-shard models of 0.31 MiB
NODE_BUDGET_MIB = 0.5


def _census_on_nodes(work: Path, address: str) -> dict:
    """On the same cluster: 30 two-shard Hub models (16× the per-node budget in all) and one whose single shard is
    larger than the budget, `--max-cache-gib` kept by each node; one model already in each node's own cache. Each
    node's census cache is sampled on disk while the run goes on (a watcher that never sleeps longer than 2 ms)."""
    import numpy as np
    import ray
    from huggingface_hub import snapshot_download

    from tests.conftest import write_safetensors
    from tests.hub_emulator import HubEmulator
    from tpa_dist.run.driver import submit
    from tpa_dist.sources.node_budget import disk_bytes

    llama = work / "two-shards"  # two matrices, one per shard (160 KB each): the bytes of a census, few tasks
    llama.mkdir()
    (llama / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    index = {}
    for i, name in enumerate(("model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight"), 1):
        shard = f"model-0000{i}-of-00002.safetensors"
        values = np.random.default_rng(i).standard_normal((200, 200)).astype(np.float32)
        write_safetensors(llama / shard, {name: ("F32", values, (200, 200))})
        index[name] = shard
    (llama / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}), encoding="utf-8")
    big = work / "big"
    big.mkdir()
    (big / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    write_safetensors(big / "model.safetensors", {"big.weight": ("F32", np.ones((600, 600), np.float32), (600, 600))})
    repos = {f"org/c{i:02d}": llama for i in range(30)}
    repos["org/big"] = big
    listing = work / "census.txt"
    listing.write_text("\n".join(repos) + "\n", encoding="utf-8")
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
    roots = [work / "nodes" / n / "tpa-census" for n in nodes]
    peaks = {str(r): 0 for r in roots}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for r in roots:
                if r.exists():
                    peaks[str(r)] = max(peaks[str(r)], disk_bytes(r))
            done.wait(0.002)

    with HubEmulator(repos) as hub:
        os.environ["HF_ENDPOINT"] = hub.url
        users = [  # the user's own copy of org/c00 on each node: read there, never counted, never deleted
            snapshot_download("org/c00", cache_dir=str(work / "nodes" / n), endpoint=hub.url) for n in nodes
        ]
        theirs = sorted(str(p.resolve()) for u in users for p in Path(u).glob("*.safetensors"))
        hub.agents.clear()
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            job = _job(work, "census", (), address=address, models_from=str(listing))
            summary = submit(job.with_overrides(max_cache_gib=NODE_BUDGET_MIB / 1024))
        finally:
            done.set()
            sampler.join()
        fetched = [
            (p, ua, rng)
            for m, p, ua, rng in hub.agents
            if m == "GET" and "/resolve/" in p and p.endswith(".safetensors")
        ]
    con = duckdb.connect(str(work / "census.duckdb"), read_only=True)
    counts = dict(
        con.execute("SELECT model_id, count(*) FILTER (status = 'ok') FROM matrix_analysis GROUP BY 1").fetchall()
    )
    con.close()
    return {
        "ok": summary.ok,
        "describe": summary.describe(),
        "failures": summary.failures,
        "node_caches": summary.node_caches,
        "sampled_peaks": peaks,
        "left": [str(p) for r in roots for p in r.rglob("*") if p.is_file()],
        "counts": counts,
        "fetched": fetched,
        "shard_bytes": sum(p.stat().st_size for p in llama.glob("*.safetensors")),
        "theirs": [(p, os.path.isfile(p)) for p in theirs],
        "limit": int(NODE_BUDGET_MIB * 2**20),
    }


def stray_cluster(work: Path) -> dict:
    """A Ray cluster running and recorded on the machine (as `ray start` or a Cluster leaves it), and a plain
    `tpa-dist submit` beside it: it must start its own local Ray, never join (or trip over) that cluster."""
    import subprocess

    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        c.wait_for_nodes()
        recorded = Path("/tmp/ray/ray_current_cluster").is_file()
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tpa_dist",
                "submit",
                "--models",
                "synth:tiny-llama",
                "--db",
                str(work / "stray.duckdb"),
                "--output-dir",
                str(work / "out"),
                "--no-progress",
                "--no-embedding",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        cluster_nodes = [n.node_id for n in [c.head_node]]
    finally:
        c.shutdown()
    return {
        "recorded": recorded,
        "returncode": proc.returncode,
        "output": proc.stdout[-2000:] + proc.stderr[-3000:],
        "nodes": sorted({r["node"] for r in _rows(str(work / "stray.duckdb"))}) if proc.returncode == 0 else [],
        "cluster_nodes": cluster_nodes,
    }


if __name__ == "__main__":
    name, work = sys.argv[1], Path(sys.argv[2])
    scenarios = {
        "gpu_fallback": gpu_fallback,
        "cluster": cluster,
        "hub_nodes": hub_nodes,
        "stray_cluster": stray_cluster,
    }
    facts = scenarios[name](work)
    print("FACTS " + json.dumps(facts, default=str))
