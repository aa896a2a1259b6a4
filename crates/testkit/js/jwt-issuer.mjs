// A token issuer built on the `jose` library: RS256, ES256 and EdDSA key pairs (kids "rs", "es", "ed"),
// the public keys served as a JWKS at GET /jwks.json (fetches counted at GET /stats), tokens signed on
// POST /token {"alg", "kid"?, "claims", "rogue"?: true (signed by a key not in the set), "secret"?: for HS256}
// and POST /rotate adding an RS256 key "rs2". Prints {"listening": port} first.
import http from "node:http";
import * as jose from "jose";

const algs = { rs: "RS256", es: "ES256", ed: "EdDSA" };
const keys = {};
for (const [kid, alg] of Object.entries(algs)) {
  keys[kid] = { alg, ...(await jose.generateKeyPair(alg, { extractable: true })) };
}
const rogue = await jose.generateKeyPair("RS256", { extractable: true });
let fetches = 0;

async function jwks() {
  const list = [];
  for (const [kid, { alg, publicKey }] of Object.entries(keys)) {
    list.push({ ...(await jose.exportJWK(publicKey)), kid, alg, use: "sig" });
  }
  return { keys: list };
}

async function token({ alg, kid, claims, rogue: useRogue, secret }) {
  if (alg === "HS256") {
    return new jose.SignJWT(claims).setProtectedHeader({ alg, kid }).sign(new TextEncoder().encode(secret));
  }
  const chosen = kid ?? Object.keys(keys).find((k) => keys[k].alg === alg);
  const key = useRogue ? rogue.privateKey : keys[chosen].privateKey;
  return new jose.SignJWT(claims).setProtectedHeader({ alg, kid: chosen }).sign(key);
}

const send = (response, status, body) => {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
};
const server = http.createServer((request, response) => {
  const chunks = [];
  request.on("data", (c) => chunks.push(c));
  request.on("end", async () => {
    try {
      if (request.method === "GET" && request.url === "/jwks.json") {
        fetches += 1;
        return send(response, 200, await jwks());
      }
      if (request.method === "GET" && request.url === "/stats") return send(response, 200, { fetches });
      if (request.method === "POST" && request.url === "/rotate") {
        keys.rs2 = { alg: "RS256", ...(await jose.generateKeyPair("RS256", { extractable: true })) };
        return send(response, 200, { kid: "rs2" });
      }
      if (request.method === "POST" && request.url === "/token") {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        return send(response, 200, { token: await token(body) });
      }
      send(response, 404, { error: "not found" });
    } catch (error) {
      send(response, 500, { error: String(error.message || error) });
    }
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(JSON.stringify({ listening: server.address().port }) + "\n"));
