-- upsert_settings.sql — the analysis settings a settings_id stands for.
INSERT OR REPLACE INTO settings VALUES ($settings_id, $settings);
