-- upsert_model.sql — one model (local folder, synth: preset or Hub repo at a revision).
INSERT OR REPLACE INTO models VALUES (
    $model_id, $revision, $source_path, $architecture, $config, $config_error,
    $num_shards, $num_tensors, $num_params, $status, $error, $run_id);
