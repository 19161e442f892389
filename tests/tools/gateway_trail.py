#!/usr/bin/env python3
"""Checks a running Siirto gateway's audit trail from outside, with code that shares nothing
with the gateway: Python's ssl for mutual TLS, hashlib + `cryptography` (through
verify_proofs.py, written from RFC 9162 and the C2SP specs) for checkpoints and proofs, and the
`jwcrypto` JOSE library for receipts.

  gateway_trail.py proofs  --url URL --ca CA --cert OPERATOR.pem --key OPERATOR.key
  gateway_trail.py receipt --url URL --ca CA --cert ESERVICE.pem --key ESERVICE.key
                           --operator-cert OPERATOR.pem --operator-key OPERATOR.key --transfer ID

proofs: fetches the public key and the latest checkpoint and verifies its signature; reads
the log through GET /v1/audit and recomputes every entry's encoding, chain hash and leaf, and
the root at the checkpoint's size; then fetches an inclusion proof for every entry and a
consistency proof from every smaller size to the checkpoint's, and verifies each.

receipt: fetches the transfer's receipt as the e-service, verifies it with jwcrypto against
the JWKS the gateway serves, then (as the operator) verifies the checkpoint and the inclusion
proof of the receipt's audit_leaf_index, recomputes that leaf from the entry in the proof and
checks the entry records this delivery (transfer id, action, document hash). Prints the
receipt's claims as JSON.

Exit 0 when every check passes, 1 with "FAIL: ..." otherwise, 3 when a module is missing.
"""
import argparse
import base64
import http.client
import json
import os
import ssl
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_proofs as vp  # noqa: E402  (exits 3 when `cryptography` is missing)

try:
    from jwcrypto import jwk, jws
except ImportError:  # pragma: no cover - reported to the caller
    print("SKIPPED: python module `jwcrypto` is not installed", file=sys.stderr)
    sys.exit(3)


class Gateway:
    def __init__(self, url, ca, cert, key):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)

    def get(self, path, want=200):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
        finally:
            conn.close()
        if r.status != want:
            raise vp.Fail(f"GET {path}: {r.status} {body[:300]!r}")
        return json.loads(body)


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def public_key(gw):
    k = gw.get("/v1/audit/public-key")
    raw = b64url(k["jwk"]["x"])
    if len(raw) != 32 or k["jwk"]["crv"] != "Ed25519":
        raise vp.Fail("public key is not Ed25519")
    return raw, k["origin"]


def entry_for_vp(e):
    """The JSON entry of GET /v1/audit in the shape verify_proofs.canonical expects."""
    out = dict(e)
    # `at` is RFC 3339 with milliseconds in UTC: back to milliseconds since the epoch.
    from datetime import datetime
    t = datetime.strptime(e["at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    epoch = datetime(1970, 1, 1)
    delta = t - epoch
    out["at"] = (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return out


def leaf_of(e):
    return vp.leaf(vp.canonical(entry_for_vp(e)))


def checkpoint(gw, key, origin):
    cp = gw.get("/v1/audit/checkpoint")
    size, root = vp.verify_checkpoint(cp["note"], origin, key)
    if size != cp["tree_size"] or root.hex() != cp["root_hash"]:
        raise vp.Fail("checkpoint JSON disagrees with its signed note")
    return size, root


def cmd_proofs(a):
    gw = Gateway(a.url, a.ca, a.cert, a.key)
    key, origin = public_key(gw)
    size, root = checkpoint(gw, key, origin)
    print(f"OK checkpoint signature by the served key, tree size {size}")
    entries, cursor = [], None
    while len(entries) < size:
        q = "/v1/audit?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = gw.get(q)
        entries.extend(page["entries"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    entries = entries[:size]
    if len(entries) != size:
        raise vp.Fail(f"read {len(entries)} entries, the checkpoint covers {size}")
    prev, leaves = bytes(32), []
    for i, e in enumerate(entries):
        if e["seq"] != i:
            raise vp.Fail(f"entry {i} has seq {e['seq']}")
        c = vp.canonical(entry_for_vp(e))
        if bytes.fromhex(e["prev_hash"]) != prev:
            raise vp.Fail(f"entry {i}: prev_hash does not link")
        h = vp.sha256(prev + c)
        if h.hex() != e["hash"]:
            raise vp.Fail(f"entry {i}: hash does not match its contents")
        prev = h
        leaves.append(vp.leaf(c))
    if vp.mth(leaves) != root:
        raise vp.Fail("root recomputed over the entries differs from the checkpoint")
    print(f"OK chain and root recomputed over {size} entries equal the checkpoint")
    for i in range(size):
        p = gw.get(f"/v1/audit/proof/inclusion?index={i}&size={size}")
        leaf = bytes.fromhex(p["leaf_hash"])
        if leaf != leaves[i] or leaf_of(p["entry"]) != leaf:
            raise vp.Fail(f"inclusion {i}: leaf differs from the recomputed entry")
        vp.verify_inclusion(leaf, i, size, [bytes.fromhex(h) for h in p["proof"]], root)
    print(f"OK {size} inclusion proofs")
    for m in range(1, size + 1):
        p = gw.get(f"/v1/audit/proof/consistency?from={m}&to={size}")
        old_root = vp.mth(leaves[:m])
        if p["from_root"] != old_root.hex():
            raise vp.Fail(f"consistency {m}: from_root differs from the recomputed root")
        vp.verify_consistency(m, size, old_root, root, [bytes.fromhex(h) for h in p["proof"]])
    print(f"OK {size} consistency proofs")
    return 0


def cmd_receipt(a):
    es = Gateway(a.url, a.ca, a.cert, a.key)
    op = Gateway(a.url, a.ca, a.operator_cert, a.operator_key)
    t = es.get(f"/v1/transfers/{urllib.parse.quote(a.transfer)}")
    token = t.get("receipt")
    if not token:
        raise vp.Fail("the transfer has no receipt")
    keys = jwk.JWKSet.from_json(json.dumps(es.get("/v1/audit/jwks.json")))
    obj = jws.JWS()
    obj.deserialize(token)
    header = obj.jose_header
    if header.get("typ") != "siirto-receipt+jwt" or header.get("alg") != "EdDSA":
        raise vp.Fail(f"receipt header {header}")
    k = keys.get_key(header.get("kid"))
    if k is None or k.thumbprint() != header["kid"]:
        raise vp.Fail("no served key with the receipt's kid (its RFC 7638 thumbprint)")
    try:
        obj.verify(k, alg="EdDSA")
    except Exception as e:  # jwcrypto raises several kinds
        raise vp.Fail(f"receipt signature: {e}")
    claims = json.loads(obj.payload)
    print("OK receipt signature (jwcrypto, served JWKS)", file=sys.stderr)
    if claims["transfer_id"] != a.transfer:
        raise vp.Fail("receipt is for another transfer")
    if claims["document_sha256"] != t.get("content_sha256"):
        raise vp.Fail("receipt document hash differs from the transfer's content_sha256")

    raw = b64url(k.export_public(as_dict=True)["x"])
    origin = op.get("/v1/audit/public-key")["origin"]
    size, root = checkpoint(op, raw, origin)
    leaf_index = claims["audit_leaf_index"]
    if leaf_index >= size:
        raise vp.Fail(f"leaf {leaf_index} is not yet covered by the checkpoint ({size})")
    p = op.get(f"/v1/audit/proof/inclusion?index={leaf_index}&size={size}")
    e = p["entry"]
    leaf = leaf_of(e)
    if leaf.hex() != p["leaf_hash"]:
        raise vp.Fail("the entry in the proof does not hash to its leaf")
    vp.verify_inclusion(leaf, leaf_index, size, [bytes.fromhex(h) for h in p["proof"]], root)
    if e["seq"] != leaf_index or e["transfer_id"] != a.transfer or e["action"] != "transfer.delivered":
        raise vp.Fail(f"the entry at the receipt's leaf is not this delivery: {e}")
    if e["document_sha256"] != claims["document_sha256"]:
        raise vp.Fail("the audited document hash differs from the receipt's")
    print(f"OK leaf {leaf_index} (transfer.delivered of {a.transfer}) is in the checkpointed "
          f"log of {size} entries", file=sys.stderr)
    print(json.dumps({"header": header, "claims": claims, "checkpoint_size": size}))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("proofs", "receipt"):
        s = sub.add_parser(name)
        s.add_argument("--url", required=True)
        s.add_argument("--ca", required=True)
        s.add_argument("--cert", required=True)
        s.add_argument("--key", required=True)
        if name == "receipt":
            s.add_argument("--operator-cert", required=True)
            s.add_argument("--operator-key", required=True)
            s.add_argument("--transfer", required=True)
    a = p.parse_args()
    try:
        return cmd_proofs(a) if a.cmd == "proofs" else cmd_receipt(a)
    except (vp.Fail, KeyError, ValueError, OSError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
