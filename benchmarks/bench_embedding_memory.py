"""Peak memory of the embedding step, as the engine runs it: one worker process that reads its embedding itself and
clusters it (`AnalysisWorker.analyze([EmbeddingTask])`), against the float32 size of the matrix. The driver holds
none of it (before issue 35 a small job clustered inside the driver: 3.93 GB for 151,936 × 2,560).

The peak is the process's resident high-water mark (VmHWM) less that of the same process just before the task
(imports, the worker, the vocabulary): what the step itself adds. Target: ≤ 2 × rows × cols × 4 bytes + a constant.

Usage:
    python benchmarks/bench_embedding_memory.py [--rows 151936 --cols 2560]
    # -> benchmarks/results/embedding_memory.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUN = """
import json, sys, time
from pathlib import Path
from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.checkpoint.vocab import load_vocab
from tpa_dist.compute.tasks import EmbeddingTask
from tpa_dist.run.actors import AnalysisWorker
from tpa_dist.settings import AnalysisSettings, EmbeddingSettings

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

folder = sys.argv[1]
info = next(t for t in open_model(folder).tensors() if t.param_name == sys.argv[2])
task = EmbeddingTask("m", "r", info, load_vocab(folder), EmbeddingSettings())
worker = AnalysisWorker(AnalysisSettings())
import sklearn.cluster, scipy.special  # noqa: E401 - imported before the baseline, as a warm worker has them
Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
before = hwm()
t0 = time.perf_counter()
(res,) = worker.analyze([task])
print(json.dumps({"wall_s": time.perf_counter() - t0, "before": before, "peak": hwm(), "ok": hasattr(res, "chosen_k")}))
"""


def main() -> None:
    from benchmarks.bench_embedding_step import big_folder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=151_936)
    ap.add_argument("--cols", type=int, default=2_560)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "embedding_memory.json"))
    args = ap.parse_args()
    folder = big_folder(args.rows, args.cols)
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(folder), "model.embed_tokens.weight"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    f32 = args.rows * args.cols * 4
    added = run["peak"] - run["before"]
    out = {
        "rows": args.rows,
        "cols": args.cols,
        "float32_bytes": f32,
        "process_before_bytes": run["before"],
        "process_peak_bytes": run["peak"],
        "step_added_bytes": added,
        "step_added_over_float32": added / f32,
        "wall_s": run["wall_s"],
        "ok": run["ok"],
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
