-- title: Empirical spectral density with its power-law fit
-- shows: the eigenvalues λ = σ² of one matrix per model (the middle layer's down_proj, else the largest
--        layer matrix) on log-log axes, with the fitted power law from xmin (λ ≤ 1e-5 dropped, as in the fit).
-- draw: esd value=eigenvalue series=series alpha=alpha xmin=xmin
WITH ranked AS (
    SELECT m.model_id, m.matrix_key, m.alpha, m.xmin, s.singular_values,
           row_number() OVER (PARTITION BY m.model_id ORDER BY (m.actual_rank = m.design_rank) DESC,
                              (m.block_type = 'down_proj') DESC,
                              abs(m.layer_index - (SELECT max(layer_index) FROM matrix_analysis x
                                                   WHERE x.model_id = m.model_id) / 2), m.numel DESC) AS rn
    FROM matrix_analysis m JOIN spectra s USING (model_id, revision, settings_id, matrix_key)
    WHERE list_contains($models, m.model_id) AND m.alpha IS NOT NULL AND m.layer_index IS NOT NULL
)
SELECT model_id || ' ' || matrix_key AS series, alpha, xmin, unnest(list_filter(list_transform(singular_values, lambda x: x * x), lambda x: x > 1e-5)) AS eigenvalue
FROM ranked WHERE rn = 1;
