"""What a load-test run is asked to do, checked before anything is sent."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import attrs

#: The only hosts a load test may target: this machine's loopback.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SCENARIO_NAMES = ("onsale", "booking", "fanout", "mixed")
#: Seconds after the load's deadline that mutations already sent may take to resolve, unless
#: a run's config says otherwise (`LoadConfig.grace`).
GRACE_SECONDS = 5.0


class ConfigError(ValueError):
    """The run cannot start as asked (the message says why, for the command line)."""


@attrs.frozen(kw_only=True)
class LoadConfig:
    url: str
    admin_key: str
    jwt_secret: str
    scenario: str = "mixed"
    #: Seconds of load at most; the run also ends once every simulated user is done.
    duration: float = 10.0
    #: Seconds after the load for every subscriber to converge, at most.
    settle: float = 10.0
    connect_timeout: float = 10.0
    #: onsale: users rushing the sale, and the event's tickets.
    users: int = 200
    tickets: int = 100
    #: onsale: share of offered users who buy; of the others, the share who release (the rest
    #: hold the offer and let it lapse).
    buy_fraction: float = 0.8
    release_fraction: float = 0.5
    #: fanout: live subscribers, writers, and the writers' mutations at most (0: no bound).
    subscribers: int = 200
    writers: int = 4
    writes: int = 2000
    #: booking: front-desk staff booking at one location, and their bookings at most.
    staff: int = 10
    bookings: int = 200
    #: Mean pause between a simulated user's steps, in milliseconds.
    think_ms: float = 20.0
    #: Seconds after the load's deadline that mutations already sent may take to resolve
    #: before they are cut short (counted unfinished).
    grace: float = GRACE_SECONDS
    org_id: str = "org_loadtest"
    #: Apps (import paths, as `turnstile serve --app` takes them) whose module-level
    #: `loadtest_scenarios` `scenario` may also name (`tools.loadtest.scenarios.apps`).
    apps: tuple[str, ...] = ()
    seed: int | None = None
    report: Path | None = None
    html: Path | None = None
    #: A live progress line on stderr (the command line turns it on only for a terminal).
    progress: bool = False

    def validate(self) -> None:
        check_loopback(self.url)
        # An app's scenario name is known only once its module is imported: resolving the
        # scenario (`tools.loadtest.scenarios.resolve_scenarios`) checks it then.
        if not self.apps and self.scenario not in SCENARIO_NAMES:
            raise ConfigError(f"unknown scenario {self.scenario!r}")
        if not self.admin_key:
            raise ConfigError("the harness needs the server's admin key (--admin-key)")
        if len(self.jwt_secret.encode()) < 32:
            raise ConfigError(
                "the harness needs the server's JWT secret (--jwt-secret, at least 32 bytes)"
            )
        for name in ("duration", "settle", "connect_timeout", "grace"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0")
        for name in ("users", "tickets", "subscribers", "writers", "staff"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1")
        for name in ("writes", "bookings", "think_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0")
        for name in ("buy_fraction", "release_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1")

    def to_json(self) -> dict[str, object]:
        """The settings a report records (never the secrets)."""
        hidden = {"admin_key", "jwt_secret", "report", "html", "progress"}
        return {
            _camel(field.name): getattr(self, field.name)
            for field in attrs.fields(LoadConfig)
            if field.name not in hidden
        }


def check_loopback(url: str) -> None:
    """`ConfigError` unless `url` is an http:// or ws:// URL of 127.0.0.1, localhost or ::1."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "ws"):
        raise ConfigError(f"--url must be an http:// URL of this machine, not {url!r}")
    try:
        host = parsed.hostname
        parsed.port  # noqa: B018 - parsing it raises for a malformed port
    except ValueError:
        raise ConfigError(f"--url {url!r} is malformed") from None
    if host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"refusing to load-test {host or url!r}: the load test targets this machine's "
            "loopback only (127.0.0.1, localhost or ::1)"
        )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


__all__ = ["LOOPBACK_HOSTS", "SCENARIO_NAMES", "ConfigError", "LoadConfig", "check_loopback"]
