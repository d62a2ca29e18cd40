#!/usr/bin/env python3
"""CDK entry point: validate config from context, build the stacks, run cdk-nag, synth."""

from __future__ import annotations

import sys

import aws_cdk as cdk

from cdk_app.assembly import build_stacks
from cdk_app.config import ConfigError, load_config
from cdk_app.nag import enable_nag


def main() -> None:
    app = cdk.App()
    try:
        config = load_config(app.node.get_all_context())
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        sys.exit(2)
    build_stacks(app, config)
    enable_nag(app)
    app.synth()


if __name__ == "__main__":
    main()
