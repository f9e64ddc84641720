// What the codegen check programs use from Node without @types/node: `process.argv`, and the
// `ws` package (which ships no types) as the WebSocket the Convex client is given.
declare const process: { argv: string[]; exitCode?: number };

declare module "ws" {
  const WebSocket: any;
  export default WebSocket;
}
