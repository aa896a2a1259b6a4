// A frontend's view of gemgate: a client typed by the TypeScript that openapi-typescript generated from
// the served OpenAPI document (./schema.d.ts), calling it with openapi-fetch. Compiled with tsc --strict:
// a field the document names wrongly does not compile. Usage: node ts-client.js <base URL> <API key>.
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

declare const process: { argv: string[] };
const [baseUrl, key] = process.argv.slice(2);
const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });

const status = await client.GET("/v1/status");
if (!status.data) throw new Error(`status: ${JSON.stringify(status.error)}`);
const chains: number[] = status.data.chains.map((chain) => chain.chain_id);

const events = await client.GET("/v1/events", { params: { query: { event: "TradeDealCreated", limit: 5 } } });
if (!events.data) throw new Error(`events: ${JSON.stringify(events.error)}`);
const ids: string[] = events.data.events.map((event) => event.id);

const refused = await client.GET("/v1/events", { params: { query: { limit: 0 } } });
const code: string | undefined = refused.error?.error.code;

const deals = await client.GET("/v1/trade-deals");
if (!deals.data) throw new Error(`trade deals: ${JSON.stringify(deals.error)}`);

console.log(JSON.stringify({ chains, ids, refused: { status: refused.response.status, code }, deals: deals.data.trade_deals.length }));
