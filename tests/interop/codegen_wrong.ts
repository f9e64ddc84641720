// Calls that the generated `api` must refuse: `tsc` has to report an error on exactly the
// lines marked `// wrong`, and on no other line.
import { ConvexHttpClient } from "convex/browser";
import { api } from "./_generated/api.js";

const http = new ConvexHttpClient("http://127.0.0.1:3210");
const base = { name: "x", description: "", location: "", eventDate: 1, price: 1 };

export async function wrongCalls(): Promise<void> {
  await http.mutation(api.events.create, { ...base, totalTickets: "2" }); // wrong
  await http.mutation(api.events.create, base); // wrong
  await http.mutation(api.events.create, { ...base, totalTickets: 2, venue: "x" }); // wrong
  await http.mutation(api.notes.board.add, { text: "x", color: "purple" }); // wrong
  await http.query(api.notes.board.add, { text: "x" }); // wrong
  await http.query(api.events.nope, {}); // wrong
  const id: number = await http.mutation(api.notes.board.add, { text: "x" }); // wrong
  const note = await http.query(api.notes.board.get, { noteId: "nt_1" });
  const text: string = note.text; // wrong
  await http.mutation(api.notes.board.pin, { noteId: "nt_1", pinned: null }); // wrong
  const sold: string = (await http.query(api.events.getEventAvailability, { eventId: "x" })).isSoldOut; // wrong
  void id;
  void text;
  void sold;
}
