-- done_matrices.sql — the matrix keys already stored successfully for one (model, revision, settings).
-- Used by submit to resume: these are not recomputed unless --force.
SELECT matrix_key
FROM matrix_analysis
WHERE model_id = $model_id AND revision = $revision AND settings_id = $settings_id AND status = 'ok';
