"""What a person reads: the summary, summary.json and plots, the printed table."""
