-- done_rmt.sql — the matrix keys with an rmt_analysis row for one (model, revision, settings, rmt settings).
-- Used by submit --rmt to resume: a matrix is done only with both its matrix_analysis and rmt_analysis rows.
SELECT matrix_key
FROM rmt_analysis
WHERE model_id = $model_id AND revision = $revision AND settings_id = $settings_id AND rmt_id = $rmt_id;
