#!/usr/bin/env python3
"""The other side of the FIT-Connect JOSE interop test, done by jwcrypto.

crates/testkit/tests/jose_interop.rs checks allegro-fitconnect's JOSE
layer against this independent implementation (Python `jwcrypto`, installed
pinned by scripts/setup-jose-tools.sh; run this with that venv's python).
What FIT-Connect uses, and nothing else: RSA keys, JWE compact with
RSA-OAEP-256 and A256GCM (optionally `zip: DEF`), JWS compact with PS512.

Usage:

    jose-peer.py genkey [--kid KID] [--alg ALG] [--key-ops OP,OP] [--use enc|sig]
        prints a new RSA-4096 private JWK (kid: given, else its RFC 7638
        thumbprint)
    jose-peer.py encrypt --key KEY.jwk [--zip] < plaintext
        prints the JWE compact serialization of stdin's bytes for KEY's
        public part (header alg, enc, kid; zip DEF with --zip)
    jose-peer.py sign --key KEY.jwk < claims.json
        prints a PS512 JWS compact serialization of the claims, header
        {"alg":"PS512","typ":"secevent+jwt","kid":KID}
    jose-peer.py verify --jwks JWKS.json < token
        verifies a PS512 JWS with the key its header's kid names and prints
        the claims as JSON

Exits 1 with a message on stderr when anything fails (a bad signature
included), 2 on wrong usage.
"""

import argparse
import json
import sys

from jwcrypto import jwe, jwk, jws


def read_key(path):
    with open(path, encoding="utf-8") as f:
        return jwk.JWK.from_json(f.read())


def genkey(args):
    params = {}
    if args.alg:
        params["alg"] = args.alg
    if args.key_ops:
        params["key_ops"] = args.key_ops.split(",")
    if args.use:
        params["use"] = args.use
    key = jwk.JWK.generate(kty="RSA", size=4096, **params)
    key["kid"] = args.kid or key.thumbprint()
    print(key.export_private())


def encrypt(args):
    key = read_key(args.key)
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM"}
    if key.get("kid"):
        header["kid"] = key["kid"]
    if args.zip:
        header["zip"] = "DEF"
    token = jwe.JWE(sys.stdin.buffer.read(), protected=json.dumps(header))
    token.add_recipient(key)
    print(token.serialize(compact=True))


def sign(args):
    key = read_key(args.key)
    claims = json.loads(sys.stdin.buffer.read())
    header = {"alg": "PS512", "typ": "secevent+jwt", "kid": key["kid"]}
    token = jws.JWS(json.dumps(claims).encode("utf-8"))
    token.add_signature(key, alg="PS512", protected=json.dumps(header))
    print(token.serialize(compact=True))


def verify(args):
    with open(args.jwks, encoding="utf-8") as f:
        keys = jwk.JWKSet.from_json(f.read())
    token = jws.JWS()
    token.allowed_algs = ["PS512"]
    token.deserialize(sys.stdin.read().strip())
    kid = token.jose_header.get("kid")
    key = keys.get_key(kid) if kid else None
    if key is None:
        raise ValueError(f"no key with kid {kid!r} in {args.jwks}")
    token.verify(key, alg="PS512")
    print(json.dumps(json.loads(token.payload)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("genkey")
    p.add_argument("--kid")
    p.add_argument("--alg")
    p.add_argument("--key-ops")
    p.add_argument("--use", choices=["enc", "sig"])
    p.set_defaults(run=genkey)
    p = commands.add_parser("encrypt")
    p.add_argument("--key", required=True)
    p.add_argument("--zip", action="store_true")
    p.set_defaults(run=encrypt)
    p = commands.add_parser("sign")
    p.add_argument("--key", required=True)
    p.set_defaults(run=sign)
    p = commands.add_parser("verify")
    p.add_argument("--jwks", required=True)
    p.set_defaults(run=verify)
    args = parser.parse_args()
    try:
        args.run(args)
    except Exception as e:  # noqa: BLE001 - any failure is a failed check
        print(f"jose-peer {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
