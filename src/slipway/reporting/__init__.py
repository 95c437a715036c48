"""Human-readable renderings of stage results (Markdown for Prefect artifacts and reports)."""
