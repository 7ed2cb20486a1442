-- run_finish.sql — final counters and status of a run.
UPDATE runs SET
    finished_at = current_timestamp, status = $status, matrices_total = $total, matrices_done = $done,
    matrices_failed = $failed, matrices_reused = $reused, bytes_done = $bytes, seconds = $seconds,
    ray_startup_s = $ray_startup_s, matrices_per_s = $mps, bytes_per_s = $bps, throughput = $throughput,
    summary = $summary, phases = $phases
WHERE run_id = $run_id;
