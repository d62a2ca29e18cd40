"""The Lambda handler of the service this image holds: `services.<APP_SERVICE>.main.handler`, with APP_SERVICE
baked into the image by services/Dockerfile. It costs one environment read and the import of the service's main
module, the import Lambda would make anyway for that handler path; nothing else runs here."""

from __future__ import annotations

import importlib
import os
from typing import Any

SERVICE_VARIABLE = "APP_SERVICE"  # set by the Dockerfile's lambda stage, never by the function's configuration

handler: Any = importlib.import_module(f"services.{os.environ[SERVICE_VARIABLE]}.main").handler
