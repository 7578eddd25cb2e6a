"""The rep's agent: encrypted local store, outbox, sync client and CLI."""
