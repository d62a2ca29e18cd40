#!/usr/bin/env bash
# Smoke check after a deploy (run by .github/workflows/deploy.yml, or by hand):
#   1. GET /health answers 200 through the ALB (the one route without sign-in);
#   2. GET /oauth2/session-binding without a sign-in cookie is answered by the ALB itself with a
#      302 to the Cognito hosted UI, so the request never reaches the session binding service.
# Usage: tools/smoke-check.sh https://agent.example.org/
# SMOKE_ATTEMPTS and SMOKE_DELAY_SECONDS bound the wait for /health (DNS and targets settling).
set -euo pipefail

base="${1:?usage: tools/smoke-check.sh AGENT_URL}"
base="${base%/}"
attempts="${SMOKE_ATTEMPTS:-20}"
delay="${SMOKE_DELAY_SECONDS:-15}"
# Cognito's prefix domains (https://<prefix>.auth.<region>.amazoncognito.com) and the ALB's authorize call.
sign_in='^https://[a-z0-9-]+\.auth\.[a-z0-9-]+\.amazoncognito\.com/oauth2/authorize\?(.*&)?client_id='

curl_status() {
  # "<status> <redirect target>"; "000 " when the request failed (DNS, TLS, timeout).
  curl --silent --show-error --output /dev/null --max-time 10 --write-out '%{http_code} %{redirect_url}' "$1" || true
}

status=""
for ((i = 1; i <= attempts; i++)); do
  read -r status _ <<<"$(curl_status "$base/health")"
  if [ "$status" = 200 ]; then
    break
  fi
  echo "GET $base/health: ${status:-no answer} (attempt $i of $attempts)" >&2
  if [ "$i" -lt "$attempts" ]; then
    sleep "$delay"
  fi
done
if [ "$status" != 200 ]; then
  echo "smoke check failed: GET $base/health answered ${status:-nothing}, expected 200" >&2
  exit 1
fi
echo "ok: GET /health answered 200"

binding="$base/oauth2/session-binding?session_id=urn:ietf:params:oauth:request_uri:smoke"
read -r status location <<<"$(curl_status "$binding")"
if [ "$status" != 302 ] || [[ ! "${location:-}" =~ $sign_in ]]; then
  echo "smoke check failed: GET $binding without sign-in answered ${status:-nothing} ${location:-(no redirect)};" \
    "expected the ALB's 302 to the Cognito sign-in page" >&2
  exit 1
fi
echo "ok: GET /oauth2/session-binding without sign-in is redirected to Cognito sign-in (${location%%\?*})"
