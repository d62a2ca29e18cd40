"""Stand-in for the parts of an Application Load Balancer's OIDC authentication the services see."""
