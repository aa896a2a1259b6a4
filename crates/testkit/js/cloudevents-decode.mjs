// Decodes broker messages with the CloudEvents SDK (`cloudevents`): one JSON object per stdin line,
// {"binding": "kafka", "headers": {...}, "key": "...", "value": "..."} (the Kafka binding) or
// {"binding": "http", "headers": {...}, "body": "..."} (the HTTP binding, whose rules the NATS binding
// shares); one line out for each: {"event": {...}} or {"error": "..."}.
import readline from "node:readline";
import { HTTP, Kafka } from "cloudevents";

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    const message = JSON.parse(line);
    const event =
      message.binding === "kafka"
        ? Kafka.toEvent({
            headers: message.headers,
            key: message.key,
            value: message.value,
            body: message.value,
            timestamp: message.timestamp,
          })
        : HTTP.toEvent({ headers: message.headers, body: message.body });
    process.stdout.write(JSON.stringify({ event }) + "\n");
  } catch (error) {
    process.stdout.write(JSON.stringify({ error: String(error.message || error) }) + "\n");
  }
}
