"""The release's stage logic, callable without Prefect; flows/ and tasks/ orchestrate it."""
