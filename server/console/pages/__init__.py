"""The console's pages, one module per concept; each has a `router` (paths relative
to /console) and optionally `MENU` (menu entries). server/console/__init__.py finds
them all, so adding a page touches no shared file."""
