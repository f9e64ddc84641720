// Drives a live Turnstile server with the unmodified convex npm client and prints one JSON
// line per checkpoint. Usage: node scenario.mjs URL ADMIN_KEY USER_TOKEN USER_ID SCENARIO
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

const [url, adminKey, userToken, userId, scenario] = process.argv.slice(2);
const fn = (name) => makeFunctionReference(name);
const say = (what) => console.log(JSON.stringify(what));

async function basic() {
  const http = new ConvexHttpClient(url);
  http.setAdminAuth(adminKey);
  const eventId = await http.mutation(fn("events:create"), {
    name: "Interop gig", description: "", location: "Hall", orgId: "org_interop",
    eventDate: 1_900_000_000_000, price: 2500, totalTickets: 2,
  });
  say({ step: "created", eventId });

  const client = new ConvexClient(url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false, verbose: process.env.VERBOSE === "1" });
  client.setAuth(async () => userToken);
  const updates = [];
  let latest = null;
  const first = new Promise((resolve) => {
    client.onUpdate(fn("events:getEventAvailability"), { eventId }, (value) => {
      updates.push(value);
      latest = value;
      resolve();
    });
  });
  await first;
  say({ step: "subscribed", value: latest });

  const joined = await client.mutation(fn("events:joinWaitingList"), { eventId, userId });
  // Read-your-writes: by the time the mutation resolves, the subscription shows it.
  say({ step: "joined", joined, seenAfterJoin: latest });

  const ticketId = await client.mutation(fn("events:purchaseTicket"), {
    eventId, userId, waitingListId: joined.waitingListId,
    paymentInfo: { paymentIntentId: `pi_${userId}`, amount: 2500 },
  });
  say({ step: "purchased", ticketId, seenAfterPurchase: latest });

  let refused = null;
  try {
    await client.mutation(fn("events:joinWaitingList"), { eventId, userId: "someone-else" });
  } catch (error) {
    refused = { message: String(error.message ?? error), data: error.data ?? null };
  }
  say({ step: "refused", refused });

  const viaHttp = await http.query(fn("events:getEventAvailability"), { eventId });
  say({ step: "http-query", value: viaHttp, updates: updates.length });
  await client.close();
}

// The test kills the server with SIGKILL right after "sent" and restarts it on the same port:
// the client must reconnect by itself and the mutation in flight must take effect once.
async function reconnect() {
  const http = new ConvexHttpClient(url);
  http.setAdminAuth(adminKey);
  const eventId = await http.mutation(fn("events:create"), {
    name: "Reconnect gig", description: "", location: "Hall", orgId: "org_interop",
    eventDate: 1_900_000_000_000, price: 2500, totalTickets: 5,
  });
  const client = new ConvexClient(url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false });
  client.setAuth(async () => userToken);
  let latest = null;
  await new Promise((resolve) => {
    client.onUpdate(fn("events:getEventAvailability"), { eventId }, (value) => {
      latest = value;
      resolve();
    });
  });
  const inFlight = client.mutation(fn("events:joinWaitingList"), { eventId, userId });
  say({ step: "sent", eventId });
  const joined = await inFlight;
  say({ step: "joined", joined, seenAfterJoin: latest });
  // Read back over the reconnected WebSocket: Node's fetch keeps the HTTP client's pooled
  // connection to the killed server and may fail a POST on it once ("fetch failed").
  const after = await client.query(fn("events:getEventAvailability"), { eventId });
  say({ step: "after", value: after });
  await client.close();
}

const scenarios = { basic, reconnect };
try {
  await scenarios[scenario]();
  say({ step: "done" });
  process.exit(0);
} catch (error) {
  say({ step: "error", error: String(error?.stack ?? error) });
  process.exit(1);
}
