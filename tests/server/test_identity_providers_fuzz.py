"""Malformed tokens of every shape are refused with `AuthFailed`, never a traceback: generated
ones against the authenticator (Hypothesis, bounded), hand-made ones and seeded corruptions of
a valid token against a live server, over the sync WebSocket and over HTTP, while another
signed-in session keeps being served."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAAlgorithm

from domain.identity import CAPABILITIES, Identity
from engine.server.auth import DEV_ISSUER, MAX_TOKEN_CHARS, Authenticator, AuthFailed
from engine.server.identity_providers import parse_auth_config
from tests.server.identity_provider import (
    LocalProvider,
    http_call,
    new_private_key,
    open_sessions,
    open_sync,
    public_jwk,
    refused,
    serve_trusting,
    signed_in,
)

ISSUER = "https://auth.example.com"
SECRET = "identity-provider-fuzz-secret-of-32-bytes-or-more"
KID = "key-0"
FAR = 2**31
RSA_KEY = new_private_key("RS256")
EC_KEY = new_private_key("ES256")
EC_ISSUER = "https://ec.example.com"


def _data_uri(jwk: dict[str, Any]) -> str:
    return "data:application/json;base64," + base64.b64encode(
        json.dumps({"keys": [jwk]}).encode()
    ).decode("ascii")


AUTH = Authenticator(
    "admin",
    SECRET,
    parse_auth_config(
        {
            "providers": [
                {
                    "type": "customJwt",
                    "issuer": ISSUER,
                    "jwks": _data_uri(public_jwk(RSA_KEY, KID, "RS256")),
                    "algorithm": "RS256",
                    "applicationID": "convex",
                },
                {
                    "type": "customJwt",
                    "issuer": EC_ISSUER,
                    "jwks": _data_uri(public_jwk(EC_KEY, KID, "ES256")),
                    "algorithm": "ES256",
                },
            ]
        }
    ),
)


def part(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(header_part: str, body_part: str, alg: Any) -> str:
    """The signature part a signer of `alg` would give (its real key; empty for others)."""
    message = f"{header_part}.{body_part}".encode()
    if alg == "RS256":
        return part(RSAAlgorithm(RSAAlgorithm.SHA256).sign(message, RSA_KEY))
    if alg == "ES256":
        return part(ECAlgorithm(ECAlgorithm.SHA256).sign(message, EC_KEY))
    if alg == "HS256":
        return part(HMACAlgorithm(HMACAlgorithm.SHA256).sign(message, SECRET.encode()))
    return ""


def compact(header: Any, claims: Any, alg: Any = None, *, raw: bool = False) -> str:
    """A JWS of `header` and `claims` (JSON values, or text as is with `raw`), signed."""
    encode = (lambda v: v.encode()) if raw else (lambda v: json.dumps(v).encode())
    header_part, body_part = part(encode(header)), part(encode(claims))
    return f"{header_part}.{body_part}.{sign(header_part, body_part, alg)}"


def check_outcome(token: str, *, forged: bool) -> None:
    """`token` is refused with AuthFailed, or (never when `forged`) grants a well-formed
    identity; both ways, `user` and `authenticate` agree."""
    try:
        identity: Identity | None = AUTH.user(token)
    except AuthFailed:
        identity = None
    try:
        signed = trio.run(AUTH.authenticate, token)
    except AuthFailed:
        assert identity is None, token
        return
    assert signed.identity == identity
    assert not forged, token
    assert isinstance(identity.subject, str) and identity.subject
    assert identity.caps <= CAPABILITIES
    assert identity.org_id is None or (isinstance(identity.org_id, str) and identity.org_id)
    issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    expected = issuer if isinstance(issuer, str) else DEV_ISSUER
    assert identity.token_identifier == f"{expected}|{identity.subject}"
    # Each issuer's tokens are accepted only with its own algorithm.
    alg = jwt.get_unverified_header(token)["alg"]
    assert alg == {ISSUER: "RS256", EC_ISSUER: "ES256"}.get(expected, "HS256"), token


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
claims = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([ISSUER, EC_ISSUER]) | json_values,
        "sub": st.just("ann") | json_values,
        "exp": st.just(FAR) | json_values,
        "nbf": st.just(0) | json_values,
        "iat": st.just(0) | json_values,
        "aud": st.sampled_from(["convex", ["convex", "x"]]) | json_values,
        "org_id": st.just("org_a") | json_values,
        "o": st.just({"id": "org_clerk"}) | json_values,
        "caps": st.just(["events:manage"]) | json_values,
    },
)
algorithms = st.sampled_from(["RS256", "ES256", "HS256", "none", "RS512", "HS512"])
headers = st.fixed_dictionaries(
    {"alg": algorithms | json_values},
    optional={"kid": st.just(KID) | json_values, "typ": st.just("JWT") | json_values},
)


@settings(max_examples=300, deadline=None)
@given(header=headers, body=claims, signer=algorithms | st.none(), cut=st.integers(0, 5))
def test_generated_tokens_are_refused_or_grant_a_well_formed_identity(
    header: dict[str, Any], body: dict[str, Any], signer: str | None, cut: int
) -> None:
    alg = header["alg"]
    token = compact(header, body, signer if signer is not None else alg)
    # Only a real signer's signature of the algorithm the header names may be accepted.
    genuine = signer in (None, alg) and alg in ("RS256", "ES256", "HS256") and not cut
    if cut:  # a truncated signature
        token = token[:-cut]
    check_outcome(token, forged=not genuine)


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=300)
    | st.lists(st.text(st.characters(codec="ascii"), max_size=60), min_size=1, max_size=5).map(
        ".".join
    )
    | st.tuples(st.text("aZ.-_0", min_size=1, max_size=40), st.integers(-2, 2)).map(
        lambda grown: (grown[0] * (MAX_TOKEN_CHARS // len(grown[0]) + 3))[
            : MAX_TOKEN_CHARS + grown[1]
        ]
    )
)
def test_arbitrary_text_is_refused(token: str) -> None:
    check_outcome(token, forged=True)


def hand_made(idp: LocalProvider) -> dict[str, str]:
    """Malformed tokens naming `idp`'s issuer (or none), each to be refused."""
    alg, kid, iss = idp.algorithm, idp.kid, idp.issuer
    valid = {"iss": iss, "sub": "ann", "exp": FAR, "aud": "convex"}
    header = {"alg": alg, "kid": kid}

    def sig(header_part: str, body_part: str) -> str:
        signer = (
            RSAAlgorithm(RSAAlgorithm.SHA256) if alg == "RS256" else ECAlgorithm(ECAlgorithm.SHA256)
        )
        return part(signer.sign(f"{header_part}.{body_part}".encode(), idp.private_key))

    def signed(claims: dict[str, Any], head: Any = None) -> str:
        """Signed by the provider's own key, whatever the header or the claims hold."""
        header_part = part(json.dumps(head if head is not None else header).encode())
        body_part = part(json.dumps(claims).encode())
        return f"{header_part}.{body_part}.{sig(header_part, body_part)}"

    good = signed(valid)
    head, body, signature = good.split(".")
    nested = "[" * 5000 + "]" * 5000
    with_exp = json.dumps({**valid, "exp": "EXP"})
    exp_huge = part(with_exp.replace('"EXP"', "1e400").encode())
    exp_nan = part(with_exp.replace('"EXP"', "NaN").encode())
    alg_list = part(json.dumps({"alg": [alg], "kid": kid}).encode())
    other_body = part(json.dumps({**valid, "sub": "bo"}).encode())
    return {
        "empty": "",
        "whitespace": "   ",
        "one part": head,
        "two parts": f"{head}.{body}",
        "four parts": f"{good}.{signature}",
        "bad base64": "!!!.???.***",
        "bad base64 body": f"{head}.%%%%.{signature}",
        "padding and junk": f"{head}==.{body}.{signature}",
        "not JSON header": f"{part(b'not json')}.{body}.{signature}",
        "header a list": f"{part(b'[1, 2]')}.{body}.{signature}",
        "body a list": f"{head}.{part(b'[1, 2]')}.{signature}",
        "body a string": f"{head}.{part(json.dumps('ann').encode())}.{signature}",
        "nested JSON header": f"{part(nested.encode())}.{body}.{signature}",
        "nested JSON body": f"{head}.{part(nested.encode())}.{signature}",
        "nested claim": signed({**valid, "aud": json.loads("[" * 400 + "]" * 400)}),
        # A large header is no fault in itself: past MAX_TOKEN_CHARS, or badly signed, it is.
        "huge header": signed(valid, {**header, "pad": "x" * MAX_TOKEN_CHARS}),
        "large header, bad signature": signed(valid, {**header, "pad": "x" * 8000})[:-6],
        "sub a number": signed({**valid, "sub": 42}),
        "sub empty": signed({**valid, "sub": ""}),
        "sub a list": signed({**valid, "sub": ["ann"]}),
        "exp a string": signed({**valid, "exp": str(FAR)}),
        "exp true": signed({**valid, "exp": True}),
        "exp huge": f"{head}.{exp_huge}.{sig(head, exp_huge)}",
        "exp NaN": f"{head}.{exp_nan}.{sig(head, exp_nan)}",
        "nbf a string": signed({**valid, "nbf": "0"}),
        "iat a string": signed({**valid, "iat": "0"}),
        "iat a list": signed({**valid, "iat": [0]}),
        "aud an object": signed({**valid, "aud": {"convex": True}}),
        "aud a number": signed({**valid, "aud": 7}),
        "kid a list": signed(valid, {"alg": alg, "kid": [kid]}),
        "kid a number": signed(valid, {"alg": alg, "kid": 0}),
        "alg a list": f"{alg_list}.{body}.{signature}",
        "iss a list": signed({**valid, "iss": [iss]}),
        "iss an object": signed({**valid, "iss": {"url": iss}}),
        "caps a dict": signed({**valid, "caps": {"events:manage": True}}),
        "caps a string": signed({**valid, "caps": "events:manage"}),
        "caps unknown": signed({**valid, "caps": ["events:manage", "root"]}),
        "o a string": signed({**valid, "o": "org_a"}),
        "o.id a number": signed({**valid, "o": {"id": 5}}),
        "org_id a number": signed({**valid, "org_id": 5}),
        "signature truncated": good[:-4],
        "signature empty": f"{head}.{body}.",
        "signature of another body": f"{head}.{other_body}.{signature}",
        "over-long": good + "A" * (MAX_TOKEN_CHARS - len(good) + 1),
    }


def corruptions(token: str, count: int, seed: int) -> list[str]:
    """`count` copies of `token`, each with a few characters changed, cut or doubled."""
    rng = random.Random(seed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
    found: list[str] = []
    while len(found) < count:
        chars = list(token)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(chars))
            match rng.randrange(3):
                case 0:
                    chars[at] = rng.choice(alphabet)
                case 1:
                    del chars[at : at + rng.randint(1, 8)]
                case _:
                    chars.insert(at, chars[at])
        mutated = "".join(chars)
        if mutated != token:
            found.append(mutated)
    return found


def test_hand_made_tokens_are_refused_by_the_authenticator() -> None:
    with LocalProvider() as idp:
        auth = Authenticator("admin", SECRET, parse_auth_config(idp.auth_config()))
        trio.run(auth.authenticate, idp.token("ann"))  # the keys are fetched once
        for case, token in hand_made(idp).items():
            for check in (auth.user, lambda t: trio.run(auth.authenticate, t)):
                try:
                    check(token)
                except AuthFailed:
                    continue
                pytest.fail(f"{case}: accepted")


async def test_malformed_tokens_are_refused_over_websocket_and_http_disturbing_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LocalProvider() as idp:
        async with serve_trusting(idp, tmp_path / "data") as (server, _), open_sync(server) as ann:
            await signed_in(ann, idp.token("ann"), "ann")
            committed = server.engine.committed_seq
            cases = hand_made(idp)
            for n, token in enumerate(corruptions(idp.token("ann"), 40, seed=7)):
                cases[f"corrupted #{n}"] = token
            for case, token in cases.items():
                async with open_sync(server) as client:
                    assert await refused(client, token), case
                if not token or token != token.strip():
                    continue  # no HTTP header value: h11 sends none such
                reply = await http_call(server, "mutation", "signins:write", {"text": "x"}, token)
                if len(token) > MAX_TOKEN_CHARS:
                    # Longer than the request head allows: refused before the token is read.
                    assert reply.status in (401, 431), case
                else:
                    assert reply.status == 401, case
                    assert reply.json()["errorData"]["code"] == "Unauthenticated", case
            assert await open_sessions(server) == 1
            assert server.engine.committed_seq == committed
            # The signed-in session was served throughout and still is.
            written = await ann.mutation("signins:write", {"text": "undisturbed"})
            assert written["success"], written
            assert ann.values[0]["subject"] == "ann"
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
