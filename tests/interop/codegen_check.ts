// Type-checked (tsc --strict) against the `api` that `turnstile codegen` wrote into
// ./_generated, then run against a live server: node codegen_check.js URL USER_TOKEN (a
// member of an organization with `events:manage`).
// Prints one JSON line of what it saw. Every call goes through the generated `api`, as a
// frontend's `import { api } from "../convex/_generated/api"` does.
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import type { FunctionArgs, FunctionReturnType } from "convex/server";
import WebSocket from "ws";
import { api } from "./_generated/api.js";

const [url, userToken] = process.argv.slice(2);

// Types the generated file must give (each line fails to compile if it does not).
type NoteDoc = FunctionReturnType<typeof api.notes.board.get>;
const noNote: NoteDoc = null;
const createArgs: FunctionArgs<typeof api.events.create> = {
  name: "Codegen gig",
  description: "",
  location: "Hall",
  eventDate: 1_900_000_000_000,
  price: 2500,
  totalTickets: 3,
};

function nextValue<T>(subscribe: (resolve: (value: T) => void) => () => void): Promise<T> {
  return new Promise((resolve) => {
    const unsubscribe = subscribe((value) => {
      unsubscribe();
      resolve(value);
    });
  });
}

async function main(): Promise<void> {
  const http = new ConvexHttpClient(url);
  http.setAuth(userToken);
  const eventId: string = await http.mutation(api.events.create, createArgs);
  const availability = await http.query(api.events.getEventAvailability, { eventId });
  const totalTickets: number = availability.totalTickets;
  const event = await http.query(api.events.get, { eventId });
  const eventName: string | undefined = event?.name;

  const noteId: string = await http.mutation(api.notes.board.add, {
    text: "first",
    tags: ["a", "b"],
    color: "red",
  });
  const viaAlias: string = await http.mutation(api.board.add, { text: "second" });
  const count = await http.query(api["notes.v2"].count);
  const notes: number = count.notes;

  const client = new ConvexClient(url, {
    webSocketConstructor: WebSocket,
    unsavedChangesWarning: false,
  });
  client.setAuth(async () => userToken);
  type Availability = FunctionReturnType<typeof api.events.getEventAvailability>;
  const live = await nextValue<Availability>((resolve) =>
    client.onUpdate(api.events.getEventAvailability, { eventId }, resolve),
  );
  const before = await nextValue<NoteDoc>((resolve) =>
    client.onUpdate(api.notes.board.get, { noteId }, resolve),
  );
  const pinnedResult: null = await client.mutation(api.notes.board.pin, { noteId, pinned: true });
  const after = await http.query(api.notes.board.get, { noteId });
  const pinned: boolean | undefined = after?.pinned;
  const tags: string[] | undefined = after?.tags;
  await client.close();

  console.log(
    JSON.stringify({
      eventId,
      totalTickets,
      eventName,
      liveRemaining: live.remainingTickets,
      noteId,
      viaAlias,
      notes,
      noNote,
      before: before === null ? null : { color: before.color, pinned: before.pinned },
      pinnedResult,
      pinned,
      tags,
    }),
  );
}

main().catch((error: unknown) => {
  console.log(JSON.stringify({ error: String(error) }));
  process.exitCode = 1;
});
