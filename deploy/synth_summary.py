"""Prints each synthesized stack with its resource count (after `cdk synth`)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def summarize(outdir: Path) -> str:
    manifest = json.loads((outdir / "manifest.json").read_text())
    lines = []
    total = 0
    for name, artifact in sorted(manifest["artifacts"].items()):
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        template = json.loads((outdir / artifact["properties"]["templateFile"]).read_text())
        resources = template.get("Resources", {})
        kinds = Counter(r["Type"].split("::")[1] for r in resources.values())
        total += len(resources)
        top = ", ".join(f"{k} {n}" for k, n in kinds.most_common(4))
        lines.append(f"  {artifact['properties'].get('stackName', name):36} {len(resources):4} resources  ({top})")
    lines.append(f"  {'total':36} {total:4} resources")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")))
