-- title: Parameters by block type
-- shows: how each model's parameters divide between attention, MLP, experts, embeddings and the rest.
-- draw: table
SELECT model_id, block_type, count(*) AS tensors, sum(numel) AS params,
       round(100.0 * sum(numel) / sum(sum(numel)) OVER (PARTITION BY model_id), 2) AS percent
FROM tensors
WHERE list_contains($models, model_id)
GROUP BY model_id, block_type
ORDER BY model_id, params DESC;
