"""The results database: the driver's single-writer store (schema, transactional batches), the SQL sandbox every
user query runs in, queries and exports, the project's SQL files, the live progress of a running submit, and the
`status` text. DuckDB lives here."""
