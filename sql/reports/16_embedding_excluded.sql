-- title: Embedding rows left out of the clustering
-- shows: per model and embedding, how many rows were not clustered and why (special tokens, [unusedNN]-style
--        reserved tokens, padding past the tokenizer's vocabulary, all-zero or never-trained rows), with examples.
-- draw: table
-- needs: embedding_assignments
SELECT model_id, param_name, excluded AS reason, count(*) AS rows,
       array_to_string(list_transform((list(coalesce(token, token_id::VARCHAR) ORDER BY token_id))[1:8],
                                      lambda t: '"' || t || '"'), ' ') AS examples
FROM embedding_assignments
WHERE list_contains($models, model_id) AND excluded IS NOT NULL
GROUP BY model_id, param_name, excluded
ORDER BY list_position($models, model_id), param_name, rows DESC;
