-- title: Energy ranks by block type
-- shows: the fraction of directions needed for 50 / 90 / 95 / 99 % of the energy, averaged per block type.
-- draw: table
SELECT model_id, block_type, count(*) AS matrices,
       round(avg(energy_rank_50 / design_rank), 3) AS r50, round(avg(energy_rank_90 / design_rank), 3) AS r90,
       round(avg(energy_rank_95 / design_rank), 3) AS r95, round(avg(energy_rank_99 / design_rank), 3) AS r99,
       round(avg(stable_rank), 1) AS stable_rank, round(avg(effective_rank), 1) AS effective_rank
FROM matrix_analysis
WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok'
GROUP BY model_id, block_type
ORDER BY list_position($models, model_id), block_rank(block_type), block_type;
