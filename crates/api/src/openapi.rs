//! The OpenAPI 3.1 document of the API, written by hand next to the handlers it describes.

use axum::Json;
use serde_json::{Value, json};

fn page(items: &str, item_ref: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            items: {"type": "array", "items": {"$ref": item_ref}},
            "next": {"type": ["string", "null"], "description": "pass as `after` for the next page"}
        }
    })
}

pub async fn document() -> Json<Value> {
    let limit = json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}});
    let after = json!({"name": "after", "in": "query", "schema": {"type": "string"}, "description": "the `next` value of the previous page"});
    let error = json!({"description": "invalid input", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    Json(json!({
        "openapi": "3.1.0",
        "info": {"title": "gemgate", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Events, projections and status of the chains gemgate indexes."},
        "paths": {
            "/v1/status": {"get": {"summary": "Progress of every chain", "responses": {"200": {"description": "status",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}}}}},
            "/v1/events": {"get": {
                "summary": "Events in chain order",
                "parameters": [
                    {"name": "chain_id", "in": "query", "schema": {"type": "integer"}},
                    {"name": "address", "in": "query", "schema": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}},
                    {"name": "event", "in": "query", "schema": {"type": "string"}, "description": "event name, e.g. TradeDealCreated"},
                    {"name": "from_block", "in": "query", "schema": {"type": "integer"}},
                    {"name": "to_block", "in": "query", "schema": {"type": "integer"}},
                    after, limit
                ],
                "responses": {"200": {"description": "a page of events", "content": {"application/json": {"schema": page("events", "#/components/schemas/Event")}}},
                              "400": error}
            }},
            "/v1/trade-deals": {"get": {"summary": "Trade deals", "parameters": [after, limit],
                "responses": {"200": {"description": "a page of trade deals", "content": {"application/json": {"schema": page("trade_deals", "#/components/schemas/Row")}}}}}},
            "/v1/trade-deals/{id}": {"get": {"summary": "One trade deal by tradeDealId (or full key)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the trade deal", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Row"}}}},
                              "404": {"description": "no such trade deal"}, "400": error}}},
            "/v1/projections/{table}": {"get": {"summary": "Rows of a projection table",
                "parameters": [{"name": "table", "in": "path", "required": true, "schema": {"type": "string"}}, after, limit],
                "responses": {"200": {"description": "a page of rows", "content": {"application/json": {"schema": page("rows", "#/components/schemas/Row")}}}, "404": {"description": "unknown table"}}}},
            "/v1/projections/{table}/{key}": {"get": {"summary": "One projection row",
                "parameters": [{"name": "table", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the row"}, "404": {"description": "no such row"}}}},
            "/v1/stream": {"get": {"summary": "The outbox as server-sent events: SSE id = outbox position, event = canonical | retracted, data = the envelope; resume with Last-Event-ID",
                "parameters": [{"name": "after", "in": "query", "schema": {"type": "integer"}, "description": "start after this outbox position (Last-Event-ID wins)"},
                               {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "text/event-stream"}, "400": error}}},
            "/v1/sinks": {"get": {"summary": "Each configured sink: kind, finality, position in the outbox, backlog, dead letters, paused",
                "responses": {"200": {"description": "the sinks", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"sinks": {"type": "array", "items": {"$ref": "#/components/schemas/Sink"}}}}}}}}}},
            "/v1/sinks/{name}/pause": {"post": {"summary": "Stop delivering to a sink (admin scope); its backlog waits",
                "security": [{"bearer": []}],
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "paused"}, "401": error, "403": error, "404": error}}},
            "/v1/sinks/{name}/resume": {"post": {"summary": "Deliver to a paused sink again (admin scope)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "resumed"}, "401": error, "403": error, "404": error}}},
            "/v1/sinks/{name}/replay": {"post": {"summary": "Deliver again from a block or a time (admin scope)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                    "from_block": {"type": "integer"}, "chain_id": {"type": "integer"},
                    "from_time": {"type": "string", "format": "date-time"}}}}}},
                "responses": {"200": {"description": "the new position"}, "400": error, "401": error, "403": error, "404": error}}},
            "/v1/sinks/{name}/requeue": {"post": {"summary": "Send the sink's dead letters again (admin scope)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "how many were requeued"}, "401": error, "403": error, "404": error}}},
            "/v1/transactions": {"get": {"summary": "Transaction requests, newest first",
                "parameters": [
                    {"name": "signer", "in": "query", "schema": {"type": "string"}, "description": "a configured signer's name"},
                    {"name": "chain_id", "in": "query", "schema": {"type": "integer"}},
                    {"name": "state", "in": "query", "schema": {"enum": ["queued", "signed", "submitted", "included", "safe", "finalized", "failed", "replaced", "cancelled", "expired"]}},
                    {"name": "from_time", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "created at or after (RFC 3339, UTC)"},
                    after, limit
                ],
                "responses": {"200": {"description": "a page of requests, each with created_at", "content": {"application/json": {"schema": page("transactions", "#/components/schemas/Transaction")}}},
                              "400": error}},
                "post": {"summary": "Send a transaction from a configured signer (transact scope)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string", "maxLength": 200}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["signer", "chain_id"],
                    "properties": {"signer": {"type": "string"}, "chain_id": {"type": "integer"}, "to": {"type": "string"},
                    "value": {"type": "string", "description": "wei, decimal"}, "data": {"type": "string", "description": "0x hex"},
                    "function": {"type": "string", "example": "transfer(address,uint256)"}, "args": {"type": "array"},
                    "gas": {"type": "integer"}, "speed": {"type": "string", "enum": ["slow", "normal", "fast"]},
                    "valid_until": {"type": "string", "format": "date-time"}}}}}},
                "responses": {"202": {"description": "accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Transaction"}}}},
                    "200": {"description": "the original request for this idempotency key"}, "400": error, "401": error, "403": error, "409": error, "422": error}}},
            "/v1/transactions/raw": {"post": {"summary": "Broadcast and track a client-signed transaction (transact scope)",
                "security": [{"bearer": []}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["raw"],
                    "properties": {"raw": {"type": "string", "description": "signed EIP-2718 bytes, 0x hex"}}}}}},
                "responses": {"202": {"description": "tracked", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Transaction"}}}},
                    "200": {"description": "the same bytes were submitted before"}, "400": error, "401": error, "403": error, "409": error, "422": error}}},
            "/v1/transactions/{id}": {"get": {"summary": "A transaction request: state, attempts, receipt, confirmations",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Transaction"}}}}, "404": error}}},
            "/v1/transactions/{id}/cancel": {"post": {"summary": "Replace with a zero-value self-transfer at the same nonce (transact scope)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "cancel requested"}, "401": error, "403": error, "404": error, "409": error}}},
            "/v1/transactions/{id}/speed-up": {"post": {"summary": "Re-price a pending transaction now (transact scope)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "re-pricing requested"}, "401": error, "403": error, "404": error, "409": error}}},
            "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/ready": {"get": {"summary": "Readiness (the database answers)", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format"}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Event": {"type": "object", "required": ["id", "chain_id", "block_number", "block_hash", "tx_hash", "tx_index",
                    "log_index", "address", "contract", "event", "signature", "args", "status", "finality", "schema"],
                    "properties": {
                        "id": {"type": "string", "description": "stable: keccak256(chain id, block hash, log index)"},
                        "chain_id": {"type": "integer"}, "block_number": {"type": "integer"}, "block_hash": {"type": "string"},
                        "tx_hash": {"type": "string"}, "tx_index": {"type": "integer"}, "log_index": {"type": "integer"},
                        "address": {"type": "string"}, "contract": {"type": "string"}, "event": {"type": "string"},
                        "signature": {"type": "string", "description": "topic0"},
                        "args": {"type": ["object", "null"], "description": "decoded by ABI parameter name; integers as decimal strings"},
                        "topics": {"type": "array", "items": {"type": "string"}}, "data": {"type": "string"},
                        "status": {"enum": ["canonical", "retracted"]}, "finality": {"enum": ["latest", "safe", "finalized"]},
                        "schema": {"type": "integer"}}},
                "Row": {"type": "object", "additionalProperties": true, "description": "projection row; U256 values as decimal strings"},
                "Status": {"type": "object", "properties": {
                    "chains": {"type": "array", "items": {"type": "object", "properties": {
                        "chain_id": {"type": "integer"}, "head": {"type": ["integer", "null"]}, "indexed": {"type": ["integer", "null"]},
                        "safe": {"type": ["integer", "null"]}, "finalized": {"type": ["integer", "null"]}, "events": {"type": "integer"}}}},
                    "sinks": {"type": "array", "items": {"$ref": "#/components/schemas/Sink"}}}},
                "Sink": {"type": "object", "properties": {
                    "name": {"type": "string"}, "kind": {"enum": ["amqp", "kafka", "nats", "redis", "webhook"]},
                    "finality": {"type": "string"}, "position": {"type": "integer", "description": "outbox seq up to which everything is delivered or dead-lettered"},
                    "backlog": {"type": "integer", "description": "outbox rows after the position"},
                    "dead_letters": {"type": "integer"}, "paused": {"type": "boolean"}}},
                "Transaction": {"type": "object", "properties": {
                    "id": {"type": "string", "description": "<chain id>-<sender>-<nonce>"}, "chain_id": {"type": "integer"},
                    "signer": {"type": "string"}, "sender": {"type": "string"}, "nonce": {"type": "integer"},
                    "to": {"type": ["string", "null"]}, "value": {"type": "string"}, "data": {"type": "string"},
                    "gas_limit": {"type": ["integer", "null"]}, "speed": {"type": "string"},
                    "state": {"enum": ["queued", "signed", "submitted", "included", "safe", "finalized", "failed", "replaced", "cancelled", "expired"]},
                    "ending": {"type": ["string", "null"], "description": "a cancel or expiry in flight"},
                    "error": {"type": ["string", "null"]}, "origin": {"enum": ["api", "raw"]}, "revision": {"type": "integer"},
                    "tx_hash": {"type": ["string", "null"]}, "block_number": {"type": ["integer", "null"]}, "block_hash": {"type": ["string", "null"]},
                    "receipt": {"type": ["object", "null"]}, "valid_until": {"type": ["string", "null"]},
                    "created_at": {"type": "string", "format": "date-time", "description": "in list pages"},
                    "attempts": {"type": "array", "items": {"type": "object"}}, "confirmations": {"type": "integer"}}}
            }
        }
    }))
}
