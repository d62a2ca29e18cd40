"""The demo resource API: per-user notes and profile behind OAuth access tokens (see docs/demo-api.md)."""
