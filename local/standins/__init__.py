"""Loopback stand-ins the tests and benchmarks use besides the local stack's: the external API a tool calls,
Cognito-signed tokens with their JWKS endpoint, the provider's consent page for Chromium, and `serve` to run one alone."""
