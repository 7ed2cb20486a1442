-- done_embeddings.sql — embedding tensors already clustered for one (model, revision): not redone unless --force.
SELECT param_name FROM embedding_choice WHERE model_id = $model_id AND revision = $revision;
