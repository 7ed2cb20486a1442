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

-- looked_up(block_type): matrices whose rows are looked up one token at a time (token, position and token-type
--   embeddings, the output head tied to them) rather than trained as projections: every section that reads alpha as
--   over-/under-training (findings, the alpha flags, the random-matrix flags) leaves them out, by this one rule.
CREATE OR REPLACE MACRO looked_up(b) AS b IN ('embedding', 'position_embedding', 'token_type_embedding', 'output');

-- signed(x, digits): a difference as text with its sign (+0.23, −14.2) and never a negative zero; '0' when it
--   rounds to zero.
CREATE OR REPLACE MACRO signed(x, digits) AS CASE
    WHEN x IS NULL THEN NULL
    WHEN round(x, digits) = 0 THEN '0'
    WHEN x > 0 THEN '+' || round(x, digits)::VARCHAR
    ELSE '−' || round(-x, digits)::VARCHAR END;

-- esd_choice(models): the one matrix per model whose spectrum the ESD figures draw — chosen in the first model that
--   has a fitted matrix (full rank first, a down projection first, nearest the middle layer, then the lower layer,
--   the larger, the name: no ties), and the same matrix (by name) in every other model that has it, so that panels
--   side by side show the same matrix; a model without it gets its own choice by the same rule (same_as_first false).
CREATE OR REPLACE MACRO esd_choice(models) AS TABLE
WITH c AS (
    SELECT model_id, matrix_key, block_type, layer_index, numel, actual_rank = design_rank AS full_rank,
           max(layer_index) OVER (PARTITION BY model_id) / 2 AS middle
    FROM matrix_analysis
    WHERE list_contains(models, model_id) AND kind = 'matrix' AND status = 'ok' AND alpha IS NOT NULL
      AND layer_index IS NOT NULL
),
own AS (
    SELECT *, row_number() OVER (PARTITION BY model_id ORDER BY full_rank DESC, (block_type = 'down_proj') DESC,
                                 abs(layer_index - middle), layer_index, numel DESC, matrix_key) AS rn
    FROM c
),
first_choice AS (SELECT model_id, matrix_key FROM own WHERE rn = 1 ORDER BY list_position(models, model_id) LIMIT 1)
SELECT o.model_id, o.matrix_key, o.block_type, o.full_rank, f.model_id AS chosen_in,
       o.matrix_key = f.matrix_key AS same_as_first
FROM own o, first_choice f
QUALIFY row_number() OVER (PARTITION BY o.model_id ORDER BY (o.matrix_key = f.matrix_key) DESC, o.rn) = 1;

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

-- weightwatcher_details: WeightWatcher's analyze() DataFrame, one row per matrix analyzed with --rmt, under its column
--   names and conventions, so a notebook written for WeightWatcher reads it with a changed `read`:
--   name = longname = the module name (the weight's name without `.weight`; an expert slice keeps its [e]);
--   layer_id = the module's place among the checkpoint's module names in sorted order, from 0 (WeightWatcher's
--   numbering of a safetensors folder); a failed power-law fit is alpha = D = sigma = xmin = num_pl_spikes = -1 and
--   its alpha_weighted / log_alpha_norm use alpha = -1, as WeightWatcher's; warning = 'over-trained' below alpha 2,
--   'under-trained' above 6; norm = Σλ (‖W‖_F²), spectral_norm = λ_max. WeightWatcher skips matrices with fewer than
--   8 or more than 15,000 eigenvalues or a side over 50,000 (its defaults); tpa-dist analyzes them and says so in
--   ww_skipped (weightwatcher_summary leaves them out, as get_summary() never sees them).
CREATE OR REPLACE VIEW weightwatcher_details AS
WITH modules AS (
    SELECT model_id, revision, module, (dense_rank() OVER (PARTITION BY model_id, revision ORDER BY module)) - 1
        AS layer_id
    FROM (SELECT DISTINCT model_id, revision, regexp_replace(param_name, '\.(weight|bias)$', '') AS module
          FROM tensors)
),
fitted AS (
    SELECT r.*, ma.param_name, ma.layer_index, ma.block_type, ma.expert_index, ma.lambda_max, ma.log_norm,
           ma.log_spectral_norm, ma.stable_rank, ma.frobenius_norm,
           coalesce(CASE WHEN r.status = 'success' THEN r.alpha END, -1) AS ww_alpha,
           regexp_replace(r.matrix_key, '\.weight(\[[0-9]+\])?$', '\1') AS module_name
    FROM rmt_analysis r
    JOIN matrix_analysis ma USING (model_id, revision, settings_id, matrix_key)
)
SELECT
    f.model_id, f.revision, f.settings_id, f.rmt_id, f.matrix_key,
    m.layer_id,
    f.module_name AS name,
    f.module_name AS longname,
    f.layer_index, f.block_type, f.expert_index,
    'dense' AS layer_type,
    1 AS rf,
    true AS has_esd,
    f.N, f.M, f.Q, f.num_evals,
    f.frobenius_norm * f.frobenius_norm AS norm,
    f.log_norm,
    f.lambda_max AS spectral_norm,
    f.log_spectral_norm,
    f.lambda_max,
    f.stable_rank,
    f.sv_max, f.sv_min, f.matrix_rank, f.rank_loss, f.weak_rank_loss, f.entropy,
    f.fit,
    coalesce(f.status, 'failed') AS status,
    CASE WHEN f.ww_alpha < 2 THEN 'over-trained' WHEN f.ww_alpha > 6 THEN 'under-trained' ELSE '' END AS warning,
    f.ww_alpha AS alpha,
    CASE WHEN f.status = 'success' THEN f.xmin ELSE -1 END AS xmin,
    f.xmax,
    CASE WHEN f.status = 'success' THEN f.D ELSE -1 END AS D,
    CASE WHEN f.status = 'success' THEN f.sigma ELSE -1 END AS sigma,
    CASE WHEN f.status = 'success' THEN f.num_pl_spikes ELSE -1 END AS num_pl_spikes,
    CASE WHEN f.status = 'success' THEN f.alpha_weighted ELSE -f.log_spectral_norm END AS alpha_weighted,
    CASE WHEN f.status = 'success' THEN f.log_alpha_norm
         ELSE (SELECT log10(list_sum(list_transform(s.singular_values, lambda v: 1.0 / (v * v))))
               FROM spectra s
               WHERE s.model_id = f.model_id AND s.revision = f.revision AND s.settings_id = f.settings_id
                 AND s.matrix_key = f.matrix_key) END AS log_alpha_norm,
    f.tpl_lambda AS "Lambda",
    f.num_fingers, f.raw_alpha,
    f.num_spikes, f.sigma_mp, f.mp_softrank, f.bulk_min, f.bulk_max, f.W_scale,
    f.max_rand_eval, f.rand_distance, f.ww_softrank, f.ww_maxdist,
    f.rand_num_spikes, f.rand_num_spikes AS num_traps, f.rand_sigma_mp, f.rand_mp_softrank, f.rand_bulk_min,
    f.rand_bulk_max, f.rand_W_scale,
    f.detX_num, f.detX_num AS num_ERG_spikes, f.detX_val, f.detX_val_unrescaled,
    f.detX_num - coalesce(CASE WHEN f.status = 'success' THEN f.num_pl_spikes END, -1) AS ERG_gap,
    f.bulk_mean_vec_entropy, f.bulk_var_vec_entropy, f.tail_mean_vec_entropy, f.tail_var_vec_entropy,
    f.bulk_mean_loc_ratio, f.bulk_var_loc_ratio, f.tail_mean_loc_ratio, f.tail_var_loc_ratio,
    f.bulk_mean_part_ratio, f.bulk_var_part_ratio, f.tail_mean_part_ratio, f.tail_var_part_ratio,
    (f.M < 8 OR f.M > 15000 OR f.N > 50000) AS ww_skipped,
    f.seed, f.replicas, f.seconds
FROM fitted f
LEFT JOIN modules m
    ON m.model_id = f.model_id AND m.revision = f.revision
   AND m.module = regexp_replace(f.param_name, '\.(weight|bias)$', '');

-- weightwatcher_summary: WeightWatcher's get_summary() per model — the means of log_norm, alpha, alpha_weighted,
--   log_alpha_norm, log_spectral_norm, stable_rank and mp_softrank over the matrices WeightWatcher analyzes
--   (NOT ww_skipped), with its conventions (a failed fit's alpha = -1 counts), plus how many matrices each mean has.
CREATE OR REPLACE VIEW weightwatcher_summary AS
SELECT model_id, revision, settings_id, rmt_id,
       avg(log_norm) AS log_norm, avg(alpha) AS alpha, avg(alpha_weighted) AS alpha_weighted,
       avg(log_alpha_norm) AS log_alpha_norm, avg(log_spectral_norm) AS log_spectral_norm,
       avg(stable_rank) AS stable_rank, avg(mp_softrank) AS mp_softrank,
       count(*) AS num_layers, count(*) FILTER (warning = 'over-trained') AS num_over_trained,
       count(*) FILTER (warning = 'under-trained') AS num_under_trained, sum(num_traps) AS num_traps
FROM weightwatcher_details
WHERE NOT ww_skipped
GROUP BY model_id, revision, settings_id, rmt_id;

-- embedding_cluster_composition: per clustered embedding and cluster of its chosen k, how many tokens of each class
--   (subword, word_initial, digit, punctuation, latin, cjk, other_script; tpa_dist/checkpoint/token_classes.py)
CREATE OR REPLACE VIEW embedding_cluster_composition AS
SELECT model_id, revision, param_name, cluster, token_class AS "class", count(*) AS count
FROM embedding_assignments
WHERE cluster IS NOT NULL
GROUP BY ALL;

-- compare_to_first(models): every model of the list after the first (model_b) against the first (model_a) by block
--   type and relative depth (layer / last layer, in tenths, so that models of different depth line up): the mean
--   alpha, 90 % energy rank ratio and stable rank of each, their differences (b − a), and each model's layers in that
--   tenth. compare_models(a, b) is one pair; `tpa-dist compare A B` prints it, the report draws the differences.
CREATE OR REPLACE MACRO compare_to_first(models) AS TABLE
WITH m AS (
    SELECT model_id, block_type, layer_index, alpha, svd_90_percent_ratio AS r90, stable_rank,
           layer_index / greatest(max(layer_index) OVER (PARTITION BY model_id), 1) AS depth
    FROM matrix_analysis
    WHERE list_contains(models, model_id) AND kind = 'matrix' AND status = 'ok' AND layer_index IS NOT NULL
),
binned AS (
    SELECT model_id, block_type, least(floor(depth * 10), 9)::INTEGER AS tenth, avg(alpha) AS alpha,
           avg(r90) AS r90, avg(stable_rank) AS stable_rank,
           string_agg(DISTINCT layer_index::VARCHAR, ',' ORDER BY layer_index::VARCHAR) AS layers
    FROM m
    GROUP BY ALL
)
SELECT x.model_id AS model_a, y.model_id AS model_b, x.block_type, x.tenth / 10.0 AS depth_from,
       (x.tenth + 1) / 10.0 AS depth_to, x.layers AS layers_a, y.layers AS layers_b,
       x.alpha AS alpha_a, y.alpha AS alpha_b, y.alpha - x.alpha AS d_alpha,
       x.r90 AS r90_a, y.r90 AS r90_b, y.r90 - x.r90 AS d_r90,
       x.stable_rank AS stable_rank_a, y.stable_rank AS stable_rank_b, y.stable_rank - x.stable_rank AS d_stable_rank
FROM binned x
JOIN binned y ON x.block_type = y.block_type AND x.tenth = y.tenth AND x.model_id = models[1]
             AND y.model_id <> models[1]
ORDER BY list_position(models, y.model_id), block_rank(x.block_type), x.tenth;

CREATE OR REPLACE MACRO compare_models(a, b) AS TABLE
SELECT * EXCLUDE (model_a, model_b) FROM compare_to_first([a, b]);

-- cohort_profile(models): each model's profile — per block type, the median alpha, 90 % energy rank ratio and stable
--   rank of its matrices — as (model_id, block_type, metric, feature, value) rows; only features every profiled model
--   has, so that a family's models line up. The cohort sections (30–33) compare models by it.
CREATE OR REPLACE MACRO cohort_profile(models) AS TABLE
WITH p AS (
    SELECT model_id, block_type, median(alpha) AS alpha, median(svd_90_percent_ratio) AS r90,
           median(stable_rank) AS stable_rank
    FROM matrix_analysis
    WHERE list_contains(models, model_id) AND kind = 'matrix' AND status = 'ok'
    GROUP BY ALL
),
long AS (UNPIVOT p ON alpha, r90, stable_rank INTO NAME metric VALUE value)
SELECT model_id, block_type, metric, block_type || ' ' || metric AS feature, value
FROM long
WHERE isfinite(value)
QUALIFY count(*) OVER (PARTITION BY block_type, metric) = (SELECT count(DISTINCT model_id) FROM p);

-- cohort_z(models): every profile feature of every model as a robust z against the cohort:
--   (value − median) / (1.4826 · MAD), or 1.2533 × the mean absolute deviation when the MAD is 0; the median and the
--   MAD over the feature's distinct values (a census holds re-uploads and copies: each counts once, so a few
--   identical models cannot shrink the scale); 0 when every model has the same value.
CREATE OR REPLACE MACRO cohort_z(models) AS TABLE
WITH p AS (SELECT * FROM cohort_profile(models)),
v AS (SELECT DISTINCT feature, value FROM p),
c AS (SELECT feature, median(value) AS med FROM v GROUP BY feature),
s AS (
    SELECT feature, any_value(med) AS med,
           CASE WHEN median(abs(value - med)) > 0 THEN 1.4826 * median(abs(value - med))
                ELSE 1.2533 * avg(abs(value - med)) END AS scale
    FROM v JOIN c USING (feature)
    GROUP BY feature
)
SELECT p.model_id, p.block_type, p.metric, p.feature, p.value, s.med AS cohort_median,
       CASE WHEN s.scale > 0 THEN (p.value - s.med) / s.scale ELSE 0 END AS z
FROM p JOIN s USING (feature);
