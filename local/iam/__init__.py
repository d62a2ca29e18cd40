"""Offline IAM for the local stack: policy evaluation and SigV4 signature checks.

`policy.py` decides whether the identity policies the app synthesizes allow a call; `sigv4.py` checks
that a request reaching a loopback stand-in was signed by a known key.
"""
