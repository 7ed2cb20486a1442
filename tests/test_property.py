"""Property-based fault isolation: generated model folders — headers, index files, configs and tokenizers, valid
and corrupted — never hang, never raise anything but a named error, and never cost a good neighbour its rows."""

from __future__ import annotations

import json
import struct
import time
import uuid
from pathlib import Path

import duckdb
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.checkpoint.vocab import load_vocab
from tpa_dist.compute.analysis import analyze_task
from tpa_dist.compute.embedding import find_embeddings
from tpa_dist.compute.tasks import plan_tasks
from tpa_dist.errors import TpaError
from tpa_dist.jobs import Job
from tpa_dist.run.driver import submit

DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "Q4", "", "f32"]
NAMES = st.one_of(
    st.sampled_from(
        [
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "lm_head.weight",
            "model.layers.0.mlp.experts.gate_up_proj",
            "x.qweight",
            "x.qzeros",
            "x.scales",
            "x.g_idx",
            "model.norm.weight",
            "__metadata__",
        ]
    ),
    st.text(min_size=0, max_size=12),
)
DIMS = st.one_of(
    st.integers(0, 9), st.integers(-3, -1), st.sampled_from([2**63, 2**64, 10**30]), st.just(1.5), st.just("4")
)


@st.composite
def headers(draw) -> bytes:  # noqa: ANN001
    """A safetensors file: a header (valid or lying) and its data area."""
    tensors = {}
    offset = 0
    for _ in range(draw(st.integers(0, 5))):
        name = draw(NAMES)
        dtype = draw(st.sampled_from(DTYPES))
        shape = draw(st.lists(DIMS, min_size=0, max_size=3))
        size = {"F64": 8, "F32": 4, "I64": 8, "I32": 4}.get(dtype, 2)
        try:
            nbytes = int(np.prod([d for d in shape if isinstance(d, int)] or [1])) * size
        except OverflowError:
            nbytes = 8
        nbytes = nbytes if 0 <= nbytes < 4096 else 8
        lie = draw(st.sampled_from([0, 0, 0, 1, -1, 10**6]))
        tensors[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes + lie]}
        offset += max(nbytes, 0)
    raw = json.dumps(tensors).encode()
    if draw(st.booleans()) and draw(st.booleans()):
        raw = raw.replace(b'"model', b'"\\ud800model', 1)  # a lone surrogate escape
    mode = draw(st.sampled_from(["ok", "ok", "ok", "truncate", "garbage", "length-lie", "deep"]))
    if mode == "truncate":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    elif mode == "garbage":
        raw = draw(st.binary(min_size=0, max_size=64))
    elif mode == "deep":
        raw = b"[" * 50_000 + b"]" * 50_000
    raw += b" " * (-len(raw) % 8)
    length = len(raw) if mode != "length-lie" else draw(st.sampled_from([0, 2**64 - 1, len(raw) + 1000]))
    data = np.random.default_rng(offset).standard_normal(offset // 4 + 1).astype(np.float32).tobytes()[:offset]
    return struct.pack("<Q", length) + raw + data


JSON_DOCS = st.one_of(
    st.none(),
    st.just("{}"),
    st.just('{"vocab_size": 8, "architectures": ["LlamaForCausalLM"], "tie_word_embeddings": false}'),
    st.just('{"quantization_config": {"quant_method": "gptq", "bits": 4}}'),
    st.just('{"quantization_config": {"bits": "four"}, "vocab_size": -1}'),
    st.just("[1, 2, 3]"),
    st.just('{"architectures": 5, "vocab_size": "many"}'),
    st.just("[" * 100_000),
    st.just("\udcff"),
    st.text(max_size=30),
)
TOKENIZERS = st.one_of(
    st.none(),
    st.just('{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}, "added_tokens": 5}'),
    st.just('{"model": {"type": "WordPiece", "vocab": {"[PAD]": 0, "x": 1}}, "added_tokens": [{"id": -1}]}'),
    st.just('{"model": {"type": "Unigram", "vocab": [[1, 2], "x", []]}}'),
    st.just('{"model": 5}'),
    st.just('{"model": {"vocab": {"a": 1e400}}, "decoder": ' + "[" * 5000 + "]" * 5000 + "}"),
    st.text(max_size=30),
)


@st.composite
def model_cases(draw) -> dict:  # noqa: ANN001
    shards = draw(st.integers(1, 2))
    case = {"shards": [draw(headers()) for _ in range(shards)]}
    case["config"] = draw(JSON_DOCS)
    case["tokenizer"] = draw(TOKENIZERS)
    index = draw(st.sampled_from(["none", "valid", "escape", "missing", "not-a-map", "garbage"]))
    case["index"] = index if shards > 1 or index != "valid" else "none"
    return case


def _write(case: dict, folder: Path) -> Path:
    folder.mkdir(parents=True)
    names = [f"model-{i + 1:05d}-of-{len(case['shards']):05d}.safetensors" for i in range(len(case["shards"]))]
    for name, blob in zip(names, case["shards"]):
        (folder / name).write_bytes(blob)
    for fname, text in (("config.json", case["config"]), ("tokenizer.json", case["tokenizer"])):
        if text is not None:
            (folder / fname).write_text(text, encoding="utf-8", errors="surrogateescape")
    index = case["index"]
    if index != "none":
        weight_map: object = {f"t{i}": n for i, n in enumerate(names)}
        if index == "escape":
            weight_map = {"t": "../../etc/passwd"}
        elif index == "missing":
            weight_map = {"t": "model-00009-of-00009.safetensors"}
        elif index == "not-a-map":
            weight_map = ["x"]
        text = json.dumps({"weight_map": weight_map}) if index != "garbage" else "{weight_map"
        (folder / "model.safetensors.index.json").write_text(text)
    return folder


def _plan_and_read(folder: Path) -> str:
    """Everything a submit does to one model without Ray: catalog, plan, tokenizer, every task analyzed.
    Returns 'error' (a named error) or 'ok'; anything else raised fails the property."""
    try:
        catalog = open_model(folder)
        tensors = catalog.tensors()
        tasks = plan_tasks("m", "r", tensors, catalog.config)
        find_embeddings(catalog)
    except TpaError:
        return "error"
    load_vocab(folder)  # never raises: unusable tokenizers fall back to ids
    for task in tasks:
        row, _ = analyze_task(task, block_bytes=1 << 16)
        assert row["status"] in ("ok", "error", "skipped"), row
    return "ok"


def test_generated_models_never_hang_crash_or_cost_a_neighbour(ray_session, synth_models, tmp_path):
    made: list[Path] = []
    outcomes: list[str] = []

    @settings(
        max_examples=80,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(case=model_cases())
    def check(case: dict) -> None:
        folder = _write(case, tmp_path / "gen" / uuid.uuid4().hex[:10])
        t0 = time.monotonic()
        outcomes.append(_plan_and_read(folder))
        assert time.monotonic() - t0 < 30, "one model took over 30 s to plan and read: a hang"
        made.append(folder)

    check()
    assert "error" in outcomes and "ok" in outcomes  # the generator reaches both the error and the analysis paths
    good = str(synth_models["tiny-gpt2"])
    picked = tuple(str(p) for p in made[:: max(1, len(made) // 12)])
    job = Job.create(
        report=False,
        models=(*picked, good),
        db=str(tmp_path / "mixed.duckdb"),
        output_dir=str(tmp_path / "o"),
        progress=False,
        k_min=2,
        k_max=3,
    )
    summary = submit(job)
    alone = Job.create(
        report=False,
        models=(good,),
        db=str(tmp_path / "alone.duckdb"),
        output_dir=str(tmp_path / "o2"),
        progress=False,
        k_min=2,
        k_max=3,
    )
    assert submit(alone).ok
    query = (
        "SELECT * EXCLUDE (run_id, created_at, seconds, node, worker) FROM matrix_analysis WHERE model_id = ? "
        "ORDER BY matrix_key"
    )
    rows = []
    for path in (job.db, alone.db):
        con = duckdb.connect(path, read_only=True)
        rows.append(con.execute(query, ["tiny-gpt2"]).fetchall())
        con.close()
    assert rows[0] == rows[1] and len(rows[0]) == 30, summary.describe()
