#!/usr/bin/env python3
"""Drives the in-test KOSKI OmaData authorization server with Authlib, an OAuth 2.0 client
library independent of Siirto, as a partner would: PKCE S256 and state made by Authlib, the
authorization endpoint followed as a browser (no client certificate), the form-post answer
read, the code exchanged at the token endpoint with the partner's client certificate
(RFC 8705 tls_client_auth), and the resource fetched with the bearer token.

It prints one JSON object of checks; the Rust test asserts each. Usage:
  omadata_client.py ISSUER CLIENT_ID REDIRECT_URI SCOPE CA CERT KEY
"""
import json
import sys
from html.parser import HTMLParser

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge


class Form(HTMLParser):
    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and "name" in a:
            self.fields[a["name"]] = a.get("value", "")


def browse(url, ca):
    """GET the authorization URL as a browser (no client certificate); the form it posts."""
    page = requests.get(url, verify=ca, timeout=10)
    form = Form()
    form.feed(page.text)
    return page.status_code, form.action, form.fields


def main():
    issuer, client_id, redirect_uri, scope, ca, cert, key = sys.argv[1:8]
    out = {}
    meta = requests.get(issuer + "/.well-known/oauth-authorization-server", verify=ca, timeout=10).json()
    out["metadata_issuer"] = meta["issuer"] == issuer
    out["metadata_s256"] = "S256" in meta["code_challenge_methods_supported"]
    out["metadata_tls_client_auth"] = "tls_client_auth" in meta["token_endpoint_auth_methods_supported"]

    def session():
        # tls_client_auth: no secret; the client_id goes in the body (RFC 8705 2.1).
        s = OAuth2Session(
            client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
        s.verify = ca
        s.cert = (cert, key)
        return s

    # 1. The whole flow, Authlib making state and challenge.
    s = session()
    verifier = generate_token(64)
    url, state = s.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, response_mode="form_post"
    )
    status, action, fields = browse(url, ca)
    out["form_status"] = status
    out["form_action_is_redirect_uri"] = action == redirect_uri
    out["state_returned"] = fields.get("state") == state
    out["challenge_is_rfc7636_s256"] = create_s256_code_challenge(verifier) in url
    token = s.fetch_token(
        meta["token_endpoint"],
        authorization_response=redirect_uri + "?" + requests.compat.urlencode(fields),
        state=state,
        code_verifier=verifier,
        verify=ca,
        cert=(cert, key),
    )
    out["token_type"] = token.get("token_type")
    resource = requests.post(
        sys.argv[8], headers={"Authorization": "Bearer " + token["access_token"]},
        cert=(cert, key), verify=ca, timeout=10,
    )
    out["resource_status"] = resource.status_code
    out["resource_token_info_scope"] = resource.json().get("tokenInfo", {}).get("scope")
    # The same code again: single use.
    again = requests.post(meta["token_endpoint"], data={
        "grant_type": "authorization_code", "code": fields["code"], "redirect_uri": redirect_uri,
        "client_id": client_id, "code_verifier": verifier,
    }, cert=(cert, key), verify=ca, timeout=10)
    out["replayed_code"] = [again.status_code, again.json().get("error")]
    # A resource call with a made-up token.
    bad = requests.post(sys.argv[8], headers={"Authorization": "Bearer nope"},
                        cert=(cert, key), verify=ca, timeout=10)
    out["bad_token"] = [bad.status_code, bad.headers.get("WWW-Authenticate")]

    # 2. A wrong verifier: invalid_grant.
    s = session()
    url, state = s.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=generate_token(64), response_mode="form_post"
    )
    _, _, fields = browse(url, ca)
    try:
        s.fetch_token(meta["token_endpoint"], code=fields["code"],
                      code_verifier=generate_token(64),
                      verify=ca, cert=(cert, key))
        out["wrong_verifier"] = "accepted"
    except Exception as e:  # authlib's OAuthError carries the RFC 6749 5.2 error
        out["wrong_verifier"] = getattr(e, "error", repr(e))

    # 3. Authlib refuses an answer whose state is not the one it sent (CSRF, RFC 6749 10.12).
    s = session()
    verifier = generate_token(64)
    url, state = s.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, response_mode="form_post"
    )
    _, _, fields = browse(url, ca)
    forged = dict(fields, state="forged-" + state)
    try:
        s.fetch_token(meta["token_endpoint"],
                      authorization_response=redirect_uri + "?" + requests.compat.urlencode(forged),
                      state=state, code_verifier=verifier,
                      verify=ca, cert=(cert, key))
        out["forged_state"] = "accepted"
    except Exception as e:
        out["forged_state"] = type(e).__name__

    # 4. No client certificate at the token endpoint: invalid_client.
    nocert = requests.post(meta["token_endpoint"], data={
        "grant_type": "authorization_code", "code": fields["code"], "redirect_uri": redirect_uri,
        "client_id": client_id, "code_verifier": verifier,
    }, verify=ca, timeout=10)
    out["no_client_certificate"] = [nocert.status_code, nocert.json().get("error")]

    # 5. The plain method is refused: the error is posted back with the state.
    plain = (meta["authorization_endpoint"] + "?" + requests.compat.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": scope, "state": "s-plain", "code_challenge": "x" * 43,
        "code_challenge_method": "plain", "response_mode": "form_post"}))
    _, _, fields = browse(plain, ca)
    out["plain_method"] = [fields.get("error"), fields.get("state")]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
