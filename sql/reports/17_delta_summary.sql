-- title: What fine-tuning changed (ΔW against the base)
-- shows: per tuned model and base: matrices compared, changed (ΔW ≠ 0) and unchanged, those not comparable (in
--        one model only or of different shapes), the relative update ‖ΔW‖_F / ‖W_base‖_F, the ΔW rank for 90 % of
--        the update's energy, intruder dimensions and the largest principal angle (degrees) of the top-r
--        subspaces.
-- draw: table
-- optional: true
-- needs: delta_analysis
SELECT model_id, base_model_id, count(*) FILTER (status = 'ok') AS compared,
       count(*) FILTER (status = 'ok' AND actual_rank > 0) AS changed,
       count(*) FILTER (status = 'ok' AND actual_rank = 0) AS unchanged,
       count(*) FILTER (status = 'skipped') AS not_comparable, count(*) FILTER (status = 'error') AS errors,
       round(avg(relative_update) FILTER (actual_rank > 0), 4) AS mean_relative_update,
       round(max(relative_update), 4) AS max_relative_update,
       round(median(energy_rank_90) FILTER (actual_rank > 0), 1) AS median_r90,
       sum(intruders) AS intruders, round(degrees(max(max_principal_angle)), 1) AS max_angle_deg
FROM delta_analysis
WHERE list_contains($models, model_id)
GROUP BY model_id, base_model_id
ORDER BY list_position($models, model_id), base_model_id;
