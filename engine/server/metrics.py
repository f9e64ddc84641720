"""The server's Prometheus metrics, in a private registry (never the process-global one).

Function names are labels only when the catalogue knows them (`observe_call` is given the
name only after lookup succeeded, else `"<unknown>"`), so a client cannot grow the label set.
The identity providers' series are labelled by issuer, which only the auth config names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.server.auth import Authenticator
    from engine.server.identity_providers import ProviderStatus
    from engine.sync.fanout import Fanout

UNKNOWN_FUNCTION = "<unknown>"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class _IdentityProviders(Collector):
    """Each identity provider's state, read from the authenticator at scrape time."""

    def __init__(self) -> None:
        self.statuses: Callable[[], Mapping[str, ProviderStatus]] = dict

    def collect(self) -> Iterator[Metric]:
        statuses = self.statuses()
        up = GaugeMetricFamily(
            "turnstile_identity_provider_up",
            "1 while an identity provider's last key fetch succeeded (or none was needed "
            "yet), 0 while it is failing: tokens signed by keys already known keep working.",
            labels=["issuer"],
        )
        keys = GaugeMetricFamily(
            "turnstile_identity_provider_keys",
            "Signing keys of an identity provider held in the cache.",
            labels=["issuer"],
        )
        fetches = CounterMetricFamily(
            "turnstile_identity_provider_fetches",
            "Key fetches started for an identity provider (OIDC: discovery and JWKS count once).",
            labels=["issuer"],
        )
        failures = CounterMetricFamily(
            "turnstile_identity_provider_fetch_failures",
            "Key fetches of an identity provider that failed (unreachable, an error status, "
            "not a key set); the log says why.",
            labels=["issuer"],
        )
        for issuer, status in sorted(statuses.items()):
            up.add_metric([issuer], 1.0 if status.up else 0.0)
            keys.add_metric([issuer], float(status.keys))
            fetches.add_metric([issuer], float(status.fetches))
            failures.add_metric([issuer], float(status.failures))
        yield from (up, keys, fetches, failures)


class Metrics:
    """Counters and gauges of one server. `render()` is the `/metrics` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.function_calls = Counter(
            "turnstile_function_calls",
            "Functions called, by name, kind, transport and outcome code ('success' or an "
            "error code).",
            ["function", "kind", "transport", "outcome"],
            registry=self.registry,
        )
        self.function_seconds = Histogram(
            "turnstile_function_seconds",
            "Time from a function call's arrival to its answer (mutations: until durable).",
            ["kind", "transport"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.http_requests = Counter(
            "turnstile_http_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.journal_seq = Gauge(
            "turnstile_journal_seq",
            "The last committed journal sequence number.",
            registry=self.registry,
        )
        # python_gc_collections_total{generation}: a full (generation 2) collection pauses the
        # whole server, so how often they run is worth watching.
        GCCollector(registry=self.registry)
        self.sessions_due = Gauge(
            "turnstile_sync_sessions_due",
            "Sync sessions with changes waiting for the fan-out loop to write them (a lasting "
            "high value means the server cannot keep up with its subscribers).",
            registry=self.registry,
        )
        self.resident_actors = Gauge(
            "turnstile_resident_actors",
            "Aggregate actors held in memory.",
            registry=self.registry,
        )
        self.resident_limiters = Gauge(
            "turnstile_resident_limiters",
            "Rate limiters held in memory (at most max_resident_actors).",
            registry=self.registry,
        )
        #: Open WebSocket sync sessions (the server counts them around each session).
        self.ws_sessions = Gauge(
            "turnstile_websocket_sessions",
            "Open WebSocket sync sessions.",
            registry=self.registry,
        )
        self.open_connections = Gauge(
            "turnstile_open_connections",
            "Open TCP connections (HTTP and WebSocket).",
            registry=self.registry,
        )
        self.limited = Counter(
            "turnstile_limited",
            "Connections and sync sessions ended by a limit (ServerConfig), by limit: "
            "connections, handshake, identity, queries, send_timeout, upload_stall.",
            ["limit"],
            registry=self.registry,
        )
        self.identity_throttled = Counter(
            "turnstile_identity_throttled",
            "Times a signed-in user's message or call waited because the user spent the "
            "allowance shared by all of their connections.",
            registry=self.registry,
        )
        self.throttled = Counter(
            "turnstile_throttled",
            "Times a connection's reading paused because it spent its message or byte allowance.",
            registry=self.registry,
        )
        self.webhooks = Counter(
            "turnstile_webhooks",
            "Requests to Turnstile's own webhook routes, by source (stripe, releases, cron) and"
            " outcome: recorded, refused (a bad signature, key or body: nothing written),"
            " failed (the write was refused).",
            ["source", "outcome"],
            registry=self.registry,
        )

        self.storage_uploads = Counter(
            "turnstile_storage_uploads",
            "Uploads to storage URLs, by outcome: stored, unknown, used, expired, tooLarge, "
            "stalled, abandoned (the client went away), refused (the record was refused).",
            ["outcome"],
            registry=self.registry,
        )
        self.storage_downloads = Counter(
            "turnstile_storage_downloads",
            "Stored-file downloads answered, by status (200, 206, 404, 416; 304 is not one).",
            ["status"],
            registry=self.registry,
        )
        self.storage_bytes_received = Counter(
            "turnstile_storage_received_bytes",
            "Bytes of stored uploads.",
            registry=self.registry,
        )
        self.storage_bytes_sent = Counter(
            "turnstile_storage_sent_bytes",
            "Bytes of stored files sent in downloads.",
            registry=self.registry,
        )
        self.stored_bytes = Gauge(
            "turnstile_storage_stored_bytes",
            "Bytes of every stored file recorded at the last committed position.",
            registry=self.registry,
        )
        self.stored_files = Gauge(
            "turnstile_storage_stored_files",
            "Stored files recorded at the last committed position.",
            registry=self.registry,
        )

        self._identity_providers = _IdentityProviders()
        self.registry.register(self._identity_providers)

    def bind_authenticator(self, authenticator: Authenticator) -> None:
        """Read the identity providers' states (`Authenticator.providers`) at scrape time."""
        self._identity_providers.statuses = lambda: authenticator.providers

    def bind_engine(self, engine: Engine) -> None:
        """Read the engine's gauges at scrape time."""
        self.journal_seq.set_function(lambda: float(engine.committed_seq))
        self.resident_actors.set_function(lambda: float(engine.resident_actors()))
        self.resident_limiters.set_function(lambda: float(len(engine.limiters)))
        self.stored_bytes.set_function(
            lambda: float(sum(record.size for record in engine.stored_files().values()))
        )
        self.stored_files.set_function(lambda: float(len(engine.stored_files())))

    def bind_fanout(self, fanout: Fanout) -> None:
        """Read the fan-out loop's backlog at scrape time."""
        self.sessions_due.set_function(lambda: float(fanout.waiting))

    def observe_call(
        self, function: str, kind: str, transport: str, outcome: str, seconds: float
    ) -> None:
        """Count one function call. `function` must be a catalogue name or `UNKNOWN_FUNCTION`."""
        self.function_calls.labels(function, kind, transport, outcome).inc()
        self.function_seconds.labels(kind, transport).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "UNKNOWN_FUNCTION", "Metrics"]
