// gemgate's operator dashboard: reads the API every 2 s, streams events from /v1/stream, plots the last hour
// from /v1/history as SVG, and pauses, resumes and requeues sinks with the key entered above (kept for this
// tab only, in sessionStorage). No library, no CDN.
"use strict";

const KEY = "gemgate-key";
const colors = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280"];
const recent = [];

function headers() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function read(path) {
  const response = await fetch(path, { headers: headers() });
  const body = await response.json();
  if (!response.ok) throw new Error(`${path}: ${body.error ? body.error.message : response.status}`);
  return body;
}

function cell(row, value, className) {
  const td = row.insertCell();
  td.textContent = value === null || value === undefined ? "–" : String(value);
  if (className) td.className = className;
  return td;
}

// Rows are rebuilt only when what they show changed, so a button is not replaced under the pointer.
function fill(id, items, render, extra = "") {
  const body = document.querySelector(`#${id} tbody`);
  const shown = JSON.stringify(items) + extra;
  if (body.dataset.shown === shown) return;
  body.dataset.shown = shown;
  body.replaceChildren();
  for (const item of items) render(body.insertRow(), item);
}

// Per chain: events/s and blocks/s over the history, the latest rate, and the lag in seconds estimated
// from the head's pace.
function rates(history) {
  const out = {};
  const samples = history.samples;
  for (let i = 1; i < samples.length; i++) {
    const seconds = (samples[i].at_ms - samples[i - 1].at_ms) / 1000;
    if (seconds <= 0) continue;
    for (const chain of samples[i].chains) {
      const before = samples[i - 1].chains.find((c) => c.chain_id === chain.chain_id);
      if (!before) continue;
      const series = (out[chain.chain_id] ??= { rate: [], lag: [], blocks: 0, seconds: 0 });
      series.rate.push([samples[i].at_ms, Math.max(0, (chain.events - before.events) / seconds)]);
      series.lag.push([samples[i].at_ms, Math.max(0, (chain.head ?? 0) - (chain.indexed ?? 0))]);
      series.blocks += Math.max(0, (chain.head ?? 0) - (before.head ?? 0));
      series.seconds += seconds;
    }
  }
  return out;
}

function plot(id, seriesByChain) {
  const svg = document.getElementById(id);
  const all = Object.values(seriesByChain).flat();
  svg.replaceChildren();
  if (all.length === 0) {
    svg.insertAdjacentHTML("beforeend", '<text x="8" y="64">collecting (one sample every 10 s)</text>');
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]), t0 + 1);
  const top = Math.max(...all.map((p) => p[1]), 1);
  Object.entries(seriesByChain).forEach(([chain, points], i) => {
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("stroke", colors[i % colors.length]);
    line.setAttribute(
      "points",
      points.map(([t, v]) => `${(((t - t0) / (t1 - t0)) * 590 + 5).toFixed(1)},${(115 - (v / top) * 105).toFixed(1)}`).join(" ")
    );
    line.dataset.chain = chain;
    svg.appendChild(line);
  });
  svg.insertAdjacentHTML("beforeend", `<text x="8" y="12">max ${top.toFixed(top < 10 ? 2 : 0)}</text>`);
}

function renderStatus(status, history, sinksHistory) {
  const byChain = rates(history);
  const chainRates = JSON.stringify(Object.values(byChain).map((s) => [s.rate.length, s.blocks]));
  fill("chains", status.chains, (row, c) => {
    const series = byChain[c.chain_id];
    const lag = c.head !== null && c.indexed !== null ? c.head - c.indexed : null;
    const pace = series && series.seconds > 0 ? series.blocks / series.seconds : 0;
    const latestRate = series && series.rate.length ? series.rate[series.rate.length - 1][1] : null;
    row.id = `chain-${c.chain_id}`;
    cell(row, c.chain_id);
    cell(row, c.head).id = `chain-${c.chain_id}-head`;
    cell(row, c.indexed).id = `chain-${c.chain_id}-indexed`;
    cell(row, c.safe);
    cell(row, c.finalized);
    cell(row, lag).id = `chain-${c.chain_id}-lag`;
    cell(row, lag === null ? null : pace > 0 ? (lag / pace).toFixed(1) : lag === 0 ? "0" : "–");
    cell(row, c.events).id = `chain-${c.chain_id}-events`;
    cell(row, latestRate === null ? null : latestRate.toFixed(1));
  }, chainRates);
  plot("plot-rate", Object.fromEntries(Object.entries(byChain).map(([k, v]) => [k, v.rate])));
  plot("plot-lag", Object.fromEntries(Object.entries(byChain).map(([k, v]) => [k, v.lag])));
  fill("sinks", status.sinks, (row, s) => {
    row.id = `sink-${s.name}`;
    cell(row, s.name);
    cell(row, s.kind);
    cell(row, s.finality);
    cell(row, s.position).id = `sink-${s.name}-position`;
    cell(row, s.backlog).id = `sink-${s.name}-backlog`;
    cell(row, sinksHistory[s.name] === undefined ? null : sinksHistory[s.name].toFixed(1));
    cell(row, s.dead_letters).id = `sink-${s.name}-dead-letters`;
    const state = cell(row, s.paused ? "paused" : "delivering", s.paused ? "paused" : "");
    state.id = `sink-${s.name}-state`;
    const actions = row.insertCell();
    for (const action of [s.paused ? "resume" : "pause", "requeue"]) {
      const button = document.createElement("button");
      button.id = `sink-${s.name}-${action}`;
      button.textContent = action;
      button.addEventListener("click", () => act(s.name, action));
      actions.appendChild(button);
    }
  }, JSON.stringify(sinksHistory));
}

// Messages a second per sink over the last two samples.
function sinkRates(history) {
  const samples = history.samples;
  if (samples.length < 2) return {};
  const [a, b] = samples.slice(-2);
  const seconds = (b.at_ms - a.at_ms) / 1000;
  const out = {};
  for (const sink of b.sinks) {
    const before = a.sinks.find((s) => s.name === sink.name);
    if (before && seconds > 0) out[sink.name] = Math.max(0, (sink.position - before.position) / seconds);
  }
  return out;
}

function renderTransactions(list) {
  const counts = {};
  for (const tx of list.transactions) counts[tx.state] = (counts[tx.state] ?? 0) + 1;
  const stuck = list.transactions.filter(
    (tx) => !["included", "finalized", "failed", "cancelled", "expired"].includes(tx.state) && Date.now() - Date.parse(tx.created_at) > 300000
  );
  document.getElementById("tx-states").textContent =
    Object.entries(counts).map(([state, n]) => `${state}: ${n}`).join(" · ") + (stuck.length ? ` · stuck > 5 min: ${stuck.length}` : "") || "none yet";
  fill("transactions", list.transactions, (row, tx) => {
    cell(row, tx.id, "id");
    cell(row, tx.state, stuck.includes(tx) ? "stuck" : "");
    cell(row, tx.signer);
    cell(row, tx.nonce);
    cell(row, tx.tx_hash, "id");
    cell(row, tx.block_number);
    const r = tx.receipt;
    // The fee paid in gwei (fee_paid is wei, as decimal text).
    cell(row, r && r.fee_paid ? (Number(BigInt(r.fee_paid) / 1000000n) / 1000).toFixed(3) : null);
    cell(row, tx.created_at);
  });
}

function renderEvents() {
  fill("events", recent, (row, e) => {
    cell(row, e.block_number);
    cell(row, e.contract);
    cell(row, e.event);
    cell(row, e.status);
    cell(row, e.id, "id");
  });
}

function stream() {
  // EventSource sends no Authorization header: the live list needs public reads (api.public_reads).
  const source = new EventSource("/v1/stream");
  const label = document.getElementById("stream-state");
  source.onopen = () => (label.textContent = "live");
  source.onerror = () => (label.textContent = "reconnecting…");
  for (const kind of ["canonical", "retracted"]) {
    source.addEventListener(kind, (message) => {
      const envelope = JSON.parse(message.data);
      if (!envelope.event) return;
      recent.unshift(envelope);
      recent.length = Math.min(recent.length, 20);
      renderEvents();
    });
  }
}

async function act(sink, action) {
  const response = await fetch(`/v1/sinks/${encodeURIComponent(sink)}/${action}`, { method: "POST", headers: headers() });
  const body = await response.json().catch(() => ({}));
  document.getElementById("error").textContent = response.ok ? "" : `${action} ${sink}: ${body.error ? body.error.message : response.status}`;
  await refresh();
}

async function refresh() {
  try {
    const [status, history, transactions, drift, snapshots] = await Promise.all([
      read("/v1/status"),
      read("/v1/history"),
      read("/v1/transactions?limit=10"),
      read("/v1/drift?limit=10"),
      read("/v1/snapshots?limit=10"),
    ]);
    renderStatus(status, history, sinkRates(history));
    renderTransactions(transactions);
    fill("drift", drift.drift, (row, d) => {
      cell(row, d.table);
      cell(row, d.key);
      cell(row, d.column);
      cell(row, d.block_number);
      cell(row, d.healed);
    });
    fill("snapshots", snapshots.runs, (row, r) => {
      cell(row, r.name);
      cell(row, r.block_number);
      cell(row, r.rows);
      cell(row, r.state);
      cell(row, r.finished_at);
    });
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("error").textContent = String(error.message || error);
  }
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("key");
  sessionStorage.setItem(KEY, input.value);
  input.value = "";
  refresh();
});
refresh();
setInterval(refresh, 2000);
stream();
