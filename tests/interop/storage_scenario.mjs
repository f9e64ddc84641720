// File storage with the unmodified convex npm client and the platform's own fetch, as a
// frontend does it: generateUploadUrl -> fetch POST -> storageId -> events:create with it ->
// events:get -> imageUrl -> fetch GET. Prints one JSON line per checkpoint.
// Usage: node storage_scenario.mjs URL ADMIN_KEY USER_TOKEN MODE
//   MODE "flow": the whole flow, then storage:delete (the URL and the image go away).
//   MODE "sigkill": one upload answered 200, then a second one cut off half way; the test kills
//   the server with SIGKILL at "sent" and restarts it on the same port; the first file must
//   come back byte for byte and the second URL must still take a whole file.
import { createHash } from "node:crypto";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

const [url, adminKey, userToken, mode] = process.argv.slice(2);
const fn = (name) => makeFunctionReference(name);
const say = (what) => console.log(JSON.stringify(what));
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("base64");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Bytes that are not text: a PNG signature and a pattern of every byte value.
function fileBytes(size, seed) {
  const bytes = new Uint8Array(size);
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  for (let i = 8; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

const EVENT = {
  name: "Gallery night", description: "", location: "Hall", eventDate: 1_900_000_000_000,
  price: 1000, totalTickets: 10,
};

async function upload(client, bytes, type) {
  const postUrl = await client.mutation(fn("storage:generateUploadUrl"), {});
  const result = await fetch(postUrl, { method: "POST", headers: { "Content-Type": type }, body: bytes });
  if (!result.ok) throw new Error(`upload answered ${result.status}: ${await result.text()}`);
  const { storageId } = await result.json();
  return { postUrl, storageId };
}

async function download(fileUrl) {
  const got = await fetch(fileUrl);
  const bytes = new Uint8Array(await got.arrayBuffer());
  return { status: got.status, type: got.headers.get("content-type"), sha256: sha256(bytes), size: bytes.length };
}

async function flow() {
  const client = new ConvexClient(url, { webSocketConstructor: WebSocket, unsavedChangesWarning: false });
  client.setAuth(async () => userToken);
  const bytes = fileBytes(300_000, 7);
  const { storageId } = await upload(client, bytes, "image/png");
  say({ step: "uploaded", storageId, sha256: sha256(bytes), size: bytes.length });

  const eventId = await client.mutation(fn("events:create"), { ...EVENT, imageStorageId: storageId });
  let latest = null;
  let changed = null;
  await new Promise((resolve) => {
    client.onUpdate(fn("events:get"), { eventId }, (value) => {
      latest = value;
      if (changed !== null && value.imageUrl === null) changed();
      resolve();
    });
  });
  say({ step: "created", eventId, imageStorageId: latest.imageStorageId, imageUrl: latest.imageUrl });

  const http = new ConvexHttpClient(url);
  const viaHttp = await http.query(fn("events:get"), { eventId });
  say({ step: "http-get", imageUrl: viaHttp.imageUrl });

  say({ step: "downloaded", ...(await download(latest.imageUrl)) });
  const metadata = await client.query(fn("storage:getMetadata"), { storageId });
  const getUrl = await client.query(fn("storage:getUrl"), { storageId });
  say({ step: "metadata", metadata, getUrl });

  const gone = new Promise((resolve) => { changed = resolve; });
  await client.mutation(fn("storage:delete"), { storageId });
  await gone; // the live events:get loses its imageUrl once the file is deleted
  const after = await fetch(getUrl);
  say({ step: "deleted", imageUrl: latest.imageUrl, status: after.status,
        metadata: await client.query(fn("storage:getMetadata"), { storageId }) });
  await client.close();
}

async function waitForServer() {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch (error) {
      // the server is being restarted
    }
    await sleep(100);
  }
  throw new Error("the server did not come back");
}

async function sigkill() {
  const http = new ConvexHttpClient(url);
  http.setAuth(userToken);
  const first = fileBytes(1_000_000, 3);
  const { storageId } = await upload(http, first, "image/jpeg");
  say({ step: "acknowledged", storageId, sha256: sha256(first), size: first.length });

  const secondUrl = await http.mutation(fn("storage:generateUploadUrl"), {});
  const token = new URL(secondUrl).searchParams.get("token");
  const second = fileBytes(2_000_000, 9);
  let push;
  const body = new ReadableStream({ start(controller) { push = controller; } });
  const cut = fetch(secondUrl, {
    method: "POST", headers: { "Content-Type": "image/png" }, body, duplex: "half",
  }).then((r) => ({ status: r.status }), (error) => ({ failed: String(error.cause?.code ?? error) }));
  push.enqueue(second.subarray(0, 700_000));
  await sleep(500); // the server has it on disk, in incoming/
  say({ step: "sent", token });
  const outcome = await cut; // the server died under it
  say({ step: "cut", outcome });

  await waitForServer();
  const metadata = await http.query(fn("storage:getMetadata"), { storageId });
  const fileUrl = await http.query(fn("storage:getUrl"), { storageId });
  say({ step: "survived", metadata, download: await download(fileUrl) });
  const again = await fetch(secondUrl, { method: "POST", headers: { "Content-Type": "image/png" }, body: second });
  say({ step: "retried", status: again.status, answer: await again.json(), sha256: sha256(second) });
}

try {
  await (mode === "sigkill" ? sigkill() : flow());
  say({ step: "done" });
  process.exit(0);
} catch (error) {
  say({ step: "error", error: String(error?.stack ?? error) });
  process.exit(1);
}
