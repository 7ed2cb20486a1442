-- title: Every matrix's stored spectrum, for report.html's matrix picker
-- shows: one row per analyzed matrix of the reported models (latest revision and settings): where it sits, its
--        headline metrics and its whole singular-value spectrum; report/picker.py thins the spectrum for display
--        and bins its eigenvalues λ = σ² into the ESD.
SELECT m.model_id, m.matrix_key, m.block_type, m.layer_index, m.expert_index, m.rows, m.cols, m.alpha, m.xmin,
       m.stable_rank, m.svd_90_percent_ratio, s.singular_values
FROM matrix_analysis m JOIN spectra s USING (model_id, revision, settings_id, matrix_key)
WHERE list_contains($models, m.model_id)
ORDER BY m.layer_index NULLS FIRST, m.matrix_key, m.model_id;
