"""Tests of the demo resource API (services/demo_api)."""
