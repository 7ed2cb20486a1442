"""ΔW analysis of qwen3-0.6b-shaped pairs, side by side in one run, against the way it is done today: a script that
loads both models into RAM and calls torch.linalg.svd on each difference. Then memory against the row count.

Pairs: `unrelated` — synth qwen3-0.6b seeds 1 and 0 (independent weights: every tuned singular vector is spread
over many base vectors, the worst case of the intruder test); `fine-tune` — seed 0 plus a dense update of 1 % of
each matrix's Frobenius norm, stored in bf16 like the base (tuned vectors close to base ones, as fine-tunes are).

Methods (each in a fresh process; wall time includes reading the weights):
  script           both models to float32 in RAM, torch.linalg.svd(W_t − W_b) per matrix (all cores' threads)
  script-subspace  the same plus what the subspace metrics need done that way: torch.linalg.svd of W_t and of W_b,
                   principal angles of the top-16 subspaces, intruders among the top 10 (the like-for-like baseline
                   of `tpa`)
  tpa              `tpa-dist submit --models tuned --base base` with both models' own analyses already stored:
                   the ΔW pass only — float64 exact spectra plus principal angles and intruder dimensions
  tpa-spectra      the same with `[delta] subspace = false`: ΔW spectra and updates only (what `script` computes)
  tpa-spectra-local  the same on the local pool of forked workers (TPA_DIST_EXECUTOR=local) instead of Ray
Memory: the ΔW of a 10,000 × 256 and of a 1,000,000 × 256 bf16 pair with the same 8 MiB block budget.

Usage: python benchmarks/bench_delta.py [--runs 1] [--out benchmarks/results/delta.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCRIPT = r"""
import os, sys, time, json
import torch
from safetensors.torch import load_file
from pathlib import Path
torch.set_num_threads(os.cpu_count())
def load(folder):
    out = {}
    for shard in sorted(Path(folder).glob("*.safetensors")):
        out.update({k: v.float() for k, v in load_file(str(shard)).items()})
    return out
tuned, base = load(sys.argv[1]), load(sys.argv[2])
subspace = sys.argv[3] == "subspace"
n = intruders = 0
for key, w in tuned.items():
    if w.ndim == 2 and key in base and base[key].shape == w.shape:
        b = base[key]
        torch.linalg.svd(w - b, full_matrices=False)
        if subspace:  # the vectors of W_t and W_b, their principal angles (r = 16) and intruders (k = 10, eps = 0.5)
            ut, _, vht = torch.linalg.svd(w, full_matrices=False)
            ub, _, vhb = torch.linalg.svd(b, full_matrices=False)
            xt, xb = (vht.T, vhb.T) if w.shape[0] >= w.shape[1] else (ut, ub)
            torch.linalg.svdvals(xb[:, :16].T @ xt[:, :16])
            intruders += int(((xt[:, :10].T @ xb).abs().max(dim=1).values < 0.5).sum())
        n += 1
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print("RESULT " + json.dumps({"matrices": n, "peak_rss_mib": rss, "intruders": intruders}))
"""

MEMORY = r"""
import json, sys
sys.path.insert(0, sys.argv[4])
import numpy as np
from tpa_dist.compute.analysis import analyze_delta
from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.settings import DeltaSettings
from tpa_dist.compute.tasks import DeltaTask, tasks_for_tensor
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
np.zeros(1)
start = hwm()
(t,) = tasks_for_tensor("t", "r", open_model(sys.argv[1]).tensors()[0])
(b,) = tasks_for_tensor("b", "r", open_model(sys.argv[2]).tensors()[0])
row, sv = analyze_delta(DeltaTask(t, b, DeltaSettings()), block_bytes=int(sys.argv[3]))
print("RESULT " + json.dumps({"rss_growth_mib": (hwm() - start) / 1024, "status": row.status,
                              "relative_update": row.relative_update, "seconds": row.seconds}))
"""


def _result(proc: subprocess.CompletedProcess) -> dict:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-3000:])
    return json.loads(lines[-1][7:])


def run_tpa(tuned: Path, base: Path, work: Path, subspace: bool, executor: str | None = None) -> dict:
    db = work / f"pair-{subspace}.duckdb"
    job = work / f"job-{subspace}.toml"
    job.write_text(
        f'models = ["tuned={tuned}", "base={base}"]\n[job]\ndb = "{db}"\noutput_dir = "{work}/o"\n'
        "[embedding]\nenabled = false\n"
    )
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    subprocess.run(
        [sys.executable, "-m", "tpa_dist", "submit", str(job), "--no-progress", "--quiet"],
        env=env,
        check=True,
        capture_output=True,
    )  # both models' own analyses, stored (not timed)
    if executor:
        env["TPA_DIST_EXECUTOR"] = executor
    delta = work / f"delta-{subspace}.toml"
    delta.write_text(
        f'models = ["tuned={tuned}"]\nbase = "base={base}"\n[job]\ndb = "{db}"\noutput_dir = "{work}/o"\n'
        f"[embedding]\nenabled = false\n[delta]\nsubspace = {str(subspace).lower()}\n[analysis]\nforce = false\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tpa_dist", "submit", str(delta), "--no-progress", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-3000:])
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    n, intruders = con.execute("SELECT count(*), sum(intruders) FROM delta_analysis WHERE status = 'ok'").fetchone()
    phases = json.loads(con.execute("SELECT phases FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0])
    con.close()
    db.unlink()
    return {"wall_s": wall, "matrices": n, "intruders": intruders, "delta_s": phases.get("analysis")}


def finetune(base: Path, out: Path, rel: float = 0.01, seed: int = 2) -> Path:
    """`base` plus a dense Gaussian update of `rel` × each matrix's Frobenius norm, stored in the base's dtypes."""
    import shutil

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    if (out / "model.safetensors").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for f in base.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, out / f.name)
    for shard in sorted(base.glob("*.safetensors")):
        tensors = {}
        with safe_open(str(shard), "pt") as fh:
            for key in fh.keys():
                w = fh.get_tensor(key)
                if w.ndim == 2:
                    x = w.float()
                    noise = torch.randn(x.shape, generator=gen)
                    x += noise * (rel * x.norm() / noise.norm())
                    w = x.to(w.dtype)
                tensors[key] = w
        save_file(tensors, str(out / shard.name), metadata={"format": "pt"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--methods", default="script,script-subspace,tpa,tpa-spectra,tpa-spectra-local")
    ap.add_argument("--pairs", default="fine-tune,unrelated")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "delta.json"))
    args = ap.parse_args()
    from tpa_dist.sources.resolve import cache_dir
    from tpa_dist.sources.synth.writer import TensorSpec, _write_shard, write_synthetic

    base = write_synthetic("qwen3-0.6b", cache_dir() / "synth" / "qwen3-0.6b-seed0", seed=0)
    makers = {
        "unrelated": lambda: write_synthetic("qwen3-0.6b", cache_dir() / "synth" / "qwen3-0.6b-seed1", seed=1),
        "fine-tune": lambda: finetune(base, cache_dir() / "synth" / "qwen3-0.6b-seed0-ft1pct"),
    }
    pairs = {name: makers[name]() for name in args.pairs.split(",")}
    report: dict = {"cpus": os.cpu_count(), "runs": args.runs, "pairs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for pair, tuned in pairs.items():
            timings: dict[str, list[dict]] = {m: [] for m in args.methods.split(",")}
            for _ in range(args.runs):
                for method, runs in timings.items():
                    if method.startswith("script"):
                        mode = "subspace" if method == "script-subspace" else "delta"
                        t0 = time.perf_counter()
                        cmd = [sys.executable, "-c", SCRIPT, str(tuned), str(base), mode]
                        res = _result(subprocess.run(cmd, capture_output=True, text=True))
                        runs.append({**res, "wall_s": time.perf_counter() - t0})
                    else:
                        local = "local" if method.endswith("-local") else None
                        runs.append(run_tpa(tuned, base, work, not method.startswith("tpa-spectra"), local))
                    print(time.strftime("%H:%M:%S"), pair, method, runs[-1], flush=True)
            methods = {
                m: {"wall_s_median": statistics.median(r["wall_s"] for r in rs), "runs": rs}
                for m, rs in timings.items()
            }
            for method, entry in methods.items():
                for baseline in ("script", "script-subspace"):
                    if method.startswith("tpa") and baseline in methods:
                        entry[f"speedup_vs_{baseline}"] = methods[baseline]["wall_s_median"] / entry["wall_s_median"]
            report["pairs"][pair] = methods
        memory = {}
        for rows in (10_000, 1_000_000):
            folders = []
            for seed in (0, 1):
                folder = work / f"m{rows}-{seed}"
                folder.mkdir()
                _write_shard(
                    folder / "model.safetensors",
                    [TensorSpec("model.embed_tokens.weight", (rows, 256), "BF16")],
                    seed=seed,
                )
                folders.append(folder)
            memory[rows] = _result(
                subprocess.run(
                    [sys.executable, "-c", MEMORY, str(folders[1]), str(folders[0]), str(8 << 20), str(ROOT)],
                    capture_output=True,
                    text=True,
                )
            )
            print(rows, memory[rows], flush=True)
        report["memory_8mib_blocks"] = memory
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
