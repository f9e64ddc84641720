"""What travels between a client and the server: Convex's value encoding and the sync
protocol's messages.

The lowest layer of the front door: `engine.wire` imports nothing of the engine (only
`domain.errors` and libraries), so the Python client (`engine.client`), the sync sessions
(`engine.sync`) and the HTTP API (`engine.server`) all speak it without importing each other.

- `engine.wire.values`: `convex_to_json` / `json_to_convex`, Convex's JSON value encoding.
- `engine.wire.protocol`: the sync protocol's message shapes, strict parsing (`parse`,
  `ProtocolViolation`), the limits a message is held to (`MAX_UDF_PATH_LENGTH`, ...) and
  the u64 timestamps (`encode_ts` / `decode_ts`).
"""

from engine.wire.protocol import ProtocolViolation, decode_ts, encode_ts
from engine.wire.values import convex_to_json, json_to_convex

__all__ = ["ProtocolViolation", "convex_to_json", "decode_ts", "encode_ts", "json_to_convex"]
