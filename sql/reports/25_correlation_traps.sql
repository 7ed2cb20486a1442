-- title: Correlation traps: large elements that survive shuffling
-- shows: (submit --rmt) matrices whose element-wise shuffled copy still has eigenvalues beyond the random bulk
--        edge: a few unusually large weights (Martin & Mahoney's correlation traps, often from a learning rate
--        too large); where they are (row, column as stored) and their values, largest first. Inspect or clip
--        these entries; a trained layer without traps shuffles into a pure Marchenko–Pastur bulk.
-- draw: table
-- optional: true
-- needs: rmt_analysis
SELECT r.model_id, r.matrix_key, r.rand_num_spikes AS traps, round(r.max_rand_eval, 4) AS max_shuffled_eval,
       round(r.rand_bulk_max, 4) AS shuffled_bulk_edge,
       string_agg('(' || t.row_index || ', ' || t.col_index || ') = ' || round(t.value, 4), '; ' ORDER BY t.trap)
           FILTER (t.trap < 8) AS largest_entries
FROM rmt_analysis r
JOIN rmt_traps t USING (model_id, revision, settings_id, rmt_id, matrix_key)
WHERE list_contains($models, r.model_id) AND r.rand_num_spikes > 0
GROUP BY r.model_id, r.matrix_key, r.rand_num_spikes, r.max_rand_eval, r.rand_bulk_max
ORDER BY list_position($models, r.model_id), traps DESC, r.matrix_key
LIMIT 60;
