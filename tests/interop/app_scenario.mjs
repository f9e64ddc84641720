// Drives an app (tests/apps/giftcards.py) served by `turnstile serve --app` with the unmodified
// convex npm client, over WebSocket and HTTP, and prints one JSON line per checkpoint.
// Usage: node app_scenario.mjs URL ADMIN_KEY USER_TOKEN
// The test kills the server with SIGKILL right after "sent" and restarts it on the same port.
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

const [url, adminKey, userToken] = process.argv.slice(2);
const fn = (name) => makeFunctionReference(name);
const say = (what) => console.log(JSON.stringify(what));

async function main() {
  const http = new ConvexHttpClient(url);
  http.setAdminAuth(adminKey);
  const giftCardId = await http.mutation(fn("giftcards:issue"), {
    amount: 5000, recipient: "Ann", orgId: "org_interop",
  });
  say({ step: "issued", giftCardId });

  const client = new ConvexClient(url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false });
  client.setAuth(async () => userToken);
  let latest = null;
  await new Promise((resolve) => {
    client.onUpdate(fn("giftcards:get"), { giftCardId }, (value) => {
      latest = value;
      resolve();
    });
  });
  say({ step: "subscribed", value: latest });

  const left = await client.mutation(fn("giftcards:redeem"), { giftCardId, amount: 1200 });
  say({ step: "redeemed", left, seenAfterRedeem: latest }); // read-your-writes

  let refused = null;
  try {
    await client.mutation(fn("giftcards:redeem"), { giftCardId, amount: 999_999 });
  } catch (error) {
    refused = { message: String(error.message ?? error), data: error.data ?? null };
  }
  say({ step: "refused", refused });

  const inFlight = client.mutation(fn("giftcards:redeem"), { giftCardId, amount: 500 });
  say({ step: "sent" });
  const afterRestart = await inFlight;
  say({ step: "in-flight", left: afterRestart, seen: latest });

  const listed = await client.query(fn("giftcards:list"), {});
  say({ step: "listed", listed });
  await client.close();
}

try {
  await main();
  say({ step: "done" });
  process.exit(0);
} catch (error) {
  say({ step: "error", error: String(error?.stack ?? error) });
  process.exit(1);
}
