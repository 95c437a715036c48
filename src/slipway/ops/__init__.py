"""Operations: what serves now (status), what happened (history), where a version came from (why), and
the audited rollback of the serving model. Read-only commands import only the registry they need."""
