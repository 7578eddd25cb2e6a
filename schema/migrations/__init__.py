"""Versioned migrations (sqlite-utils `Migrations`) for the agent DB and the server archive."""
