-- insert_embedding.sql — one embedding analysis (Arrow tables emb_sweep, emb_choice, emb_clusters,
-- emb_assignments, emb_geometry, emb_gap, emb_projection), stored in one transaction by the store; a k or a row
-- an earlier analysis of the same matrix had and this one has not is removed, never left beside it.
INSERT OR REPLACE INTO embedding_sweep BY NAME SELECT * FROM emb_sweep;
INSERT OR REPLACE INTO embedding_choice BY NAME SELECT * FROM emb_choice;
INSERT OR REPLACE INTO embedding_clusters BY NAME SELECT * FROM emb_clusters;
INSERT OR REPLACE INTO embedding_assignments BY NAME SELECT * FROM emb_assignments;
INSERT OR REPLACE INTO embedding_geometry BY NAME SELECT * FROM emb_geometry;
DELETE FROM embedding_gap g WHERE EXISTS (
    SELECT 1 FROM emb_choice c
    WHERE c.model_id = g.model_id AND c.revision = g.revision AND c.param_name = g.param_name
);
INSERT INTO embedding_gap BY NAME SELECT * FROM emb_gap;
DELETE FROM embedding_projection p WHERE EXISTS (
    SELECT 1 FROM emb_choice c
    WHERE c.model_id = p.model_id AND c.revision = p.revision AND c.param_name = p.param_name
);
INSERT INTO embedding_projection BY NAME SELECT * FROM emb_projection;
