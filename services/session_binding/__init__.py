"""The session binding service: completes 3-legged OAuth only for the user (and browser) that started it."""
