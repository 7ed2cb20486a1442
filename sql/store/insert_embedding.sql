-- insert_embedding.sql — one embedding analysis (Arrow tables emb_sweep, emb_choice, emb_clusters,
-- emb_assignments), stored in one transaction by the store.
INSERT OR REPLACE INTO embedding_sweep BY NAME SELECT * FROM emb_sweep;
INSERT OR REPLACE INTO embedding_choice BY NAME SELECT * FROM emb_choice;
INSERT OR REPLACE INTO embedding_clusters BY NAME SELECT * FROM emb_clusters;
INSERT OR REPLACE INTO embedding_assignments BY NAME SELECT * FROM emb_assignments;
