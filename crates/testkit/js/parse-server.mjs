// A real Parse Server (npm `parse-server`) on Postgres for the session tests: node parse-server.mjs
// <postgres URL> <port>. App id "gemgate-test"; prints {"listening": port} once it serves /parse.
import express from "express";
import { ParseServer } from "parse-server";

const [databaseURI, port] = process.argv.slice(2);
const server = new ParseServer({
  databaseURI,
  appId: "gemgate-test",
  masterKey: "gemgate-test-master-key",
  serverURL: `http://127.0.0.1:${port}/parse`,
  logLevel: "error",
  silent: true,
});
await server.start();
const app = express();
app.use("/parse", server.app);
app.listen(Number(port), "127.0.0.1", () => process.stdout.write(JSON.stringify({ listening: Number(port) }) + "\n"));
