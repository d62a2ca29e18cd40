"""Code both services share (identity verification, settings, clients, headers, logging)."""
