-- title: Cohort outliers
-- shows: (a cohort: more than 16 models) the models whose profile — per block type, the median alpha, 90 % energy rank
--        ratio and stable rank of its matrices — is farthest from the cohort's. Each feature is a robust z against
--        the cohort, (value − median) / (1.4826 · MAD) over the feature's distinct values (copies count once); the score is the root mean square of a model's z, and a model
--        is an outlier when some feature's |z| exceeds 3.5 (Iglewicz & Hoaglin). Listed: the outliers and the 10
--        highest scores, with the three features farthest from the cohort and the matrix that moves the first one
--        most (its value against the cohort's median of the same matrix).
-- draw: table
-- optional: true
-- needs: models>16
WITH z AS (SELECT * FROM cohort_z($models)),
score AS (
    SELECT model_id, sqrt(avg(z * z)) AS score, max(abs(z)) AS max_abs_z, count(*) AS features
    FROM z GROUP BY model_id
),
shown AS (
    SELECT *, row_number() OVER (ORDER BY score DESC, list_position($models, model_id)) AS rank
    FROM score
    QUALIFY max_abs_z > 3.5 OR rank <= 10
),
ranked AS (
    SELECT z.*, row_number() OVER (PARTITION BY z.model_id ORDER BY abs(z.z) DESC, z.feature) AS n
    FROM z SEMI JOIN shown USING (model_id)
),
farthest AS (
    SELECT model_id, string_agg(feature || ' z ' || signed(z, 1), ', ' ORDER BY n) AS farthest_features
    FROM ranked WHERE n <= 3 GROUP BY model_id
),
worst AS (SELECT model_id, block_type, metric FROM ranked WHERE n = 1),
matrices AS (
    SELECT m.model_id, m.matrix_key, m.block_type, w.metric,
           CASE w.metric WHEN 'alpha' THEN m.alpha WHEN 'r90' THEN m.svd_90_percent_ratio ELSE m.stable_rank END
               AS value
    FROM matrix_analysis m
    JOIN (SELECT DISTINCT block_type, metric FROM worst) w USING (block_type)
    WHERE list_contains($models, m.model_id) AND m.kind = 'matrix' AND m.status = 'ok'
),
by_key AS (SELECT *, median(value) OVER (PARTITION BY matrix_key, metric) AS key_median FROM matrices),
moved AS (
    SELECT b.model_id, b.matrix_key || ' ' || b.metric || ' ' || round(b.value, 3) || ' (cohort median '
               || round(b.key_median, 3) || ')' AS matrix
    FROM by_key b JOIN worst w ON b.model_id = w.model_id AND b.block_type = w.block_type AND b.metric = w.metric
    WHERE isfinite(b.value)
    QUALIFY row_number() OVER (PARTITION BY b.model_id ORDER BY abs(b.value - b.key_median) DESC, b.matrix_key) = 1
)
SELECT s.rank, s.model_id, round(s.score, 2) AS score, round(s.max_abs_z, 1) AS max_abs_z,
       s.max_abs_z > 3.5 AS outlier, f.farthest_features, mv.matrix AS matrix_that_moves_it_most, s.features
FROM shown s
LEFT JOIN farthest f USING (model_id)
LEFT JOIN moved mv USING (model_id)
WHERE len($models) > 16
ORDER BY s.rank;
