-- title: Models
-- shows: architecture and shapes from config.json, parameter count (buffers such as position ids not counted),
--        shards, revision; dtype from config.json's torch_dtype, else the dtype most of the weights are stored in.
-- draw: table
SELECT model_id, revision, architecture,
       coalesce(config->>'hidden_size', config->>'n_embd') AS hidden,
       coalesce(config->>'num_hidden_layers', config->>'n_layer') AS layers,
       config->>'intermediate_size' AS intermediate,
       coalesce(config->>'num_attention_heads', config->>'n_head') AS heads,
       config->>'num_key_value_heads' AS kv_heads,
       config->>'vocab_size' AS vocab,
       coalesce(config->>'torch_dtype', config->>'dtype',
                (SELECT lower(t.dtype) FROM tensors t
                 WHERE t.model_id = models.model_id AND t.revision = models.revision
                 GROUP BY t.dtype ORDER BY sum(t.numel) DESC LIMIT 1)) AS dtype,
       num_params, num_shards, num_tensors
FROM models
WHERE list_contains($models, model_id) AND status = 'ok'
ORDER BY model_id;
