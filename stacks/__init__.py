"""CloudFormation stacks: each composes named constructs from `stacks.constructs`."""
