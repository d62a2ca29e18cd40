"""`make verify`: checks a deployed stack (or `make demo`) for what only the real services can answer.

`python -m deploy.verify --url URL ...` or, without `--url`, from the stack outputs (the same cdk
arguments as `make deploy`). Modules: `target` (the inputs, as data), `sources` (where they come
from), `http_checks`, `agentcore_checks`, `browser_checks`, `users` (the temporary person),
`checks` (their order), `report`.
"""
