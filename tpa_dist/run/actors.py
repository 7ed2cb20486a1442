"""The worker of every engine (a Ray actor, or a process of the local pool): it analyzes batches of tasks —
matrices, ΔW pairs, embeddings — reading its tensors itself from their byte ranges.

CPU workers compute with numpy/LAPACK; GPU workers with torch on CUDA (decoding bf16/fp16 on the card). Injected
faults (a fake GPU, delays, holds, kills, CUDA OOM: faults.py) act here, in the worker, from its `Faults` plan:
the compute code below it never sees them.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from dataclasses import replace
from pathlib import Path

from tpa_dist import constants
from tpa_dist.compute.analysis import analyze_delta, analyze_task, failed_row
from tpa_dist.compute.tasks import DeltaTask, EmbeddingTask, Task, relocate, task_path, task_paths
from tpa_dist.faults import NO_FAULTS, Faults
from tpa_dist.settings import AnalysisSettings
from tpa_dist.sources.node_budget import NodeBudget, NodeFile, NodeLedger


def gpu_compute_device(faults: Faults = NO_FAULTS) -> tuple[str, str, int]:
    """(compute device, label, free bytes) for a GPU worker; ("", "unavailable", 0) without CUDA (a fake GPU: the
    GPU code path on the CPU, when `faults` asks for one)."""
    import torch

    if torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return "cuda", f"cuda:{torch.cuda.get_device_name()}", int(free)
    if faults.fake_gpu:
        return "torch-cpu", "fake-gpu", faults.fake_gpu_memory
    return "", "unavailable", 0


class AnalysisWorker:
    """One analysis process with a fixed BLAS thread count (run as a Ray actor)."""

    def __init__(
        self,
        settings: AnalysisSettings,
        gpu: bool = False,
        faults: Faults = NO_FAULTS,
        budget: NodeBudget | None = None,
    ) -> None:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(limits=settings.threads)
        if gpu or "torch" in sys.modules:  # CPU workers never need torch (2 s to import)
            import torch

            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.faults = faults
        if gpu:
            self.compute, self.device, self.free_bytes = gpu_compute_device(faults)
            if self.compute == "cuda":
                # torch loads its CUDA linear-algebra library on the first linalg call, and that lazy load is not
                # thread-safe (concurrent streams' first eigvalsh: "lazy wrapper should be called at most once")
                torch.linalg.eigvalsh(torch.eye(2, dtype=torch.float64, device="cuda"))
        else:
            self.compute, self.device, self.free_bytes = "cpu", "cpu", 0
        self.host = socket.gethostname()
        self.node = self.host
        ray = sys.modules.get("ray")  # a Ray actor's process has it; a local pool's never imports it (0.4 s)
        if ray is not None and ray.is_initialized():  # get_runtime_context() alone would start a Ray instance
            self.node = ray.get_runtime_context().get_node_id()
        self.worker = f"{self.host}:{os.getpid()}"
        self._fetched: dict[tuple, str] = {}
        self._sizes: dict[tuple, int] = {}  # (repo, revision, file) -> its size, as the Hub announces it
        self._users: dict[tuple, str | None] = {}  # (repo, revision, file) -> the node user's own copy, if any
        self.budget = budget  # a census's disk budget on this node (--max-cache-gib on a cluster)
        cache = constants.node_cache()
        self.node_cache = os.path.join(cache, self.node) if cache else None  # None: the Hugging Face cache
        self.ledger = NodeLedger(budget, self._census_root()) if budget is not None else None
        self._thread = threading.local()  # a GPU actor's concurrent calls: one CUDA stream per calling thread

    def describe(self) -> dict[str, object]:
        return {
            "node": self.node,
            "host": self.host,
            "worker": self.worker,
            "device": self.device,
            "free_bytes": self.free_bytes,
        }

    def _localize(self, task: Task) -> Task:
        """Every file of a task that this node cannot see is made local: a Hub model's files (its shard, and those
        of an FP8 scale or GPTQ/AWQ companions) fetched, that file alone, into the node's own cache (a census on a
        budget: into its node cache, held by `_hold`); a synthetic preset written there whole (it is deterministic
        in its seed)."""
        if task.hub is None and task.synth is None:
            return task
        missing = sorted(p for p in task_paths(task) if not self.faults.visible(p))
        if not missing:
            return task
        root = task_path(task)[: -len(task.shard)]  # every path of a task is <folder>/<file in the repo>
        if task.synth is not None:
            folder = self._synth_folder(task.synth, self.node_cache)
            return relocate(task, {p: os.path.join(folder, p[len(root) :]) for p in missing})
        from huggingface_hub import hf_hub_download

        moved = {}
        for path in missing:
            if self.ledger is not None:
                moved[path] = self._fetch_budgeted(task.hub, path[len(root) :])
                continue
            key = (task.hub, path)
            if key not in self._fetched:
                self._fetched[key] = hf_hub_download(
                    task.hub[0],
                    path[len(root) :],
                    revision=task.hub[1],
                    endpoint=constants.hf_endpoint(),
                    cache_dir=self.node_cache,
                    user_agent={"tpa-node": self.node},
                )
            moved[path] = self._fetched[key]
        return relocate(task, moved)

    # -- a census's disk budget on this node (sources/node_budget.py) ---------------------------------------------
    def _census_root(self) -> Path:
        from huggingface_hub import constants as hf

        # the node's id in the path too: nodes sharing a home folder (NFS) keep a budget each
        return Path(self.node_cache or hf.HF_HOME) / "tpa-census" / self.budget.census / self.node

    def _user_copy(self, hub: tuple[str, str], filename: str) -> str | None:
        """The node's own Hugging Face cache's copy of a file, if it has one (read in place, never counted)."""
        from huggingface_hub import try_to_load_from_cache

        key = (hub[0], hub[1], filename)
        if key not in self._users:  # looked up once a run: the user's own cache is not ours to change
            found = try_to_load_from_cache(hub[0], filename, cache_dir=self.node_cache, revision=hub[1])
            self._users[key] = found if isinstance(found, str) and os.path.isfile(found) else None
        return self._users[key]

    def _node_files(self, task: Task) -> list[NodeFile]:
        """The Hub files `task` reads that must come into the census's node cache."""
        out = []
        for sub in (task.tuned, task.base) if isinstance(task, DeltaTask) else (task,):
            if sub.hub is None:
                continue
            root = task_path(sub)[: -len(sub.shard)]
            sizes = dict(sub.sizes)
            for path in sorted(p for p in task_paths(sub) if not self.faults.visible(p)):
                if not self._user_copy(sub.hub, path[len(root) :]):
                    out.append(self._node_file(sub.hub, path[len(root) :], sizes.get(path)))
        return out

    def _node_file(self, hub: tuple[str, str], filename: str, size: int | None = None) -> NodeFile:
        """One Hub file in the census's node cache, with its size as planning found it, else as the Hub announces
        it (asked once)."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        from tpa_dist.sources.resolve import census_path

        key = (hub[0], hub[1], filename)
        if size:
            self._sizes[key] = size
        if key not in self._sizes:
            url = hf_hub_url(hub[0], filename, revision=hub[1], endpoint=constants.hf_endpoint())
            self._sizes[key] = int(get_hf_file_metadata(url).size or 0)
        where = census_path(self.ledger.root, hub[0], hub[1], filename)
        return NodeFile(hub[0], hub[1], filename, str(where), self._sizes[key])

    def _hold(self, task: Task, held: list[NodeFile]) -> None:
        """Reserve the files `task` reads unless `held` has them already (a batch's tasks share their shard): the
        files held before are let go first, so a worker never waits holding anything."""
        files = self._node_files(task)
        if {f.path for f in files} <= {f.path for f in held}:
            return
        if held:
            self.ledger.release(held)
            held.clear()
        self.ledger.reserve(files)
        held.extend(files)

    def _fetch_budgeted(self, hub: tuple[str, str], filename: str) -> str:
        from huggingface_hub import hf_hub_download

        from tpa_dist.errors import DownloadError

        mine = self._user_copy(hub, filename)
        if mine:
            return mine
        f = self._node_file(hub, filename)
        if os.path.exists(f.path):  # held, and here (a snapshot link appears once its blob is whole)
            return f.path
        got = hf_hub_download(
            hub[0],
            filename,
            revision=hub[1],
            endpoint=constants.hf_endpoint(),
            cache_dir=str(self.ledger.root),
            user_agent={"tpa-node": self.node},
        )
        size = os.path.getsize(got)
        if size != f.size:
            self.ledger.release([f], failed=True)
            raise DownloadError(f"{hub[0]}/{filename}: the Hub sent {size} bytes, not the {f.size} it announced")
        self.ledger.fetched(f, size)
        return got

    def finish_node_cache(self) -> dict[str, object] | None:
        """The run's end: this node's census cache emptied; its peaks and the bytes it fetched (None: no budget)."""
        if self.ledger is None:
            return None
        return dict(self.ledger.finish(), node=self.node, host=self.host)

    def _synth_folder(self, synth: tuple[str, int], node_cache: str | None) -> str:
        """The node's own copy of a synthetic preset, written once per node (a file lock keeps the workers of one
        node from writing it twice at once)."""
        import fcntl

        from tpa_dist.sources.resolve import cache_dir
        from tpa_dist.sources.synth.derived import write_any

        if synth not in self._fetched:
            preset, seed = synth
            folder = Path(node_cache) if node_cache else cache_dir()
            folder = folder / "synth" / f"{preset}-seed{seed}"
            folder.parent.mkdir(parents=True, exist_ok=True)
            with open(folder.parent / f".{folder.name}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._fetched[synth] = str(write_any(preset, folder, seed=seed))
        return self._fetched[synth]

    def analyze(self, tasks: list[Task]) -> list:
        """One result per task — (row, singular values or None) for a matrix or ΔW, an EmbeddingResult or
        EmbeddingFailure for an embedding; anything a task raises (fetching its shard included) becomes that
        task's error, so one bad tensor never costs the rest of its batch.

        A GPU actor takes several calls at once (Ray's max_concurrency, --gpu-streams), each thread on its own
        CUDA stream: one batch's file reading and copying overlap another's kernels in one process and one CUDA
        context (BENCHMARKS.md: 4 streams 2.1x one on an H100; 4 processes sharing the card time-slice instead)."""
        if self.compute != "cuda":
            return self._analyze(tasks)
        import torch

        stream = getattr(self._thread, "stream", None)
        if stream is None:
            stream = self._thread.stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            return self._analyze(tasks)

    def _analyze(self, tasks: list[Task]) -> list:
        held: list[NodeFile] = []  # a census on a budget: the files this batch holds on the node now
        try:
            out = self._analyze_holding(tasks, held)
        finally:
            if self.ledger is not None and held:
                self.ledger.release(held)
        for result in out:
            if isinstance(result, tuple):
                result[0].update(node=self.node, worker=self.worker, device=self.device)
        return out

    def _analyze_holding(self, tasks: list[Task], held: list[NodeFile]) -> list:
        out = []
        for task in tasks:
            self.faults.before_task(task.matrix_key, self.worker, gpu=self.compute != "cpu")
            try:
                if self.ledger is not None:
                    self._hold(task, held)
                if isinstance(task, DeltaTask):
                    local = replace(task, tuned=self._localize(task.tuned), base=self._localize(task.base))
                else:
                    local = self._localize(task)
            except Exception as exc:  # noqa: BLE001 - a shard this node cannot fetch fails its tasks only
                from tpa_dist.run.batches import failed_result

                out.append(failed_result(task, f"cannot fetch {task.shard}: {exc}"))
                continue
            out.append(self._one(local))
        return out

    def _one(self, task: Task) -> object:
        if isinstance(task, EmbeddingTask):
            return self._embedding(task)
        region = task.tuned.region if isinstance(task, DeltaTask) else task.region
        if self.compute != "cpu" and task.kind in ("matrix", "delta") and self.faults.gpu_oom(region.nbytes):
            row = failed_row(task, f"injected CUDA OOM ({region.nbytes} bytes)")
            row.update(status="oom", device=self.device)
            return row, None
        if isinstance(task, DeltaTask):
            return analyze_delta(task, self.settings, device=self.compute)
        return analyze_task(task, self.settings, device=self.compute)

    def _embedding(self, task: EmbeddingTask) -> object:
        """Cluster one embedding matrix on this worker (all the node's CPUs unless the task says otherwise: the
        embedding phase runs alone); anything it raises is that embedding's failure, named."""
        from threadpoolctl import threadpool_limits

        from tpa_dist.compute.embedding_analysis import analyze_embedding
        from tpa_dist.run.batches import failed_result

        device = "cuda" if self.compute == "cuda" else "cpu"
        try:
            with threadpool_limits(os.cpu_count() or 1):
                return analyze_embedding(task.info, task.vocab, task.settings, device)
        except MemoryError as exc:
            return failed_result(task, f"out of memory clustering it ({exc or 'MemoryError'})")
        except Exception as exc:  # noqa: BLE001 - one embedding's failure is its own, never the run's
            first = str(exc).splitlines()[0] if str(exc) else ""
            return failed_result(task, f"{type(exc).__name__}: {first}")
