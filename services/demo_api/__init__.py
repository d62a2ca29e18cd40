"""The demo resource API: per-user notes, tasks and profile behind OAuth access tokens (see docs/demo-api.md)."""
