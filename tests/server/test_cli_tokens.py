"""`turnstile token --new-key / --key` (RS256, ES256 development tokens) and
`turnstile serve --print-auth-config`, run in-process through `tools.cli.main`, the printed
configs read by `parse_auth_config` and the tokens checked by `Authenticator`; one run of a
real server with a printed config."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest

from domain.identity import Identity
from engine.server.auth import Authenticator, AuthFailed
from engine.server.dev_tokens import DEFAULT_ISSUER
from engine.server.identity_providers import parse_auth_config
from tests.server.test_cli import JOBS, request, serving
from tools.cli import main

SECRET = "cli-tokens-test-secret-at-least-32-bytes"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`turnstile ARGV` in-process; its stdout (it must exit 0)."""
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`turnstile ARGV` in-process, which must exit 2; its stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code == 2
    return capsys.readouterr().err


def new_key(capsys: pytest.CaptureFixture[str], path: Path, *flags: str) -> Any:
    return json.loads(run(capsys, "token", "--new-key", str(path), *flags))


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_a_new_keys_config_accepts_the_tokens_it_signs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, algorithm: str
) -> None:
    key = tmp_path / "dev-key.pem"
    config = new_key(capsys, key, "--alg", algorithm)
    (provider,) = parse_auth_config(config)
    assert (provider.kind, provider.algorithm, provider.issuer) == (
        "customJwt",
        algorithm,
        DEFAULT_ISSUER,
    )
    assert provider.jwks is not None  # a data: URI: the server fetches nothing
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    token = run(
        capsys, "token", "--key", str(key), "--sub", "ann", "--org", "org_a",
        "--cap", "events:manage", "--cap", "tickets:checkin", "--ttl", "60",
    ).strip()  # fmt: skip
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == (algorithm, "dev")
    auth = Authenticator("admin", None, parse_auth_config(config))
    signed = await auth.authenticate(token)
    expected = Identity(
        subject="ann",
        org_id="org_a",
        caps=frozenset({"events:manage", "tickets:checkin"}),
        token_identifier=f"{DEFAULT_ISSUER}|ann",
    )
    assert signed.identity == expected
    assert auth.user(token) == expected
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60 and claims["aud"] == "convex"


async def test_the_issuer_kid_and_audience_are_the_ones_given_and_must_match(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "k.pem"
    where = ("--iss", "http://127.0.0.1:3210/dev-idp", "--kid", "k1", "--aud", "app")
    config = new_key(capsys, key, "--alg", "ES256", *where)
    auth = Authenticator("admin", None, parse_auth_config(config))
    token = run(capsys, "token", "--key", str(key), "--sub", "bo", *where).strip()
    signed = await auth.authenticate(token)
    assert signed.identity.token_identifier == "http://127.0.0.1:3210/dev-idp|bo"
    assert signed.identity.org_id is None and signed.identity.caps == frozenset()

    # The algorithm named must be the key's; --alg ES256 agrees with it.
    token = run(capsys, "token", "--key", str(key), "--sub", "bo", "--alg", "ES256", *where)
    await auth.authenticate(token.strip())
    for other in (
        ("--iss", "http://127.0.0.1:3210/dev-idp", "--kid", "k2", "--aud", "app"),
        ("--iss", "http://127.0.0.1:3210/dev-idp", "--kid", "k1", "--aud", "convex"),
        ("--iss", "http://127.0.0.1:3210/other", "--kid", "k1", "--aud", "app"),
    ):
        token = run(capsys, "token", "--key", str(key), "--sub", "bo", *other).strip()
        with pytest.raises(AuthFailed):
            await auth.authenticate(token)


async def test_a_token_of_another_key_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = new_key(capsys, tmp_path / "one.pem")
    new_key(capsys, tmp_path / "two.pem")
    auth = Authenticator("admin", None, parse_auth_config(config))
    stranger = run(capsys, "token", "--key", str(tmp_path / "two.pem"), "--sub", "eve").strip()
    with pytest.raises(AuthFailed):
        await auth.authenticate(stranger)


def test_the_key_file_is_0600_whatever_the_umask_and_is_never_overwritten(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "dev-key.pem"
    previous = os.umask(0)
    try:
        new_key(capsys, key)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    before = key.read_bytes()
    assert "exists" in refused(capsys, "token", "--new-key", str(key))
    assert key.read_bytes() == before


def test_the_example_auth_config_parses(capsys: pytest.CaptureFixture[str]) -> None:
    example = json.loads(run(capsys, "serve", "--print-auth-config"))
    providers = parse_auth_config(example)
    assert [(p.kind, p.algorithm) for p in providers] == [
        ("oidc", "RS256"),
        ("oidc", "RS256"),
        ("oidc", "RS256"),
        ("customJwt", "ES256"),
    ]
    # The Auth0 entry keeps its issuer's trailing slash, as Auth0's iss has it.
    assert providers[1].issuer.endswith(".auth0.com/")
    assert all(p.audience for p in providers)


def test_the_hs256_form_still_reads_the_secret_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNSTILE_JWT_SECRET", SECRET)
    token = run(capsys, "token", "--sub", "ann", "--org", "org_a").strip()
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert Authenticator("k", SECRET).user(token).org_id == "org_a"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["token", "--key", "K", "--new-key", "N", "--sub", "a"], "not both"),
        (["token", "--key", "K", "--jwt-secret", SECRET, "--sub", "a"], "--jwt-secret"),
        (["token", "--key", "K"], "--sub"),
        (["token", "--new-key", "N", "--sub", "a", "--cap", "events:manage"], "--sub, --cap"),
        (["token", "--new-key", "N", "--ttl", "0"], "drop --ttl"),
        (["token", "--jwt-secret", SECRET, "--sub", "a", "--kid", "x"], "--kid needs --key"),
        (["token", "--jwt-secret", SECRET, "--sub", "a", "--iss", "i", "--aud", "a"], "need"),
        (["token", "--jwt-secret", SECRET], "--sub"),
        (["token", "--key", "missing.pem", "--sub", "a"], "cannot read the key"),
        (["token", "--new-key", "N", "--alg", "HS256"], "invalid choice"),
    ],
)
def test_bad_flags_exit_2_saying_why(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("TURNSTILE_JWT_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    if "K" in argv:
        new_key(capsys, tmp_path / "K")
    assert message in refused(capsys, *argv)
    assert not (tmp_path / "N").exists()  # a refused --new-key writes no key


def test_a_key_that_cannot_sign_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "k.pem"
    new_key(capsys, key, "--alg", "ES256")
    assert "signs ES256, not RS256" in refused(
        capsys, "token", "--key", str(key), "--alg", "RS256", "--sub", "a"
    )
    (tmp_path / "not-a-key.pem").write_text("hello")
    assert "no PEM private key" in refused(
        capsys, "token", "--key", str(tmp_path / "not-a-key.pem"), "--sub", "a"
    )
    assert "lifetime" in refused(capsys, "token", "--key", str(key), "--sub", "a", "--ttl", "0")


def test_a_server_with_the_printed_config_accepts_the_keys_tokens(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "dev-key.pem"
    config = tmp_path / "auth.config.json"
    config.write_text(run(capsys, "token", "--new-key", str(key), "--alg", "ES256"))
    token = run(
        capsys, "token", "--key", str(key), "--sub", "ann", "--org", "org_demo",
        "--cap", "customers:read",
    ).strip()  # fmt: skip
    stranger = tmp_path / "other.pem"
    new_key(capsys, stranger, "--alg", "ES256")
    forged = run(capsys, "token", "--key", str(stranger), "--sub", "ann", "--org", "org_demo")
    data = str(tmp_path / "data")
    args = ("--data-dir", data, "--admin-key", "k", "--auth-config", str(config), "--demo")
    with serving(*args) as (process, port, lines):
        assert f"identity provider: {DEFAULT_ISSUER} (customJwt, ES256)" in lines
        assert not any(line.startswith("dev jwt secret") for line in lines)
        assert request(port, "GET", "/health")[1]["journalSeq"] > JOBS
        listing = {"path": "customers:list", "args": [{}], "format": "convex_encoded_json"}
        status, body = request(port, "POST", "/api/query", listing, f"Bearer {token}")
        assert status == 200 and len(body["value"]["page"]) == 3
        status, _ = request(port, "POST", "/api/query", listing, f"Bearer {forged.strip()}")
        assert status == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
