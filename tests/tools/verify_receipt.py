#!/usr/bin/env python3
"""Verify a Siirto transfer receipt (or a check's attestation) with an independent JOSE
library (jwcrypto).

  verify_receipt.py --jwks gateway-receipts.jwks.json (--token JWS | --token-file FILE)
                    [--typ siirto-attestation+jwt]

Checks the EdDSA signature with the key the header's `kid` names, that `kid` is the key's
RFC 7638 thumbprint and that `typ` is siirto-receipt+jwt (or --typ); prints
{"header": {...}, "claims": {...}} as JSON. Exit 0 when valid, 1 when not, 3 when jwcrypto
is missing (pip install jwcrypto).
"""
import argparse
import json
import sys

try:
    from jwcrypto import jwk, jws
except ImportError:  # pragma: no cover - reported to the caller
    print("SKIPPED: python module `jwcrypto` is not installed", file=sys.stderr)
    sys.exit(3)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--jwks", required=True)
    p.add_argument("--token")
    p.add_argument("--token-file")
    p.add_argument("--typ", default="siirto-receipt+jwt")
    args = p.parse_args()
    token = args.token
    if args.token_file:
        with open(args.token_file, encoding="ascii") as f:
            token = f.read().strip()
    with open(args.jwks, encoding="utf-8") as f:
        keys = jwk.JWKSet.from_json(f.read())
    obj = jws.JWS()
    try:
        obj.deserialize(token)
        header = obj.jose_header
        if header.get("typ") != args.typ:
            raise ValueError(f"typ is {header.get('typ')!r}")
        if header.get("alg") != "EdDSA":
            raise ValueError(f"alg is {header.get('alg')!r}")
        key = keys.get_key(header.get("kid"))
        if key is None:
            raise ValueError("no key with the header's kid")
        if key.thumbprint() != header["kid"]:
            raise ValueError("kid is not the key's RFC 7638 thumbprint")
        obj.verify(key, alg="EdDSA")
    except Exception as e:  # jwcrypto raises several kinds
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"header": header, "claims": json.loads(obj.payload)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
