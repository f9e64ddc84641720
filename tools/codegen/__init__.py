"""`turnstile codegen`: the frontend's `api` (Convex's `convex/_generated/api`) for the
functions Turnstile serves (docs/reference/cli.md, "turnstile codegen").

    generated = generate(load_apps(["shop.backend"]), app_paths=["shop.backend"])
    write_api(Path("convex/_generated"), generated)     # api.js and api.d.ts

`typescript_of(tp, "args" | "result")` is the Python type -> TypeScript translation on its own.
`add_parser`/`run` wire it into the `turnstile` command.
"""

from tools.codegen.command import add_parser, run
from tools.codegen.typescript import CodegenError, Direction, TsType, typescript_of
from tools.codegen.writer import API_DTS, API_JS, ApiFunction, GeneratedApi, generate, write_api

__all__ = [
    "API_DTS",
    "API_JS",
    "ApiFunction",
    "CodegenError",
    "Direction",
    "GeneratedApi",
    "TsType",
    "add_parser",
    "generate",
    "run",
    "typescript_of",
    "write_api",
]
