"""The CDK app's configuration, naming, route table and cdk-nag packs (imports nothing from stacks/ or deploy/)."""
