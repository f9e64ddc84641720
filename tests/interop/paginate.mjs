// The unmodified convex client's paginated queries against a live Turnstile server: pages
// loaded with loadMore, then events inserted into and cancelled from the middle of them, across
// a server restart. Prints one JSON line per checkpoint and one per update the client shows.
// Usage: node paginate.mjs URL ADMIN_KEY  (after "restart-me" it waits for a line on stdin)
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";
import { createInterface } from "node:readline";

const [url, adminKey] = process.argv.slice(2);
const fn = (name) => makeFunctionReference(name);
const say = (what) => console.log(JSON.stringify(what));
const BASE = 1_900_000_000_000;
const DAY = 86_400_000;
const HOUR = 3_600_000;

// Every page subscription the client sends, to see the splits it makes.
const added = [];
class WatchedWebSocket extends WebSocket {
  send(data, ...rest) {
    try {
      const message = JSON.parse(data);
      if (message.type === "ModifyQuerySet") {
        for (const change of message.modifications) {
          if (change.type === "Add") {
            added.push({ opts: change.args[0].paginationOpts ?? null, journal: change.journal ?? null });
          }
        }
      }
    } catch {
      // not JSON: not ours to look at
    }
    return super.send(data, ...rest);
  }
}

let http = new ConvexHttpClient(url);
http.setAdminAuth(adminKey);

// After the restart Node's fetch may hold a pooled connection to the killed server and fail a
// request on it once: a fresh client, a few tries.
async function mutate(name, args) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await http.mutation(fn(name), args);
    } catch (error) {
      if (attempt >= 20 || error?.data) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
      http = new ConvexHttpClient(url);
      http.setAdminAuth(adminKey);
    }
  }
}

const ids = {};
async function create(name, at) {
  ids[name] = await mutate("events:create", {
    name, description: "", location: "Hall", orgId: "org_interop",
    eventDate: at, price: 100, totalTickets: 1,
  });
}
const cancel = (name) => mutate("events:cancelEvent", { eventId: ids[name] });

const client = new ConvexClient(url, {
  webSocketConstructor: WatchedWebSocket, unsavedChangesWarning: false,
});
let latest = null;
let waiting = null;
const names = (result) => result.results.map((event) => event.name);

async function until(predicate, what) {
  if (latest && predicate(latest)) return latest;
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${what}; last: ${JSON.stringify(latest && { status: latest.status, names: names(latest) })}`)),
      20_000,
    );
    waiting = (result) => {
      if (predicate(result)) {
        clearTimeout(timer);
        waiting = null;
        resolve(result);
      }
    };
  });
}
const showing = (expected, status = "Exhausted") => (result) =>
  result.status === status && JSON.stringify(names(result)) === JSON.stringify(expected);

async function main() {
  for (const day of [1, 3, 5, 7, 9]) await create(`d${day}`, BASE + day * DAY);

  client.onPaginatedUpdate_experimental(
    fn("events:list"), {}, { initialNumItems: 2 },
    (result) => {
      latest = result;
      say({ step: "update", status: result.status, names: names(result) });
      if (waiting) waiting(result);
    },
    (error) => say({ step: "error", error: String(error?.stack ?? error) }),
  );
  const first = await until((r) => r.status === "CanLoadMore", "the first page");
  say({ step: "first", names: names(first) });
  latest.loadMore(2);
  await until((r) => r.status === "CanLoadMore" && r.results.length === 4, "a second page");
  latest.loadMore(2);
  const loaded = await until((r) => r.status === "Exhausted", "the last page");
  say({ step: "loaded", names: names(loaded) });

  // Pages (-inf, d3] (d3, d7] (d7, end]: rows inserted into and deleted from each.
  await create("d2", BASE + 2 * DAY);
  await until(showing(["d1", "d2", "d3", "d5", "d7", "d9"]), "d2 in the first page");
  await create("d6", BASE + 6 * DAY);
  await cancel("d3"); // the first page's last row: its boundary
  await create("d4", BASE + 4 * DAY); // just past the old boundary: the second page
  await create("d10", BASE + 10 * DAY); // appended: the last page
  const middle = await until(
    showing(["d1", "d2", "d4", "d5", "d6", "d7", "d9", "d10"]), "the pages after the changes",
  );
  say({ step: "changed", names: names(middle) });

  // The server is killed and started again: the client re-subscribes each page with its
  // journal, so the pages keep their ranges though the second holds four rows now.
  say({ step: "restart-me" });
  const lines = createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once("line", resolve));
  lines.close();
  await create("d3b", BASE + 3 * DAY + HOUR);
  await create("d0", BASE);
  await cancel("d6");
  const after = await until(
    showing(["d0", "d1", "d2", "d3b", "d4", "d5", "d7", "d9", "d10"]), "the pages after the restart",
  );
  say({ step: "after", names: names(after) });

  // The second page grows to five rows, past twice its two: the client splits it in two
  // pinned halves, which go on taking the rows of their ranges.
  await create("d5b", BASE + 5 * DAY + HOUR);
  await until(
    showing(["d0", "d1", "d2", "d3b", "d4", "d5", "d5b", "d7", "d9", "d10"]), "the grown page",
  );
  const splitAt = Date.now();
  while (added.filter((a) => a.opts?.endCursor).length < 2) {
    if (Date.now() - splitAt > 20_000) throw new Error("the client did not split the page");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await create("d4b", BASE + 4 * DAY + HOUR);
  await cancel("d3b");
  const split = await until(
    showing(["d0", "d1", "d2", "d4", "d4b", "d5", "d5b", "d7", "d9", "d10"]), "the split pages",
  );
  say({ step: "split", names: names(split) });
  const whole = await wholeList();
  say({
    step: "done",
    whole: whole.map((event) => event.name),
    added,
  });
  await client.close();
}

async function wholeList() {
  for (let attempt = 0; ; attempt++) {
    try {
      return await http.query(fn("events:list"), {});
    } catch (error) {
      if (attempt >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
      http = new ConvexHttpClient(url);
      http.setAdminAuth(adminKey);
    }
  }
}

try {
  await main();
  process.exit(0);
} catch (error) {
  say({ step: "error", error: String(error?.stack ?? error) });
  process.exit(1);
}
