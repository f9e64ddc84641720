// Drives the payments app (tests/apps/payments.py) served by `turnstile serve --app` with the
// unmodified convex npm client: an action over WebSocket (`ConvexClient.action`) and over HTTP
// (`ConvexHttpClient.action`), then a query of what they recorded, then a failing action.
// Usage: node action_scenario.mjs URL USER_TOKEN. Prints one JSON line per checkpoint.
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

const [url, userToken] = process.argv.slice(2);
const fn = (name) => makeFunctionReference(name);
const say = (what) => console.log(JSON.stringify(what));

async function main() {
  const client = new ConvexClient(url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false });
  client.setAuth(async () => userToken);
  const overWs = await client.action(fn("payments:charge"), { amount: 900 });
  say({ step: "ws", result: overWs });

  const http = new ConvexHttpClient(url);
  http.setAuth(userToken);
  const overHttp = await http.action(fn("payments:charge"), { amount: 1100 });
  say({ step: "http", result: overHttp });

  const mine = await client.query(fn("charges:mine"), {});
  say({ step: "mine", mine });

  let failed = null;
  try {
    await client.action(fn("payments:crash"), {});
  } catch (error) {
    failed = { message: String(error.message ?? error), data: error.data ?? null };
  }
  say({ step: "failed", failed });
  await client.close();
  say({ step: "done" });
}

main().catch((error) => {
  say({ step: "error", message: String(error?.stack ?? error) });
  process.exit(1);
});
