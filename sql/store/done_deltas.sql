-- done_deltas.sql — the ΔW pairs already stored (ok or skipped) for one (tuned, base, settings): not recomputed.
SELECT matrix_key
FROM delta_analysis
WHERE model_id = $model_id AND revision = $revision AND base_model_id = $base_model_id
      AND base_revision = $base_revision AND settings_id = $settings_id AND status IN ('ok', 'skipped');
