-- title: How far each block can be factored: ranks at 90 % energy
-- shows: per model and block type, the rank each matrix needs to keep 90 % of its Σσ², how many matrices a
--        rank-r factorization (r · (m + n) parameters) makes smaller, and the parameters it saves (view
--        lowrank_plan; `tpa-dist plan lowrank --energy E` or `--budget F` writes the per-matrix plan).
-- draw: table
SELECT model_id, block_type, count(*) AS matrices, round(avg(rank), 1) AS mean_rank, max(rank) AS max_rank,
       count(*) FILTER (factorize) AS factorized, sum(params)::BIGINT AS params, sum(saved)::BIGINT AS saved,
       round(100.0 * sum(saved) / nullif(sum(params), 0), 1) AS saved_pct
FROM lowrank_plan
WHERE list_contains($models, model_id)
GROUP BY model_id, block_type
ORDER BY list_position($models, model_id), block_rank(block_type);
