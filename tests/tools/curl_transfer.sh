#!/usr/bin/env bash
# Drives one Siirto transfer from outside, with no Rust on the client side, as an e-service
# does: fetches the consent text with curl (GET /v1/consent-text, the words the student is
# shown), signs the student's authorization over its SHA-256 with Python (tests/tools/
# sign_jws.py, package `cryptography`), submits it with curl over mutual TLS, and polls
# GET /v1/transfers/{id} with curl until the transfer ends.
#
#   curl_transfer.sh --api https://127.0.0.1:8443 --cacert CA.pem --cert CLIENT.pem --key CLIENT.key \
#                    --issuer-key ISSUER.key --kid KID --iss ISSUER --aud GATEWAY_ID \
#                    --sub STUDENT --src SOURCE --dst DESTINATION [--scope "identity ..."] \
#                    [--purpose school-change] [--lang fi|sv|en] [--timeout SECONDS]
#
# With a development setup (`siirto pki init DIR`), the values are in DIR/siirto.toml and
# DIR/certs (the e-service's client certificate, the issuer key and its kid in the JWKS).
#
# Prints the submission answer and the final transfer JSON on stdout, progress on stderr.
# Exit status: 0 delivered; 1 the transfer failed or was cancelled, or the submission was
# refused; 2 bad usage; 3 a tool is missing; 4 timed out.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
scope="identity enrolment achievements"
purpose="school-change"
lang="fi"
timeout=60
api="" cacert="" cert="" key="" issuer_key="" kid="" iss="" aud="" sub="" src="" dst=""

usage() { sed -n '2,19p' "$0" >&2; exit 2; }

while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case "$1" in
    --api) api=$2 ;;
    --cacert) cacert=$2 ;;
    --cert) cert=$2 ;;
    --key) key=$2 ;;
    --issuer-key) issuer_key=$2 ;;
    --kid) kid=$2 ;;
    --iss) iss=$2 ;;
    --aud) aud=$2 ;;
    --sub) sub=$2 ;;
    --src) src=$2 ;;
    --dst) dst=$2 ;;
    --scope) scope=$2 ;;
    --purpose) purpose=$2 ;;
    --lang) lang=$2 ;;
    --timeout) timeout=$2 ;;
    *) usage ;;
  esac
  shift 2
done
for v in api cacert cert key issuer_key kid iss aud sub src dst; do
  [ -n "${!v}" ] || { echo "missing --${v//_/-}" >&2; usage; }
done
for tool in curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIPPED: $tool is not installed" >&2; exit 3; }
done

# JSON in and out through Python's json module: no quoting surprises in the shell.
json_get() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }

call() { # METHOD PATH [BODY] -> body, then the HTTP status on the last line
  local args=(-sS --max-time 10 --cacert "$cacert" --cert "$cert" --key "$key" -X "$1" -w '\n%{http_code}')
  [ $# -ge 3 ] && args+=(-H 'content-type: application/json' --data-binary "$3")
  curl "${args[@]}" "$api$2"
}

# The consent text the student is shown, and its hash, which the authorization carries.
query=$(python3 -c 'import sys,urllib.parse as u; print(u.urlencode(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' \
  src "$src" dst "$dst" scope "$scope" purpose "$purpose" lang "$lang")
text=$(call GET "/v1/consent-text?$query")
code=${text##*$'\n'}
text=${text%$'\n'*}
if [ "$code" != 200 ]; then
  echo "$text"; echo "consent text refused: HTTP $code" >&2; exit 1
fi
printf '%s' "$text" | json_get text >&2
consent_sha256=$(printf '%s' "$text" | json_get sha256)

claims=$(python3 -c 'import json,sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' \
  iss "$iss" aud "$aud" sub "$sub" src "$src" dst "$dst" scope "$scope" purpose "$purpose" \
  consent_sha256 "$consent_sha256" consent_lang "$lang")
status=0
token=$(python3 "$here/sign_jws.py" sign "--key=$issuer_key" --alg=ES256 "--kid=$kid" \
  --claims "$claims" --lifetime=300 --jti-random) || status=$?
if [ "$status" -ne 0 ]; then
  [ "$status" -eq 3 ] && exit 3
  echo "signing failed" >&2; exit 1
fi
body=$(python3 -c 'import json,sys; print(json.dumps({"authorization": sys.argv[1]}))' "$token")

answer=$(call POST /v1/transfers "$body")
code=${answer##*$'\n'}
answer=${answer%$'\n'*}
echo "$answer"
if [ "$code" != 202 ]; then
  echo "submission refused: HTTP $code" >&2
  exit 1
fi
id=$(printf '%s' "$answer" | json_get id)
echo "accepted transfer $id" >&2

deadline=$(( $(date +%s) + timeout ))
while :; do
  view=$(call GET "/v1/transfers/$id")
  code=${view##*$'\n'}
  view=${view%$'\n'*}
  [ "$code" = 200 ] || { echo "GET /v1/transfers/$id: HTTP $code" >&2; exit 1; }
  state=$(printf '%s' "$view" | json_get status)
  case "$state" in
    delivered) echo "$view"; echo "delivered" >&2; exit 0 ;;
    failed|cancelled) echo "$view"; echo "$state: $(printf '%s' "$view" | json_get reason)" >&2; exit 1 ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "$view"; echo "timed out in status $state" >&2; exit 4
  fi
  sleep 0.1
done
