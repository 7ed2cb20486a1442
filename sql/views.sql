-- views.sql — read-side views over the tables of schema.sql (recreated on every open for writing).
-- transformer_matrix_analysis: the seed tool's CSV, exactly its columns and order; one row per
--   analyzed matrix (expert slices as param_name[e]), sorted by numeric layer_index, non-layer rows last.

CREATE OR REPLACE VIEW transformer_matrix_analysis AS
SELECT
    mo.source_path AS model_path,
    ma.model_id,
    ma.revision,
    ma.matrix_key AS param_name,
    ma.layer_index,
    ma.block_type,
    ma.shape,
    ma.rows,
    ma.cols,
    ma.design_rank,
    ma.actual_rank,
    ma.rank_ratio,
    ma.svd_90_percent_rank,
    ma.svd_90_percent_ratio,
    ma.mean,
    ma.std,
    ma.var,
    ma.min,
    ma.max,
    ma.sparsity,
    ma.dtype,
    ma.created_at
FROM matrix_analysis ma
LEFT JOIN models mo USING (model_id, revision)
WHERE ma.kind = 'matrix' AND ma.status = 'ok'
ORDER BY ma.model_id, ma.layer_index NULLS LAST, ma.param_name, ma.expert_index NULLS FIRST;

-- block_rank(block_type): the canonical in-layer order of block types (q, k, v, o, gate, up, down, then the
--   rest), for ORDER BY in every table; the same list as tpa_dist/classify.py BLOCK_ORDER (a test checks it).
CREATE OR REPLACE MACRO block_rank(b) AS coalesce(list_position(['embedding', 'position_embedding',
    'token_type_embedding', 'q_proj', 'k_proj', 'v_proj', 'qkv_proj', 'o_proj', 'router', 'gate_proj', 'up_proj',
    'gate_up_proj', 'down_proj', 'moe', 'output', 'norm', 'bias', 'other'], b), 99);

-- lora_plan: per tuned model, block type and captured share of the update's energy (0.9, 0.95, 0.99): the ΔW rank
--   each matrix needs (energy_rank_q), and the adapter parameters a LoRA would need for that captured energy —
--   with one rank for every matrix of the block type (the largest needed, `uniform_rank`) against a rank per
--   matrix. A rank-r LoRA of an m × n matrix has r · (m + n) parameters.
CREATE OR REPLACE VIEW lora_plan AS
WITH per_matrix AS (
    SELECT model_id, revision, base_model_id, base_revision, block_type, matrix_key, rows, cols, e.energy,
           CASE e.energy WHEN 0.9 THEN energy_rank_90 WHEN 0.95 THEN energy_rank_95 ELSE energy_rank_99 END AS rank
    FROM delta_analysis, (SELECT unnest([0.9, 0.95, 0.99]) AS energy) e
    WHERE status = 'ok'
)
SELECT model_id, revision, base_model_id, base_revision, block_type, energy, count(*) AS matrices,
       count(*) FILTER (rank = 0) AS unchanged, max(rank) AS uniform_rank, round(avg(rank), 2) AS mean_rank,
       max(rank) * sum(rows + cols) AS uniform_params, sum(rank * (rows + cols)) AS per_matrix_params,
       sum(rows * cols) AS full_params
FROM per_matrix
GROUP BY ALL;

-- matrix_snr: every matrix's (and 1-D weight's) Spectrum signal-to-noise ratio and Spectrum's weight type — the
--   module name after its layer index (`self_attn.q_proj`; the whole name outside the layers). The snr column,
--   or, for rows stored before it existed, the same definition computed here from the stored spectrum (quantiles by
--   linear interpolation, as numpy's and torch's). A 1-D weight (a norm) is Spectrum's 1 × d matrix: SNR 1.
--   Slices of fused 3-D expert tensors are left out (Spectrum sees one module there).
CREATE OR REPLACE VIEW matrix_snr AS
WITH m AS (
    SELECT a.model_id, a.revision, a.param_name, a.layer_index, a.block_type, a.kind, a.rows, a.cols, a.snr,
           a.max, a.min, s.singular_values AS sv,
           regexp_replace(a.param_name, '\.weight$', '') AS module
    FROM matrix_analysis a
    LEFT JOIN spectra s USING (model_id, revision, settings_id, matrix_key)
    WHERE a.status = 'ok' AND a.matrix_key = a.param_name AND a.param_name LIKE '%.weight'
      AND (a.kind = 'matrix' OR (a.kind = 'vector'))
), e AS (
    SELECT *, string_split(module, '.') AS parts,
           (list_aggregate(sv, 'quantile_cont', 0.75) - list_aggregate(sv, 'quantile_cont', 0.25)) / 1.349
               * (1 + sqrt(least(rows, cols) / greatest(rows, cols))) AS edge
    FROM m
), t AS (
    SELECT *, coalesce(list_position(list_transform(parts, lambda p: regexp_full_match(p, '[0-9]+')), true), 0)
           AS digit_at
    FROM e
)
SELECT model_id, revision, param_name, module, layer_index, block_type, kind,
       CASE WHEN digit_at = 0 THEN module ELSE array_to_string(parts[digit_at + 1:], '.') END AS weight_type,
       CASE
           WHEN snr IS NOT NULL THEN snr
           WHEN kind = 'vector' THEN CASE WHEN greatest(abs(max), abs(min)) > 0 THEN 1.0 END
           WHEN sv[1] > 0 THEN
               coalesce(list_sum(list_filter(sv, lambda x: x > edge)), 0.0)
               / CASE WHEN len(list_filter(sv, lambda x: x <= edge)) = 0 THEN 1.0
                      WHEN list_sum(list_filter(sv, lambda x: x <= edge)) = 0 THEN 0.0
                      ELSE list_sum(list_filter(sv, lambda x: x <= edge)) END
               / sv[1]
       END AS snr
FROM t;

-- plan_unfreeze(top_percent): Spectrum's choice of what to fine-tune — per model and weight type, the
--   int(n · top_percent / 100) modules of highest SNR (ties in layer order, as Spectrum's stable sort).
CREATE OR REPLACE MACRO plan_unfreeze(top_percent) AS TABLE
WITH r AS (
    SELECT *,
           row_number() OVER (PARTITION BY model_id, revision, weight_type
                              ORDER BY snr DESC NULLS LAST, layer_index NULLS LAST, param_name) AS place,
           count(*) OVER (PARTITION BY model_id, revision, weight_type) AS of_type
    FROM matrix_snr
)
SELECT model_id, revision, weight_type, module, param_name, layer_index, snr, place, of_type,
       place <= floor(of_type * top_percent / 100) AS unfrozen
FROM r;

-- plan_prune(target, epsilon): AlphaPruning's layer-wise sparsities (Lu et al., NeurIPS 2024) — every matrix of
--   the transformer layers gets a ratio mapped linearly from its heavy-tail alpha into [1 − ε, 1 + ε] (higher alpha:
--   pruned more), scaled so that the parameter-weighted mean sparsity is `target`.
CREATE OR REPLACE MACRO plan_prune(target, epsilon) AS TABLE
WITH m AS (
    SELECT model_id, revision, matrix_key, param_name, layer_index, block_type, alpha, rows * cols AS params
    FROM matrix_analysis
    WHERE kind = 'matrix' AND status = 'ok' AND layer_index IS NOT NULL AND alpha IS NOT NULL
), s AS (
    SELECT *, min(alpha) OVER w AS lo, max(alpha) OVER w AS hi
    FROM m WINDOW w AS (PARTITION BY model_id, revision)
), r AS (
    SELECT *, CASE WHEN hi > lo THEN (alpha - lo) / (hi - lo) ELSE 0.5 END * (2 * epsilon) + (1 - epsilon) AS ratio
    FROM s
)
SELECT model_id, revision, matrix_key, param_name, layer_index, block_type, alpha, params,
       ratio * target * sum(params) OVER w / sum(params * ratio) OVER w AS sparsity
FROM r WINDOW w AS (PARTITION BY model_id, revision);

-- plan_lowrank(energy): per matrix the rank that keeps `energy` of Σσ² (from the stored spectrum) and the parameters
--   a rank-r factorization W ≈ U·V (r · (m + n)) saves; a matrix whose factors would not be smaller stays dense.
CREATE OR REPLACE MACRO plan_lowrank(energy) AS TABLE
WITH u AS (
    SELECT a.model_id, a.revision, a.matrix_key, a.param_name, a.layer_index, a.block_type, a.rows, a.cols,
           unnest(s.singular_values) AS sigma, generate_subscripts(s.singular_values, 1) AS i
    FROM matrix_analysis a JOIN spectra s USING (model_id, revision, settings_id, matrix_key)
    WHERE a.kind = 'matrix' AND a.status = 'ok'
), c AS (
    SELECT *, sum(sigma * sigma) OVER (PARTITION BY model_id, revision, matrix_key ORDER BY i) AS kept
    FROM u
), t AS (  -- the total as the cumulative sum's own last value (as numpy's cumsum): energy 1 reaches it exactly
    SELECT *, max(kept) OVER (PARTITION BY model_id, revision, matrix_key) AS total FROM c
), k AS (
    SELECT model_id, revision, matrix_key, param_name, layer_index, block_type, rows, cols,
           coalesce(min(i) FILTER (WHERE kept >= energy * total AND total > 0), 0) AS rank
    FROM t GROUP BY ALL
)
SELECT *, rows * cols AS params, least(rank * (rows + cols), rows * cols) AS planned_params,
       rank * (rows + cols) < rows * cols AS factorize,
       rows * cols - least(rank * (rows + cols), rows * cols) AS saved
FROM k;

-- The plans at their usual settings, for a glance (the `plan` command takes any): unfreeze 50 %, prune to 50 %
-- sparsity with ε = 0.2, low rank at 90 % energy.
CREATE OR REPLACE VIEW unfreeze_plan AS SELECT * FROM plan_unfreeze(50);
CREATE OR REPLACE VIEW prune_plan AS SELECT * FROM plan_prune(0.5, 0.2);
CREATE OR REPLACE VIEW lowrank_plan AS SELECT * FROM plan_lowrank(0.9);
