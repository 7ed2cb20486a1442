-- title: Models
-- shows: architecture and shapes from config.json, parameter count, shards, revision.
-- draw: table
SELECT model_id, revision, architecture,
       coalesce(config->>'hidden_size', config->>'n_embd') AS hidden,
       coalesce(config->>'num_hidden_layers', config->>'n_layer') AS layers,
       config->>'intermediate_size' AS intermediate,
       coalesce(config->>'num_attention_heads', config->>'n_head') AS heads,
       config->>'num_key_value_heads' AS kv_heads,
       config->>'vocab_size' AS vocab, config->>'torch_dtype' AS dtype,
       num_params, num_shards, num_tensors
FROM models
WHERE list_contains($models, model_id) AND status = 'ok'
ORDER BY model_id;
