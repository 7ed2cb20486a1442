-- title: Over training: metrics by checkpoint
-- shows: for checkpoints of one model (the models sharing the first model's matrices, in the order given): the
--        median alpha, stable rank, 90 % energy rank ratio and spectral norm of each block type's matrices,
--        against the checkpoint; one panel per metric.
-- draw: lines x=checkpoint y=value series=block_type facet=metric color=block_type sharey=false xticks=model_id
-- optional: true
WITH keys AS (
    SELECT model_id, string_agg(matrix_key, ',' ORDER BY matrix_key) AS k
    FROM matrix_analysis WHERE list_contains($models, model_id) AND kind = 'matrix' GROUP BY model_id
), family AS (
    SELECT model_id FROM keys
    WHERE k = (SELECT k FROM keys ORDER BY list_position($models, model_id) LIMIT 1)
), m AS (
    SELECT list_position($models, a.model_id) AS checkpoint, a.model_id, a.block_type,
           median(a.alpha) AS alpha, median(a.stable_rank) AS stable_rank,
           median(a.svd_90_percent_ratio) AS r90_ratio, median(a.spectral_norm) AS spectral_norm
    FROM matrix_analysis a JOIN family USING (model_id)
    WHERE a.kind = 'matrix' AND a.status = 'ok' AND a.layer_index IS NOT NULL
    GROUP BY a.model_id, a.block_type
)
SELECT checkpoint, model_id, block_type, metric, value,
       'checkpoint ' || checkpoint || ' = ' || model_id AS caption
FROM m UNPIVOT (value FOR metric IN (alpha AS 'alpha', stable_rank AS 'stable rank', r90_ratio AS 'r90 ratio',
                                    spectral_norm AS 'spectral norm'))
WHERE (SELECT count(*) FROM family) > 1
ORDER BY metric, block_rank(block_type), checkpoint;
