-- title: Findings
-- shows: what the measurements say, per model, written from the data: the most and least compressible block types
--        (mean 90 % energy rank ratio), the layers that stand out from their block type (alpha or r90 more than
--        2.5 robust deviations from the block's median), WeightWatcher's flags among the projections with the caveat
--        that applies, and rank-deficient matrices. Embeddings, position tables and the output head are not trained
--        like projections (their rows are looked up, one token at a time): they are left out of the flags.
-- draw: table
WITH m AS (
    SELECT model_id, matrix_key, layer_index, block_type, alpha, svd_90_percent_ratio AS r90, actual_rank,
           design_rank,
           block_type IN ('embedding', 'position_embedding', 'token_type_embedding', 'output') AS looked_up
    FROM matrix_analysis
    WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok'
),
blocks AS (
    SELECT model_id, block_type, avg(r90) AS r90, count(*) AS n
    FROM m WHERE NOT looked_up AND block_type NOT IN ('norm', 'bias', 'other') GROUP BY ALL
),
compressible AS (
    SELECT model_id, 1 AS ord, 'most compressible' AS finding,
           arg_min(block_type, r90) || ': 90 % of the energy in ' || round(100 * min(r90), 1)
           || ' % of the full rank on average; least: ' || arg_max(block_type, r90) || ' (' || round(100 * max(r90), 1)
           || ' %)' AS detail
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
)
SELECT model_id, finding, detail FROM (
    SELECT model_id, ord, finding, detail FROM compressible
    UNION ALL SELECT model_id, ord, finding, detail FROM top_outliers
    UNION ALL SELECT model_id, ord, finding, detail FROM flags
    UNION ALL SELECT model_id, ord, finding, detail FROM deficient
)
ORDER BY list_position($models, model_id), ord, finding, detail;
