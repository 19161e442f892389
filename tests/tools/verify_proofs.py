#!/usr/bin/env python3
"""Independent check of Siirto's audit cryptography, written from the specifications
(RFC 9162 §2.1, C2SP tlog-checkpoint and signed-note) and the entry encoding documented in
src/audit/entry.rs, sharing no code with the Rust implementation.

  verify_proofs.py INPUT.json

INPUT.json:
{
  "origin": "siirto.example.fi/audit",
  "public_key": "<hex of the 32-byte Ed25519 public key>",
  "checkpoint": "<signed note text>",
  "entries": [                                  # optional: the whole log, in seq order
    {"seq": 0, "at": <ms>, "actor": "...", "action": "...", "outcome": "...",
     "transfer_id": "..."|null, "subject": "<hex pseudonym>"|null,
     "document_sha256": "<hex>"|null, "detail": {"k": "v"},
     "prev_hash": "<hex>", "hash": "<hex>"}
  ],
  "inclusion": {"index": i, "size": n, "leaf_hash": "<hex>", "proof": ["<hex>", ...]},
  "consistency": {"old_size": m, "old_root": "<hex>", "proof": ["<hex>", ...]}
}
The inclusion and consistency proofs are checked against the checkpoint's tree size and root.
When entries are given, every entry's encoding, chain hash and leaf hash are recomputed, the
inclusion leaf is taken from them, and the root over all of them must equal the checkpoint's.

Prints one "OK ..." line per check; exit 0 when all pass, 1 (with "FAIL: ...") otherwise,
3 when the `cryptography` package is missing.
"""
import base64
import hashlib
import json
import struct
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover - reported to the caller
    print("SKIPPED: python module `cryptography` is not installed", file=sys.stderr)
    sys.exit(3)


class Fail(Exception):
    pass


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(data: bytes) -> bytes:
    return sha256(b"\x00" + data)


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def mth(leaves):
    """RFC 9162 §2.1.1, iteratively by levels (not the recursive split the Rust code uses)."""
    if not leaves:
        return sha256(b"")
    level = list(leaves)
    while len(level) > 1:
        nxt = [node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2 == 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def encode_string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack(">Q", len(b)) + b


def canonical(e) -> bytes:
    out = bytes([1]) + struct.pack(">Q", e["seq"]) + struct.pack(">q", e["at"])
    for name in ("actor", "action", "outcome"):
        out += encode_string(e[name])
    for name in ("transfer_id", "subject"):
        out += b"\x00" if e.get(name) is None else b"\x01" + encode_string(e[name])
    doc = e.get("document_sha256")
    out += b"\x00" if doc is None else b"\x01" + bytes.fromhex(doc)
    detail = e.get("detail") or {}
    out += struct.pack(">Q", len(detail))
    for k in sorted(detail, key=lambda k: k.encode("utf-8")):
        out += encode_string(k) + encode_string(detail[k])
    return out


def verify_inclusion(leaf_hash, index, size, proof, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        raise Fail("inclusion: index not below size")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise Fail("inclusion: proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Fail("inclusion: proof too short")
    if r != root:
        raise Fail("inclusion: root mismatch")


def verify_consistency(first, second, first_hash, second_hash, proof):
    """RFC 9162 §2.1.4.2."""
    if first == second:
        if proof or first_hash != second_hash:
            raise Fail("consistency: equal sizes need an empty proof and equal roots")
        return
    if not proof or first == 0 or first > second:
        raise Fail("consistency: bad sizes or empty proof")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Fail("consistency: proof too long")
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != first_hash or sr != second_hash:
        raise Fail("consistency: roots do not match")


def verify_checkpoint(note: str, origin: str, public_key: bytes):
    """C2SP signed-note with one Ed25519 signature by (origin, key), then tlog-checkpoint."""
    if not note.endswith("\n"):
        raise Fail("checkpoint: no final newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise Fail("checkpoint: no blank line")
    text, sigs = note[:cut + 1], note[cut + 2:]
    key_id = sha256(origin.encode() + b"\n" + b"\x01" + public_key)[:4]
    verified = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            raise Fail("checkpoint: bad signature line")
        name, _, b64 = line[2:].partition(" ")
        raw = base64.b64decode(b64, validate=True)
        if name != origin or raw[:4] != key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:], text.encode())
        except InvalidSignature:
            raise Fail("checkpoint: signature does not verify")
        verified = True
    if not verified:
        raise Fail("checkpoint: no signature by the audit key")
    lines = text[:-1].split("\n")
    if lines[0] != origin:
        raise Fail("checkpoint: wrong origin")
    size = int(lines[1])
    if str(size) != lines[1]:
        raise Fail("checkpoint: size not canonical")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise Fail("checkpoint: root is not 32 bytes")
    if len(lines) != 4 or not lines[3].startswith("time "):
        raise Fail("checkpoint: expected one `time` extension line")
    return size, root


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    try:
        public_key = bytes.fromhex(data["public_key"])
        size, root = verify_checkpoint(data["checkpoint"], data["origin"], public_key)
        print(f"OK checkpoint signature, tree size {size}")
        leaves = None
        if data.get("entries") is not None:
            prev = bytes(32)
            leaves = []
            for i, e in enumerate(data["entries"]):
                if e["seq"] != i:
                    raise Fail(f"entry {i}: seq is {e['seq']}")
                c = canonical(e)
                if bytes.fromhex(e["prev_hash"]) != prev:
                    raise Fail(f"entry {i}: prev_hash does not link")
                h = sha256(prev + c)
                if h != bytes.fromhex(e["hash"]):
                    raise Fail(f"entry {i}: hash mismatch")
                prev = h
                leaves.append(leaf(c))
            print(f"OK hash chain of {len(leaves)} entries")
            if mth(leaves[:size]) != root:
                raise Fail("root over the entries differs from the checkpoint")
            print("OK root recomputed over the entries equals the checkpoint root")
        inc = data.get("inclusion")
        if inc is not None:
            if inc["size"] != size:
                raise Fail("inclusion proof is not for the checkpoint's size")
            leaf_hash = bytes.fromhex(inc["leaf_hash"])
            if leaves is not None and leaves[inc["index"]] != leaf_hash:
                raise Fail("inclusion leaf differs from the recomputed entry leaf")
            verify_inclusion(leaf_hash, inc["index"], inc["size"],
                             [bytes.fromhex(p) for p in inc["proof"]], root)
            print(f"OK inclusion of leaf {inc['index']} in tree of size {size}")
        con = data.get("consistency")
        if con is not None:
            old_root = bytes.fromhex(con["old_root"])
            if leaves is not None and mth(leaves[:con["old_size"]]) != old_root:
                raise Fail("old root differs from the root recomputed over the entries")
            verify_consistency(con["old_size"], size, old_root, root,
                               [bytes.fromhex(p) for p in con["proof"]])
            print(f"OK consistency from size {con['old_size']} to {size}")
    except (Fail, KeyError, ValueError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
