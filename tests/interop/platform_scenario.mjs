// Drives the platform app (tests/apps/platform) served by `turnstile serve --app` with the
// unmodified convex npm client, over WebSocket and HTTP, and prints one JSON line per checkpoint.
// Usage: node platform_scenario.mjs URL ADMIN_KEY OWNER_TOKEN DOOR_TOKEN
// The owner ("ann") and the door steward ("dee") are users of org_live; their tokens carry no
// capabilities: their roles in the organization grant them.
// The test kills the server with SIGKILL right after "sent" and restarts it on the same port.
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

const [url, adminKey, ownerToken, doorToken] = process.argv.slice(2);
const fn = (name) => makeFunctionReference(name);
const say = (what) => console.log(JSON.stringify(what));
const connect = (token) => {
  const client = new ConvexClient(url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false });
  client.setAuth(async () => token);
  return client;
};
const firstValue = (client, name, args, accept = (v) => v !== undefined) =>
  new Promise((resolve) => {
    const stop = client.onUpdate(fn(name), args, (value) => {
      if (accept(value)) {
        stop();
        resolve(value);
      }
    });
  });
const refusal = async (promise) => {
  try {
    await promise;
    return null;
  } catch (error) {
    return { message: String(error.message ?? error), data: error.data ?? null };
  }
};

async function main() {
  const admin = new ConvexHttpClient(url);
  admin.setAdminAuth(adminKey);
  const made = await admin.mutation(fn("platform/organizations:create"), {
    orgId: "org_live", name: "Live Org", ownerUserId: "ann", ownerName: "Ann",
  });
  await admin.mutation(fn("platform/releases:record"), {
    deploymentId: "dep-1", service: "web", commit: "abc123", status: "SUCCESS", deployedAt: 1767225600000,
  });
  say({ step: "bootstrapped", made });

  const ann = connect(ownerToken);
  const me = await firstValue(ann, "platform/team:me", {}, (v) => v != null);
  const owner = me.memberId;
  const doorRole = await ann.mutation(fn("platform/roles:create"), {
    name: "door", capabilities: ["tickets:checkin"], asMember: owner,
  });
  await ann.mutation(fn("platform/team:add"), { userId: "dee", roleId: doorRole, asMember: owner });
  const eventId = await ann.mutation(fn("platform/tiers:createEvent"), {
    name: "Launch", tiers: [{ name: "vip", capacity: 2, price: 5000 }, { name: "general", capacity: 5, price: 1500 }],
    asMember: owner,
  });
  say({ step: "set-up", me, eventId });

  let tiers = null;
  await new Promise((resolve) => {
    ann.onUpdate(fn("platform/tiers:get"), { eventId }, (value) => {
      tiers = value;
      resolve();
    });
  });
  say({ step: "subscribed", tiers });

  const placed = await ann.mutation(fn("platform/orders:place"), {
    eventId, tier: "vip", quantity: 2, buyerName: "Bo", buyerEmail: "bo@example.com", asMember: owner,
  });
  say({ step: "placed", placed, seenAfterPlace: tiers }); // read-your-writes
  const soldOut = await refusal(ann.mutation(fn("platform/orders:place"), {
    eventId, tier: "vip", quantity: 1, buyerName: "Cy", buyerEmail: "cy@example.com", asMember: owner,
  }));
  say({ step: "sold-out", refused: soldOut });

  const dee = connect(doorToken);
  const door = await firstValue(dee, "platform/team:me", {}, (v) => v != null);
  const refusedSale = await refusal(dee.mutation(fn("platform/orders:place"), {
    eventId, tier: "general", quantity: 1, buyerName: "Di", buyerEmail: "di@example.com", asMember: door.memberId,
  }));
  const checkInId = await dee.mutation(fn("platform/passes:checkIn"), {
    passId: placed.passIds[0], gate: "north", asMember: door.memberId,
  });
  const deeHttp = new ConvexHttpClient(url);
  deeHttp.setAuth(doorToken);
  const secondScan = await refusal(deeHttp.mutation(fn("platform/passes:checkIn"), {
    passId: placed.passIds[0], gate: "south", asMember: door.memberId,
  }));
  say({ step: "checked-in", door, refusedSale, checkInId, secondScan });

  const inFlight = ann.mutation(fn("platform/orders:place"), {
    eventId, tier: "general", quantity: 3, buyerName: "Ed", buyerEmail: "ed@example.com", asMember: owner,
  });
  say({ step: "sent" });
  const afterRestart = await inFlight;
  say({ step: "in-flight", placed: afterRestart, seen: tiers });

  const thirdScan = await refusal(dee.mutation(fn("platform/passes:checkIn"), {
    passId: placed.passIds[0], gate: "east", asMember: door.memberId,
  }));
  const orders = await ann.query(fn("platform/orders:list"), { eventId });
  const releases = await deeHttp.query(fn("platform/releases:list"), {});
  say({ step: "after", thirdScan, orders, releases });
  await ann.close();
  await dee.close();
}

try {
  await main();
  say({ step: "done" });
  process.exit(0);
} catch (error) {
  say({ step: "error", error: String(error?.stack ?? error), data: error?.data ?? null });
  process.exit(1);
}
