"""The CDK app's configuration, naming and assembly."""
