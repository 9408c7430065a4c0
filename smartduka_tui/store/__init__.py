"""Local storage: aiosqlite schema and repositories, the audit log and the credential vault."""
