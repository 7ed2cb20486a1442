-- title: Heavy-tail summary: distribution of alpha
-- shows: the histogram of power-law alphas of all matrices, per model (2 ≤ alpha ≤ 6 is WeightWatcher's
--        well-trained range).
-- draw: histogram value=alpha series=model_id
SELECT model_id, alpha
FROM matrix_analysis
WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok' AND alpha IS NOT NULL;
