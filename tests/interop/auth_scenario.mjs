// The unmodified convex client signed in with RS256 tokens of an identity provider, across its
// own token refreshes, then refreshed into an invalid token. Prints one JSON line per
// checkpoint. Usage: node auth_scenario.mjs URL ADMIN_KEY ISSUER KID PRIVATE_KEY_PEM_FILE
//
// The tokens are signed here with the provider's key (the test made it and publishes its JWKS).
// A token lives TTL seconds and the client refetches it `authRefreshTokenLeewaySeconds` (10 by
// default) before `exp`, counting from `exp - iat`: every TTL - 10 seconds, on the same
// connection. The server holds an identity until `exp` + 60 s, so it never ends one here.
import { readFileSync } from "node:fs";
import { createPrivateKey, createSign } from "node:crypto";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

const [url, adminKey, issuer, kid, pemFile] = process.argv.slice(2);
const fn = (name) => makeFunctionReference(name);
const say = (what) => console.log(JSON.stringify(what));
const TTL = 13;
const WAIT_MS = 30_000;
const privateKey = createPrivateKey(readFileSync(pemFile, "utf8"));

let minted = 0;
function token(sub, { ttl = TTL, aud = "convex" } = {}) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  // (`jti` makes each token new: the client keeps a refetched token equal to its current one
  // without sending it, and stops refreshing)
  const claims = { iss: issuer, sub, aud, iat: now, exp: now + ttl, jti: `${sub}-${++minted}` };
  const signed = `${part({ alg: "RS256", typ: "JWT", kid })}.${part(claims)}`;
  const signature = createSign("RSA-SHA256").update(signed).sign(privateKey).toString("base64url");
  return `${signed}.${signature}`;
}

async function waitFor(what, ready) {
  const until = Date.now() + WAIT_MS;
  while (!ready()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const options = { webSocketConstructor: WebSocket, unsavedChangesWarning: false, verbose: process.env.VERBOSE === "1" };
const failure = (error) => ({ message: String(error.message ?? error), code: error.data?.code ?? null });

async function main() {
  const http = new ConvexHttpClient(url);
  http.setAdminAuth(adminKey);
  const eventId = await http.mutation(fn("events:create"), {
    name: "Auth gig", description: "", location: "Hall", orgId: "org_interop",
    eventDate: 1_900_000_000_000, price: 2500, totalTickets: 3,
  });
  say({ step: "created", eventId });

  // Another signed-in client, which nothing below may disturb.
  const other = new ConvexClient(url, options);
  other.setAuth(async () => token("bob", { ttl: 600 }));
  let otherSeen = null;
  other.onUpdate(fn("events:getEventAvailability"), { eventId }, (value) => { otherSeen = value; });

  const client = new ConvexClient(url, options);
  let tokens = "valid";
  const fetches = [];
  const authChanges = [];
  client.setAuth(
    async ({ forceRefreshToken }) => {
      fetches.push(forceRefreshToken);
      return tokens === "valid" ? token("ann") : token("ann", { aud: "not-this-application" });
    },
    (isAuthenticated) => authChanges.push(isAuthenticated),
  );
  const refreshes = () => fetches.filter((forced) => forced).length;
  // What ann's queries answered, in order: values, or failures.
  const positions = [];
  client.onUpdate(
    fn("waitingList:getQueuePosition"), { eventId, userId: "ann" },
    (value) => positions.push({ value }),
    (error) => positions.push({ error: failure(error) }),
  );
  let tickets;
  client.onUpdate(fn("events:getUserTickets"), { userId: "ann" }, (value) => { tickets = value; }, () => {});
  const position = () => positions.at(-1)?.value;

  await waitFor("ann signed in", () => authChanges.includes(true) && positions.at(-1)?.value === null);
  await waitFor("bob's subscription", () => otherSeen !== null);
  say({ step: "signed-in", authChanges, fetches });

  const joined = await client.mutation(fn("events:joinWaitingList"), { eventId, userId: "ann" });
  say({ step: "joined", joined, seenAfterJoin: position() });

  const before = refreshes();
  await waitFor("two token refreshes", () => refreshes() >= before + 2);
  const ticketId = await client.mutation(fn("events:purchaseTicket"), {
    eventId, userId: "ann", waitingListId: joined.waitingListId,
    paymentInfo: { paymentIntentId: "pi_ann", amount: 2500 },
  });
  say({
    step: "purchased", ticketId, refreshes: refreshes() - before, seenTickets: tickets,
    seenPosition: position(), connectionCount: client.connectionState().connectionCount,
  });

  // A change made by someone else reaches ann's subscription after a further refresh.
  const purchasedRefreshes = refreshes();
  await waitFor("another token refresh", () => refreshes() > purchasedRefreshes);
  await http.mutation(fn("tickets:refund"), { ticketId });
  await waitFor("ann's refunded ticket", () => tickets?.[0]?.status === "refunded");
  say({
    step: "refunded", tickets, authChanges,
    connectionCount: client.connectionState().connectionCount,
  });

  // From now on a refresh returns a token the server refuses: the client retries, then signs
  // out, and its queries run for nobody.
  tokens = "invalid";
  const signedIn = authChanges.length;
  await waitFor("ann signed out", () => authChanges.length > signedIn && authChanges.at(-1) === false);
  await waitFor("ann's query failing for nobody", () => positions.at(-1)?.error !== undefined);
  say({ step: "signed-out", authChanges: authChanges.slice(signedIn), last: positions.at(-1) });

  await http.mutation(fn("events:joinWaitingList"), { eventId, userId: "carol" });
  await waitFor("bob seeing carol's offer", () => otherSeen.activeOffers === 1);
  say({ step: "other", seen: otherSeen, connectionCount: other.connectionState().connectionCount });
  await client.close();
  await other.close();
  say({ step: "done" });
}

main().then(
  () => process.exit(0),
  (error) => {
    say({ step: "error", message: String(error?.stack ?? error) });
    process.exit(1);
  },
);
