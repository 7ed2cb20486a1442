-- title: Over training: metrics by checkpoint
-- shows: for checkpoints of one training run, in the order given — declared by --base previous (each model's ΔW
--        against the one before it; a job file's ordered list with base = "previous" too) or revisions of one Hub
--        repository — the median alpha, stable rank, 90 % energy rank ratio and spectral norm of each block type's
--        matrices (those sharing the first checkpoint's matrices), against the checkpoint; one panel per metric.
--        Models that are not declared checkpoints of one run are not drawn as a time series.
-- draw: lines x=checkpoint y=value series=block_type facet=metric color=block_type sharey=false xticks=model_id
-- optional: true
-- needs: models>1
WITH chain AS (  -- --base previous: every model after the first has ΔW against the one before it
    SELECT count(DISTINCT model_id) AS linked FROM delta_analysis
    WHERE list_position($models, model_id) > 1
      AND list_position($models, base_model_id) = list_position($models, model_id) - 1
), repo AS (  -- revisions of one Hub repository (the cache's models--ORG--NAME folder of every model)
    SELECT count(DISTINCT r) AS repos, count(*) FILTER (r = '') AS elsewhere
    FROM (SELECT model_id, max(regexp_extract(source_path, 'models--([^/]+)/snapshots/', 1)) AS r
          FROM models WHERE list_contains($models, model_id) GROUP BY model_id)
), checkpoints AS (
    SELECT len($models) > 1 AND ((SELECT linked FROM chain) = len($models) - 1
                                 OR (SELECT repos = 1 AND elsewhere = 0 FROM repo)) AS declared
), keys AS (
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
WHERE (SELECT count(*) FROM family) > 1 AND (SELECT declared FROM checkpoints)
ORDER BY metric, block_rank(block_type), checkpoint;
