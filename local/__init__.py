"""Local stand-ins for the AWS services the pattern uses, so the whole flow runs and is tested offline.

Production code never imports this package; it reaches the stand-ins through configuration only
(endpoint URLs, key URLs), exactly as it reaches the real services.
"""
