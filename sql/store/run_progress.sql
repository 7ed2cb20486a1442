-- run_progress.sql — live counters of a run in flight, written with every stored batch.
UPDATE runs SET matrices_total = $total, matrices_done = $done, matrices_failed = $failed, bytes_done = $bytes
WHERE run_id = $run_id;
