// A webhook receiver built only on the published libraries: every request is verified with the Standard
// Webhooks library (`standardwebhooks`) and, when it carries a CloudEvent, decoded with the CloudEvents SDK
// (`cloudevents`, HTTP binding). Usage: node webhook-receiver.mjs <whsec_ secret>
// Prints {"listening": port} first, then one JSON line per request: {"path", "webhook_id", "content_type",
// "body", "event"} when it verified (answered 204), or {"path", "refused"} (answered 401).
import http from "node:http";
import { Webhook } from "standardwebhooks";
import { HTTP } from "cloudevents";

const secret = process.argv[2];
if (!secret) {
  console.error("usage: node webhook-receiver.mjs <secret>");
  process.exit(2);
}
const webhook = new Webhook(secret);
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const server = http.createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    try {
      webhook.verify(body, request.headers);
    } catch (error) {
      out({ path: request.url, refused: String(error.message || error) });
      response.writeHead(401).end();
      return;
    }
    const contentType = request.headers["content-type"] || "";
    let event = null;
    if (request.headers["ce-specversion"] || contentType.startsWith("application/cloudevents")) {
      try {
        event = HTTP.toEvent({ headers: request.headers, body });
      } catch (error) {
        out({ path: request.url, refused: "not a CloudEvent: " + String(error.message || error) });
        response.writeHead(400).end();
        return;
      }
    }
    out({ path: request.url, webhook_id: request.headers["webhook-id"], content_type: contentType, body: JSON.parse(body), event });
    response.writeHead(204).end();
  });
});
server.listen(0, "127.0.0.1", () => out({ listening: server.address().port }));
