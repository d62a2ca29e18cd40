"""cdk-nag 3: AwsSolutions and NIST 800-53 R5 run as CDK validation plugins.

Synth fails on any finding that is not acknowledged (warnings included): a pack reports
success only when it has no violations. Acknowledgements live next to the construct they
cover, each naming one finding id with a reason; docs/security/nag-acknowledgements.md
lists them all.
"""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, NagPack, NIST80053R5Checks


def nag_packs(app: App) -> list[NagPack]:
    return [AwsSolutionsChecks(app, verbose=True), NIST80053R5Checks(app, verbose=True)]


def enable_nag(app: App) -> None:
    Validations.of(app).add_plugins(*nag_packs(app))
