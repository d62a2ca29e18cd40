"""Service code, packaged into container images. Never imports stacks/, cdk_app/ or local/."""
