"""The rep's local web UI: server-rendered pages over agent/service.py, served on
127.0.0.1 only by `fieldvault ui` / `fieldvault run`."""
