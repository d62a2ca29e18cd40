"""Deploy tooling run around `cdk deploy` and `cdk destroy` (preflight, outputs, teardown) and after synth
(nag report, synth summary); the one seam to AWS is `deploy.aws_clients`. The CDK app never imports it."""
