"""What a researcher reads: the report (SQL sections → report.md and report.html with figures), the figures
themselves (matplotlib, drawn side by side in forked children), the console summary, and each model's embedding
files — all made from the database."""
