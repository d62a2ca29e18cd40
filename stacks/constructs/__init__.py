"""Constructs named by role. Keyword-only typed parameters; what they build is exposed as attributes."""
