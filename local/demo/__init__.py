"""The local stack runner: `python -m local.demo`, and `DemoStack` for the end-to-end tests."""
