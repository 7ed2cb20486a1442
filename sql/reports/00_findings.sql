-- title: Findings
-- shows: what the measurements say, written from the data. With several models it opens with what differs: each
--        model against its reference (its --base when that is in the report, else the first model), the matrices of
--        the same name that changed most (stable rank, alpha, 90 % energy rank ratio, Frobenius norm; largest
--        relative change first), the block types they belong to, ΔW's largest update where --base was analyzed, and
--        "no matrix differs" when every metric is equal; models without matrices of the same name are compared by
--        block type and depth. Then what holds for every model, said once ("all models"), then each model's own:
--        the most and least compressible block types (mean 90 % energy rank ratio), the layers that stand out from
--        their block type (alpha or r90 more than 2.5 robust deviations from the block's median), WeightWatcher's
--        flags among the projections with the caveat that applies, rank-deficient matrices, and the embedding's
--        clusters by the gap statistic's verdict with what shapes it (geometry, token classes). Embeddings,
--        position tables and the output head are not trained like projections (their rows are looked up, one token
--        at a time): they are left out of the flags (looked_up() in views.sql, the rule of every flag section).
-- draw: table
WITH m AS (
    SELECT model_id, matrix_key, layer_index, block_type, alpha, svd_90_percent_ratio AS r90, actual_rank,
           design_rank, stable_rank, frobenius_norm AS fro, looked_up(block_type) AS looked_up
    FROM matrix_analysis
    WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok'
),
-- ---- what differs: each model after the first against its reference ----
bases AS (
    SELECT model_id, min(base_model_id) AS base
    FROM delta_analysis
    WHERE list_contains($models, base_model_id) AND base_model_id <> model_id
    GROUP BY model_id
),
refs AS (
    SELECT x.model_id, coalesce(b.base, $models[1]) AS ref
    FROM (SELECT unnest($models[2:]) AS model_id) x LEFT JOIN bases b USING (model_id)
),
pairs AS (
    SELECT r.model_id, r.ref, b.matrix_key, b.block_type, a.stable_rank AS sr_a, b.stable_rank AS sr_b,
           a.alpha AS alpha_a, b.alpha AS alpha_b, a.r90 AS r90_a, b.r90 AS r90_b, a.fro AS fro_a, b.fro AS fro_b,
           greatest(coalesce(abs(b.stable_rank - a.stable_rank) / nullif(a.stable_rank, 0), 0),
                    coalesce(abs(b.alpha - a.alpha) / nullif(abs(a.alpha), 0), 0),
                    coalesce(abs(b.r90 - a.r90) / nullif(a.r90, 0), 0),
                    coalesce(abs(b.fro - a.fro) / nullif(a.fro, 0), 0),
                    CASE WHEN (a.alpha IS NULL) <> (b.alpha IS NULL) THEN 1 ELSE 0 END) AS change
    FROM refs r
    JOIN m a ON a.model_id = r.ref
    JOIN m b ON b.model_id = r.model_id AND b.matrix_key = a.matrix_key
),
compared AS (
    SELECT model_id, ref, count(*) AS n, count(*) FILTER (change > 1e-9) AS changed FROM pairs GROUP BY ALL
),
changed_matrices AS (
    SELECT model_id, 1 AS ord, change AS score, 'differs from ' || ref AS finding,
           matrix_key || ': ' || concat_ws(', ',
               CASE WHEN sr_b IS DISTINCT FROM sr_a THEN 'stable rank ' || round(sr_a, 2) || ' → ' || round(sr_b, 2)
                   || ' (' || signed(sr_b - sr_a, 2) || ')' END,
               CASE WHEN alpha_b IS DISTINCT FROM alpha_a THEN 'alpha ' || round(alpha_a, 3) || ' → '
                   || round(alpha_b, 3) || ' (' || signed(alpha_b - alpha_a, 3) || ')' END,
               CASE WHEN r90_b IS DISTINCT FROM r90_a THEN 'r90 ' || round(r90_a, 3) || ' → ' || round(r90_b, 3)
                   || ' (' || signed(r90_b - r90_a, 3) || ')' END,
               CASE WHEN fro_b IS DISTINCT FROM fro_a THEN 'Frobenius norm '
                   || signed(100 * (fro_b - fro_a) / nullif(fro_a, 0), 2) || ' %' END)
           || ' — the largest relative change ' || printf('%.3g', 100 * change) || ' %' AS detail
    FROM pairs
    WHERE change > 1e-9
    QUALIFY row_number() OVER (PARTITION BY model_id ORDER BY change DESC, matrix_key) <= 5
),
changed_blocks AS (
    SELECT model_id, 2 AS ord, 0 AS score, 'differs from ' || ref AS finding,
           'block types with changed matrices (largest mean change first): '
           || string_agg(block_type || ' ' || changed || ' of ' || n, ', ' ORDER BY mean_change DESC, block_type)
           AS detail
    FROM (SELECT model_id, ref, block_type, count(*) FILTER (change > 1e-9) AS changed, count(*) AS n,
                 avg(change) AS mean_change
          FROM pairs GROUP BY ALL)
    WHERE changed > 0
    GROUP BY model_id, ref
),
unchanged AS (
    SELECT model_id, 1 AS ord, 0 AS score, 'differs from ' || ref AS finding,
           'no matrix differs: all ' || n || ' matrices of the same name have equal stable rank, alpha, r90 and '
           || 'Frobenius norm' AS detail
    FROM compared WHERE changed = 0
),
by_depth AS (  -- no matrix of the same name (another architecture): block type and relative depth
    SELECT model_b AS model_id, 1 AS ord, abs(d_r90) AS score, 'differs from ' || model_a || ' (by block type and depth)'
           AS finding,
           block_type || ' at depth ' || depth_from || '–' || depth_to || ': r90 ' || round(r90_a, 3) || ' → '
           || round(r90_b, 3) || ' (' || signed(d_r90, 3) || '), alpha ' || signed(d_alpha, 3) || ', stable rank '
           || signed(d_stable_rank, 2) AS detail
    FROM compare_to_first($models)
    WHERE model_b NOT IN (SELECT model_id FROM compared) AND abs(d_r90) > 1e-9
    QUALIFY row_number() OVER (PARTITION BY model_b ORDER BY abs(d_r90) DESC, block_type, depth_from) <= 5
),
delta AS (  -- ΔW = model − its base, where --base analyzed it against the reference
    SELECT d.model_id, 3 AS ord, 0 AS score, 'differs from ' || d.base_model_id AS finding,
           'ΔW: ' || count(*) FILTER (d.actual_rank > 0) || ' of ' || count(*) || ' matrices changed; the largest '
           || 'relative update ' || arg_max(d.matrix_key, d.relative_update) || ' (‖ΔW‖/‖W‖ = '
           || printf('%.3g', max(d.relative_update)) || ', rank for 90 % of its energy '
           || arg_max(d.energy_rank_90, d.relative_update) || ', intruder dimensions '
           || coalesce(arg_max(d.intruders, d.relative_update)::VARCHAR, 'not measured') || ')' AS detail
    FROM delta_analysis d JOIN refs r ON r.model_id = d.model_id AND r.ref = d.base_model_id
    WHERE d.status = 'ok'
    GROUP BY d.model_id, d.base_model_id
    HAVING count(*) FILTER (d.actual_rank > 0) > 0
),
differences AS (
    SELECT * FROM changed_matrices
    UNION ALL SELECT * FROM changed_blocks
    UNION ALL SELECT * FROM unchanged
    UNION ALL SELECT * FROM by_depth
    UNION ALL SELECT * FROM delta
),
-- ---- each model's own findings ----
blocks AS (
    SELECT model_id, block_type, avg(r90) AS r90, count(*) AS n
    FROM m WHERE NOT looked_up AND block_type NOT IN ('norm', 'bias', 'other') GROUP BY ALL
),
compressible AS (
    SELECT model_id, 1 AS ord, 'most compressible' AS finding,
           CASE WHEN max(r90) - min(r90) < 1e-9 THEN 'every block type alike: 90 % of the energy in '
                || round(100 * min(r90), 1) || ' % of the full rank on average'
           ELSE first(block_type ORDER BY r90, block_rank(block_type)) || ': 90 % of the energy in '
                || round(100 * min(r90), 1) || ' % of the full rank on average; least: '
                || first(block_type ORDER BY r90 DESC, block_rank(block_type)) || ' (' || round(100 * max(r90), 1)
                || ' %)' END AS detail
    FROM blocks GROUP BY model_id HAVING count(*) > 1
),
stats AS (
    SELECT model_id, block_type, median(alpha) AS alpha_med, mad(alpha) AS alpha_mad, median(r90) AS r90_med,
           mad(r90) AS r90_mad, count(*) AS n
    FROM m WHERE NOT looked_up GROUP BY ALL
),
outliers AS (
    SELECT m.model_id, 2 AS ord, 'stands out (' || metric || ')' AS finding,
           m.matrix_key || ': ' || metric || ' ' || round(value, 3) || ' against its block''s median ' || round(med, 3)
           AS detail, abs(value - med) / spread AS score
    FROM m JOIN stats s USING (model_id, block_type),
         LATERAL (VALUES ('alpha', m.alpha, s.alpha_med, s.alpha_mad), ('r90', m.r90, s.r90_med, s.r90_mad))
             AS v(metric, value, med, spread)
    WHERE s.n >= 4 AND spread > 0 AND value IS NOT NULL AND abs(value - med) / spread > 2.5 * 1.4826
),
top_outliers AS (
    SELECT * EXCLUDE (score, rn) FROM (
        SELECT *, row_number() OVER (PARTITION BY model_id ORDER BY score DESC) AS rn FROM outliers
    ) WHERE rn <= 5
),
flags AS (
    SELECT model_id, 3 AS ord, 'WeightWatcher flags' AS finding,
           count(*) FILTER (alpha < 2) || ' projection(s) with alpha < 2 (over-trained?), '
           || count(*) FILTER (alpha > 6) || ' with alpha > 6 (under-trained?) of ' || count(*)
           || '; alpha is read this way for dense projections only, and small matrices (under ~100 singular values) '
           || 'fit it loosely' AS detail
    FROM m WHERE NOT looked_up AND alpha IS NOT NULL GROUP BY model_id
),
deficient AS (
    SELECT model_id, 4 AS ord, 'rank-deficient' AS finding,
           count(*) || ' matrix(es) below full rank, e.g. ' || string_agg(matrix_key, ', ' ORDER BY matrix_key)[:200]
           AS detail
    FROM m WHERE actual_rank < design_rank GROUP BY model_id
),
classes AS (
    SELECT model_id, param_name, token_class, count(*) / sum(count(*)) OVER (PARTITION BY model_id, param_name) AS share
    FROM embedding_assignments
    WHERE list_contains($models, model_id) AND cluster IS NOT NULL AND token_class IS NOT NULL
    GROUP BY model_id, param_name, token_class
),
class_text AS (
    SELECT model_id, param_name,
           string_agg(token_class || ' ' || round(100 * share, 1) || ' %', ', ' ORDER BY share DESC, token_class)
               AS composition
    FROM classes GROUP BY model_id, param_name
),
embedding AS (  -- the gap statistic's verdict, and what does shape the embedding: its geometry and its token classes
    SELECT c.model_id, 5 AS ord, 'embedding ' || c.param_name AS finding,
           coalesce(c.verdict_words, 'recommended k = ' || c.recommended_k)
           || '; what shapes it: mean cosine between tokens ' || round(g.mean_cosine, 3) || ', the top principal '
           || 'component ' || round(100 * g.top_pc_share, 1) || ' % of the variance, participation ratio '
           || round(g.participation_ratio, 1) || coalesce('; token classes: ' || t.composition, '') AS detail
    FROM embedding_choice c
    LEFT JOIN embedding_geometry g USING (model_id, revision, param_name)
    LEFT JOIN class_text t ON t.model_id = c.model_id AND t.param_name = c.param_name
    WHERE list_contains($models, c.model_id)
),
own AS (
    SELECT model_id, ord, finding, detail FROM compressible
    UNION ALL SELECT model_id, ord, finding, detail FROM embedding
    UNION ALL SELECT model_id, ord, finding, detail FROM top_outliers
    UNION ALL SELECT model_id, ord, finding, detail FROM flags
    UNION ALL SELECT model_id, ord, finding, detail FROM deficient
),
shared AS (  -- a finding true of every model (the same words) is said once
    SELECT ord, finding, detail FROM own
    GROUP BY ALL HAVING count(DISTINCT model_id) = len($models) AND len($models) > 1
)
SELECT model_id, finding, detail FROM (
    SELECT 0 AS part, list_position($models, model_id) AS pos, ord, score, model_id, finding, detail
    FROM differences
    UNION ALL
    SELECT 1, 0, ord, 0, 'all models', finding, detail FROM shared
    UNION ALL
    SELECT 2, list_position($models, o.model_id), o.ord, 0, o.model_id, o.finding, o.detail
    FROM own o ANTI JOIN shared s ON o.ord = s.ord AND o.finding = s.finding AND o.detail = s.detail
)
ORDER BY part, pos, ord, score DESC, finding, detail;
