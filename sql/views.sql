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
