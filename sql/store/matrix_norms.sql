-- matrix_norms.sql — ‖W‖_F and ‖W‖₂ of every matrix already analyzed for one (model, revision, settings).
-- Used when ΔW is planned against a base analyzed before: its stored norms give relative_update and
-- spectral_update, so a spectra-only ΔW pass needs no Gram of W_base.
SELECT matrix_key, frobenius_norm, spectral_norm
FROM matrix_analysis
WHERE model_id = $model_id AND revision = $revision AND settings_id = $settings_id AND status = 'ok'
      AND kind = 'matrix' AND frobenius_norm IS NOT NULL AND spectral_norm IS NOT NULL;
