#!/usr/bin/env python3
"""Make keys and sign JWS compact tokens without any Rust code: an independent signer for
Siirto's tests and for driving a gateway from outside (e.g. with curl).

Needs only the `cryptography` package (pip install cryptography).

  sign_jws.py keygen --type ec|ed25519|rsa --kid KID --key-out key.pem --jwks-out jwks.json [--append]
      Writes a PKCS#8 PEM private key and a JWKS with its public key (--append adds the key
      to an existing JWKS).
  sign_jws.py jwks --key key.pem --kid KID
      Prints the public JWKS of a private key.
  sign_jws.py sign --key key.pem --alg ES256|EdDSA|RS256|PS256 --kid KID [--typ TYP]
                   (--claims JSON | --claims-file FILE) [--header JSON] [--now SECS]
                   [--lifetime SECS] [--jti-random]
      Prints the compact JWS. --lifetime sets iat (to --now, default the clock) and exp;
      --jti-random sets a random jti; --header adds or overrides header members.
  sign_jws.py sign --alg HS256 --secret-file FILE ...   (key-confusion tokens, for negative tests)
  sign_jws.py sign --alg none ...                       (unsigned tokens, for negative tests)

Exit status: 0 on success, 2 on bad usage, 3 when `cryptography` is missing.
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:  # pragma: no cover - reported to the caller
    print("SKIPPED: python module `cryptography` is not installed", file=sys.stderr)
    sys.exit(3)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def int_b64u(n: int, length: int = 0) -> str:
    length = max(length, (n.bit_length() + 7) // 8)
    return b64u(n.to_bytes(length, "big"))


def public_jwk(private_key, kid: str) -> dict:
    pub = private_key.public_key()
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if private_key.curve.name != "secp256r1":
            raise SystemExit("only P-256 EC keys are supported")
        nums = pub.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": int_b64u(nums.x, 32),
                "y": int_b64u(nums.y, 32), "kid": kid, "use": "sig"}
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw), "kid": kid, "use": "sig"}
    if isinstance(private_key, rsa.RSAPrivateKey):
        nums = pub.public_numbers()
        return {"kty": "RSA", "n": int_b64u(nums.n), "e": int_b64u(nums.e), "kid": kid,
                "use": "sig"}
    raise SystemExit("unsupported key type")


def load_key(path: str):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def keygen(args) -> None:
    if args.type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif args.type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with open(args.key_out, "wb") as f:
        f.write(pem)
    jwk = public_jwk(key, args.kid)
    if args.alg:
        jwk["alg"] = args.alg
    jwks = {"keys": []}
    if args.append:
        try:
            with open(args.jwks_out, encoding="utf-8") as f:
                jwks = json.load(f)
        except FileNotFoundError:
            pass
    jwks["keys"].append(jwk)
    with open(args.jwks_out, "w", encoding="utf-8") as f:
        json.dump(jwks, f, indent=2)
        f.write("\n")


def sign_bytes(alg: str, key, secret: bytes, message: bytes) -> bytes:
    if alg == "none":
        return b""
    if alg == "HS256":
        return hmac.new(secret, message, hashlib.sha256).digest()
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return key.sign(message)
    if alg == "RS256":
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if alg == "PS256":
        return key.sign(message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                             salt_length=32), hashes.SHA256())
    raise SystemExit(f"unsupported alg {alg}")


def sign(args) -> None:
    if args.claims_file:
        with open(args.claims_file, encoding="utf-8") as f:
            claims = json.load(f)
    elif args.claims:
        claims = json.loads(args.claims)
    else:
        raise SystemExit("give --claims or --claims-file")
    now = args.now if args.now is not None else int(time.time())
    if args.lifetime is not None:
        claims["iat"] = now
        claims["exp"] = now + args.lifetime
    if args.jti_random:
        claims["jti"] = str(uuid.uuid4())
    header = {"alg": args.alg, "typ": args.typ}
    if args.kid:
        header["kid"] = args.kid
    if args.header:
        header.update(json.loads(args.header))
    header = {k: v for k, v in header.items() if v is not None}
    key = load_key(args.key) if args.alg not in ("none", "HS256") else None
    secret = b""
    if args.alg == "HS256":
        if not args.secret_file:
            raise SystemExit("HS256 needs --secret-file")
        with open(args.secret_file, "rb") as f:
            secret = f.read()
    signing_input = (b64u(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64u(json.dumps(claims, separators=(",", ":")).encode()))
    signature = sign_bytes(args.alg, key, secret, signing_input.encode("ascii"))
    print(signing_input + "." + b64u(signature))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("--type", choices=["ec", "ed25519", "rsa"], required=True)
    k.add_argument("--kid", required=True)
    k.add_argument("--key-out", required=True)
    k.add_argument("--jwks-out", required=True)
    k.add_argument("--append", action="store_true")
    k.add_argument("--alg", help="also write this alg into the JWK")
    k.add_argument("--bits", type=int, default=2048)
    j = sub.add_parser("jwks")
    j.add_argument("--key", required=True)
    j.add_argument("--kid", required=True)
    s = sub.add_parser("sign")
    s.add_argument("--key")
    s.add_argument("--alg", required=True)
    s.add_argument("--kid")
    s.add_argument("--typ", default="siirto-authz+jwt")
    s.add_argument("--claims")
    s.add_argument("--claims-file")
    s.add_argument("--header", help="JSON object merged into the header (null removes)")
    s.add_argument("--secret-file")
    s.add_argument("--now", type=int)
    s.add_argument("--lifetime", type=int)
    s.add_argument("--jti-random", action="store_true")
    args = p.parse_args()
    if args.command == "keygen":
        keygen(args)
    elif args.command == "jwks":
        print(json.dumps({"keys": [public_jwk(load_key(args.key), args.kid)]}, indent=2))
    else:
        if args.alg not in ("none", "HS256") and not args.key:
            raise SystemExit("--key is required")
        sign(args)


if __name__ == "__main__":
    main()
