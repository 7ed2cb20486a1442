-- title: LoRA plan: the adapter rank the update needs
-- shows: per tuned model, block type and share of the update's energy to capture: the largest ΔW rank needed
--        (one uniform LoRA rank for the block type) and the mean, and the adapter parameters a uniform-rank
--        LoRA and a per-matrix-rank LoRA would need — against the block type's full parameters (view lora_plan).
-- draw: table
-- optional: true
-- needs: delta_analysis
SELECT model_id, base_model_id, block_type, energy, matrices, unchanged, uniform_rank, mean_rank,
       uniform_params, per_matrix_params, full_params,
       round(100.0 * per_matrix_params / nullif(uniform_params, 0), 1) AS per_matrix_pct_of_uniform
FROM lora_plan
WHERE list_contains($models, model_id)
ORDER BY list_position($models, model_id), base_model_id, block_rank(block_type), energy;
