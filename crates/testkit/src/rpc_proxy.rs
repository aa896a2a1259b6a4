//! A JSON-RPC proxy that behaves like the providers real deployments meet: in front of a node (anvil), it
//! answers slowly, rate-limits, fails, resets, truncates, lags behind, serves stale or foreign logs, fills a
//! range only later, and lets its finality tags go backwards. Faults are drawn from a seeded generator at
//! the configured rates, so a failing run can be replayed, and counted by kind, so a report can say what was
//! tried. The rules can be changed while it runs (faults on, then off to let a client converge).
//!
//! HTTP/1.1 only (keep-alive, `Content-Length` bodies); JSON-RPC batches are answered element by element.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::SplitMix64;

/// One way to misbehave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// The answer delayed by a uniform draw in `min..=max`.
    Latency { min: Duration, max: Duration },
    /// HTTP 429, with `Retry-After: seconds` when given.
    RateLimit { retry_after: Option<u64> },
    /// HTTP 503 with an HTML body, as a load balancer gives it.
    ServerError,
    /// The connection closed without an answer.
    Reset,
    /// Half the answer, then the connection closed.
    Truncated,
    /// HTTP 200 with a body that is not JSON.
    InvalidJson,
    /// Answers as a node `blocks` behind the real head: the head and `latest` are older, blocks above it
    /// do not exist, `eth_getLogs` ranges end at it.
    Lag { blocks: u64 },
    /// `eth_getLogs` over a range without the logs of its last block, while the head is reported newer.
    StaleLogs,
    /// `eth_getLogs` whose logs of one block carry another block's hash (an uncle's).
    UncleLogs,
    /// `eth_getLogs` over a range answers `[]`; asked again, it may have the logs.
    EmptyLogs,
    /// The `safe` and `finalized` tags answered with a block `blocks` older than the node's.
    FinalityBackwards { blocks: u64 },
    /// A node with holes in its index (as anvil has after racing reorgs): a share of the block heights,
    /// drawn once per height, answer `null` by number and are left out of `eth_getLogs` ranges, while the
    /// blocks are there by hash and the head is above them.
    Holes,
}

impl Fault {
    /// The fault's name, as the rules and the counts spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Latency { .. } => "latency",
            Fault::RateLimit { .. } => "429",
            Fault::ServerError => "5xx",
            Fault::Reset => "reset",
            Fault::Truncated => "truncate",
            Fault::InvalidJson => "invalid-json",
            Fault::Lag { .. } => "lag",
            Fault::StaleLogs => "stale-logs",
            Fault::UncleLogs => "uncle-logs",
            Fault::EmptyLogs => "empty-logs",
            Fault::FinalityBackwards { .. } => "finality-backwards",
            Fault::Holes => "holes",
        }
    }

    /// Faults of the whole HTTP exchange (the others change what one call answers).
    fn is_transport(&self) -> bool {
        matches!(
            self,
            Fault::RateLimit { .. }
                | Fault::ServerError
                | Fault::Reset
                | Fault::Truncated
                | Fault::InvalidJson
        )
    }

    /// Every kind with a typical argument, for the combined runs and the help text.
    pub fn all() -> Vec<Fault> {
        vec![
            Fault::Latency { min: Duration::from_millis(1), max: Duration::from_millis(30) },
            Fault::RateLimit { retry_after: Some(1) },
            Fault::RateLimit { retry_after: None },
            Fault::ServerError,
            Fault::Reset,
            Fault::Truncated,
            Fault::InvalidJson,
            Fault::Lag { blocks: 3 },
            Fault::StaleLogs,
            Fault::UncleLogs,
            Fault::EmptyLogs,
            Fault::FinalityBackwards { blocks: 5 },
            Fault::Holes,
        ]
    }
}

/// A fault and how often it strikes (0 to 1, per HTTP request or per call).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub fault: Fault,
    pub rate: f64,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.fault.name())?;
        match self.fault {
            Fault::Latency { min, max } => write!(f, "={}ms..{}ms", min.as_millis(), max.as_millis())?,
            Fault::RateLimit { retry_after: Some(s) } => write!(f, "={s}")?,
            Fault::Lag { blocks } | Fault::FinalityBackwards { blocks } => write!(f, "={blocks}")?,
            _ => {}
        }
        write!(f, "@{}", self.rate)
    }
}

/// `KIND[=ARG][@RATE]`: `latency=5ms..50ms`, `429`, `429=2@0.05`, `5xx@0.1`, `reset`, `truncate`,
/// `invalid-json`, `lag=3@0.3`, `stale-logs`, `uncle-logs`, `empty-logs`, `finality-backwards=5`, `holes`. The rate
/// defaults to 1 for `latency` and 0.2 for the rest.
impl FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (spec, rate) = match text.split_once('@') {
            Some((spec, rate)) => {
                let rate: f64 =
                    rate.parse().map_err(|_| format!("{text:?}: the rate {rate:?} is not a number"))?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("{text:?}: the rate must be between 0 and 1"));
                }
                (spec, Some(rate))
            }
            None => (text, None),
        };
        let (kind, arg) = match spec.split_once('=') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (spec, None),
        };
        let blocks = |default: u64| -> Result<u64, String> {
            arg.map_or(Ok(default), |a| {
                a.parse().map_err(|_| format!("{text:?}: {a:?} is not a block count"))
            })
        };
        let fault = match kind {
            "latency" => {
                let arg = arg.unwrap_or("1ms..30ms");
                let (min, max) = arg.split_once("..").unwrap_or((arg, arg));
                let parse = |d: &str| {
                    humantime_like(d)
                        .ok_or_else(|| format!("{text:?}: {d:?} is not a duration (say 20ms or 1s)"))
                };
                let (min, max) = (parse(min)?, parse(max)?);
                if min > max {
                    return Err(format!("{text:?}: the shortest latency is above the longest"));
                }
                Fault::Latency { min, max }
            }
            "429" => Fault::RateLimit {
                retry_after: arg
                    .map(|a| a.parse().map_err(|_| format!("{text:?}: {a:?} is not a number of seconds")))
                    .transpose()?,
            },
            "5xx" => Fault::ServerError,
            "reset" => Fault::Reset,
            "truncate" => Fault::Truncated,
            "invalid-json" => Fault::InvalidJson,
            "lag" => Fault::Lag { blocks: blocks(3)? },
            "stale-logs" => Fault::StaleLogs,
            "uncle-logs" => Fault::UncleLogs,
            "empty-logs" => Fault::EmptyLogs,
            "finality-backwards" => Fault::FinalityBackwards { blocks: blocks(5)? },
            "holes" => Fault::Holes,
            other => {
                return Err(format!(
                    "{other:?} is not a fault; the faults are latency, 429, 5xx, reset, truncate, invalid-json, \
                     lag, stale-logs, uncle-logs, empty-logs, finality-backwards, holes"
                ));
            }
        };
        if arg.is_some()
            && matches!(
                fault,
                Fault::ServerError
                    | Fault::Reset
                    | Fault::Truncated
                    | Fault::InvalidJson
                    | Fault::StaleLogs
                    | Fault::UncleLogs
                    | Fault::EmptyLogs
                    | Fault::Holes
            )
        {
            return Err(format!("{text:?}: {kind} takes no argument"));
        }
        let rate = rate.unwrap_or(if matches!(fault, Fault::Latency { .. }) { 1.0 } else { 0.2 });
        Ok(Rule { fault, rate })
    }
}

/// `20ms`, `1s`, `1.5s`, `0`.
fn humantime_like(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1e3,
        "s" => number,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

struct State {
    upstream: SocketAddr,
    rules: Vec<Rule>,
    rng: SplitMix64,
    counts: BTreeMap<String, u64>,
    /// Heights decided for the `holes` fault: whether each is a hole.
    holes: std::collections::HashMap<u64, bool>,
}

impl State {
    /// Whether a rule of this rate strikes now.
    fn strikes(&mut self, rate: f64) -> bool {
        rate >= 1.0 || (rate > 0.0 && (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= rate)
    }

    fn count(&mut self, name: &str) {
        *self.counts.entry(name.to_string()).or_default() += 1;
    }
}

/// The proxy: a listener on loopback forwarding to one node.
pub struct RpcProxy {
    local: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl fmt::Debug for RpcProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcProxy").field("local", &self.local).finish()
    }
}

impl RpcProxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, rules: Vec<Rule>, seed: u64) -> std::io::Result<Self> {
        Self::bind("127.0.0.1:0".parse().expect("a socket address"), upstream, rules, seed).await
    }

    /// Listens on `listen`, forwarding to `upstream` (`http://host:port`).
    pub async fn bind(
        listen: SocketAddr,
        upstream: &str,
        rules: Vec<Rule>,
        seed: u64,
    ) -> std::io::Result<Self> {
        let upstream = upstream_address(upstream).await?;
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            upstream,
            rules,
            rng: SplitMix64::new(seed),
            counts: BTreeMap::new(),
            holes: std::collections::HashMap::new(),
        }));
        let accept = {
            let state = state.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(serve(client, state.clone()));
                }
            })
        };
        Ok(Self { local, state, accept })
    }

    /// The proxy's URL, for a client's `rpc`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Replaces the rules (an empty list makes the proxy transparent).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rules = rules;
    }

    /// Requests seen (`requests`, one per JSON-RPC call) and faults injected, by kind.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).counts.clone()
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn upstream_address(url: &str) -> std::io::Result<SocketAddr> {
    let invalid =
        |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{url:?}: {why}"));
    let rest = url.strip_prefix("http://").ok_or_else(|| invalid("only http:// upstreams are proxied"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    tokio::net::lookup_host(authority).await?.next().ok_or_else(|| invalid("the host does not resolve"))
}

/// An HTTP message: its start line, headers (lower-case names) and body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Reads one message with a `Content-Length` body; `None` at a clean end of stream.
async fn read_message(reader: &mut (impl AsyncBufRead + Unpin)) -> std::io::Result<Option<Message>> {
    let mut start = String::new();
    if reader.read_line(&mut start).await? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        if headers.len() > 100 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "too many headers"));
        }
    }
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    if length > 64 << 20 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "body over 64 MiB"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok(Some(Message { start: start.trim_end().to_string(), headers, body }))
}

/// What goes back to the client.
enum Answer {
    Http { status: &'static str, extra: String, body: Vec<u8>, truncate: bool },
    Reset,
}

async fn serve(client: TcpStream, state: Arc<Mutex<State>>) {
    let (read, mut write) = client.into_split();
    let mut reader = BufReader::new(read);
    while let Ok(Some(request)) = read_message(&mut reader).await {
        let close = request.headers.iter().any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        let answer = if request.start.starts_with("POST") {
            answer(&state, &request.body).await
        } else {
            // Anything else reads the counts, for an operator or a test watching the run.
            let counts = state.lock().unwrap_or_else(|e| e.into_inner()).counts.clone();
            Answer::Http {
                status: "200 OK",
                extra: String::new(),
                body: serde_json::to_vec(&counts).unwrap_or_default(),
                truncate: false,
            }
        };
        let Answer::Http { status, extra, body, truncate } = answer else { return };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n",
            body.len()
        );
        let sent = if truncate { &body[..body.len() / 2] } else { &body[..] };
        if write.write_all(head.as_bytes()).await.is_err() || write.write_all(sent).await.is_err() || truncate
        {
            return;
        }
        if close {
            return;
        }
    }
}

/// Draws the faults of one HTTP request and answers it.
async fn answer(state: &Mutex<State>, body: &[u8]) -> Answer {
    let (delay, transport) = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let rules = s.rules.clone();
        let mut delay = Duration::ZERO;
        let mut transport = None;
        for rule in &rules {
            if let Fault::Latency { min, max } = rule.fault {
                if s.strikes(rule.rate) {
                    let span = (max - min).as_micros() as u64;
                    delay += min + Duration::from_micros(s.rng.range(0, span));
                    s.count("latency");
                }
            } else if rule.fault.is_transport() && transport.is_none() && s.strikes(rule.rate) {
                s.count(rule.fault.name());
                transport = Some(rule.fault);
            }
        }
        (delay, transport)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match transport {
        Some(Fault::RateLimit { retry_after }) => {
            return Answer::Http {
                status: "429 Too Many Requests",
                extra: retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default(),
                body:
                    br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"rate limit exceeded"}}"#
                        .to_vec(),
                truncate: false,
            };
        }
        Some(Fault::ServerError) => {
            return Answer::Http {
                status: "503 Service Unavailable",
                extra: "content-type: text/html\r\n".into(),
                body: b"<html><body>503 Service Temporarily Unavailable</body></html>".to_vec(),
                truncate: false,
            };
        }
        Some(Fault::Reset) => return Answer::Reset,
        Some(Fault::InvalidJson) => {
            return Answer::Http {
                status: "200 OK",
                extra: String::new(),
                body: b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":0x<!-- upstream timeout -->".to_vec(),
                truncate: false,
            };
        }
        _ => {}
    }
    let truncate = matches!(transport, Some(Fault::Truncated));
    let upstream = state.lock().unwrap_or_else(|e| e.into_inner()).upstream;
    let call = Upstream { address: upstream };
    let body = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(calls)) => {
            let mut answers = Vec::with_capacity(calls.len());
            for c in calls {
                answers.push(one(state, &call, c).await);
            }
            serde_json::to_vec(&Value::Array(answers))
        }
        Ok(c) => serde_json::to_vec(&one(state, &call, c).await),
        Err(_) => serde_json::to_vec(
            &json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}),
        ),
    };
    Answer::Http { status: "200 OK", extra: String::new(), body: body.unwrap_or_default(), truncate }
}

/// The node behind the proxy.
struct Upstream {
    address: SocketAddr,
}

impl Upstream {
    /// Sends one JSON-RPC call and returns the node's whole answer object.
    async fn send(&self, call: &Value) -> Value {
        match self.try_send(call).await {
            Ok(answer) => answer,
            Err(e) => {
                json!({"jsonrpc":"2.0","id":call["id"],"error":{"code":-32603,"message":format!("proxy: upstream: {e}")}})
            }
        }
    }

    async fn try_send(&self, call: &Value) -> std::io::Result<Value> {
        let body = serde_json::to_vec(call)?;
        let mut stream = TcpStream::connect(self.address).await?;
        let head = format!(
            "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.address,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        let mut reader = BufReader::new(stream);
        let message = read_message(&mut reader).await?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
        Ok(serde_json::from_slice(&message.body)?)
    }

    /// A call's `result`, or `None` when the node answered an error.
    async fn result(&self, method: &str, params: Value) -> Option<Value> {
        let answer = self.send(&json!({"jsonrpc":"2.0","id":0,"method":method,"params":params})).await;
        answer.get("result").cloned()
    }

    async fn head(&self) -> Option<u64> {
        self.result("eth_blockNumber", json!([])).await.as_ref().and_then(quantity)
    }
}

fn quantity(value: &Value) -> Option<u64> {
    u64::from_str_radix(value.as_str()?.strip_prefix("0x")?, 16).ok()
}

fn hex_quantity(n: u64) -> Value {
    Value::String(format!("0x{n:x}"))
}

/// Answers one call, with the call-level faults that strike it.
async fn one(state: &Mutex<State>, upstream: &Upstream, call: Value) -> Value {
    let method = call["method"].as_str().unwrap_or_default().to_string();
    let mut struck: Vec<Fault> = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.count("requests");
        let rules = s.rules.clone();
        rules
            .iter()
            .filter(|r| applies(&r.fault, &method, &call) && s.strikes(r.rate))
            .map(|r| r.fault)
            .collect()
    };
    // Logs go missing or foreign only near the tip, where providers disagree: a range that ends at or below
    // the finalized block is answered truthfully.
    let log_fault = |f: &Fault| matches!(f, Fault::StaleLogs | Fault::EmptyLogs | Fault::UncleLogs);
    if struck.iter().any(log_fault) && is_range(&method, &call) {
        let to = match quantity(&call["params"][0]["toBlock"]) {
            Some(to) => Some(to),
            None => upstream.head().await,
        };
        let finalized = upstream.result("eth_getBlockByNumber", json!(["finalized", false])).await;
        let finalized = finalized.as_ref().and_then(|b| quantity(&b["number"])).unwrap_or(0);
        if to.is_none_or(|to| to <= finalized) {
            struck.retain(|f| !log_fault(f));
        }
    }
    {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        struck.iter().for_each(|f| s.count(f.name()));
    }
    let hole_rate = {
        let s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.rules.iter().find(|r| matches!(r.fault, Fault::Holes)).map(|r| r.rate)
    };
    if let Some(rate) = hole_rate
        && method == "eth_getBlockByNumber"
        && let Some(number) = quantity(&call["params"][0])
        && upstream.head().await.is_some_and(|head| number < head)
        && is_hole(state, number, rate, true)
    {
        return json!({"jsonrpc":"2.0","id":call["id"],"result":null});
    }
    let mut call = call;
    for fault in &struck {
        if let Fault::Lag { blocks } = fault {
            let Some(head) = upstream.head().await else { break };
            let lagged = head.saturating_sub(*blocks);
            if let Some(answer) = lagged_answer(upstream, &mut call, &method, lagged).await {
                return answer;
            }
        }
    }
    let mut answer = upstream.send(&call).await;
    if let Some(rate) = hole_rate
        && is_range(&method, &call)
        && let Some(head) = upstream.head().await
        && let Some(logs) = answer["result"].as_array_mut()
    {
        logs.retain(|log| {
            let number = log.get("blockNumber").and_then(quantity).unwrap_or(u64::MAX);
            !(number < head && is_hole(state, number, rate, false))
        });
    }
    for fault in &struck {
        match fault {
            Fault::StaleLogs => {
                // The node's log index is a block behind its head: the newest block with logs in the
                // range comes back without them.
                if let Some(logs) = answer["result"].as_array_mut() {
                    let newest =
                        logs.iter().filter_map(|log| log.get("blockNumber").and_then(quantity)).max();
                    logs.retain(|log| log.get("blockNumber").and_then(quantity) != newest);
                }
            }
            Fault::UncleLogs => {
                if let Some(logs) = answer["result"].as_array_mut() {
                    let chosen = logs.last().map(|log| log["blockHash"].clone());
                    for log in logs.iter_mut().filter(|log| Some(&log["blockHash"]) == chosen.as_ref()) {
                        log["blockHash"] = Value::String(format!("0x{}", "0e".repeat(32)));
                    }
                }
            }
            Fault::EmptyLogs if answer["result"].is_array() => answer["result"] = json!([]),
            Fault::FinalityBackwards { blocks } => {
                let older = answer["result"]["number"].clone();
                if let Some(number) = quantity(&older).and_then(|n| n.checked_sub(*blocks)) {
                    let full = call["params"][1].clone();
                    if let Some(block) =
                        upstream.result("eth_getBlockByNumber", json!([hex_quantity(number), full])).await
                    {
                        answer["result"] = block;
                    }
                }
            }
            _ => {}
        }
    }
    answer
}

/// Whether a height is a hole (decided once per height, at the rule's rate); `count` counts an answer
/// that showed it.
fn is_hole(state: &Mutex<State>, number: u64, rate: f64, count: bool) -> bool {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let hole = match s.holes.get(&number) {
        Some(hole) => *hole,
        None => {
            let hole = s.strikes(rate);
            s.holes.insert(number, hole);
            hole
        }
    };
    if hole && count {
        s.count("holes");
    }
    hole
}

fn is_range(method: &str, call: &Value) -> bool {
    method == "eth_getLogs" && call["params"][0].get("blockHash").is_none()
}

/// Whether a call-level fault concerns this call.
fn applies(fault: &Fault, method: &str, call: &Value) -> bool {
    let range = is_range(method, call);
    match fault {
        Fault::Lag { .. } => matches!(method, "eth_blockNumber" | "eth_getBlockByNumber" | "eth_getLogs"),
        Fault::StaleLogs | Fault::EmptyLogs => range,
        Fault::UncleLogs => method == "eth_getLogs",
        Fault::FinalityBackwards { .. } => {
            method == "eth_getBlockByNumber"
                && matches!(call["params"][0].as_str(), Some("safe" | "finalized"))
        }
        _ => false,
    }
}

/// A lagging node's answer, or `None` with the call rewritten for the node (a range clamped to its head).
async fn lagged_answer(upstream: &Upstream, call: &mut Value, method: &str, lagged: u64) -> Option<Value> {
    let id = call["id"].clone();
    let reply = |result: Value| Some(json!({"jsonrpc":"2.0","id":id,"result":result}));
    match method {
        "eth_blockNumber" => reply(hex_quantity(lagged)),
        "eth_getBlockByNumber" => {
            let full = call["params"][1].clone();
            let asked = match call["params"][0].as_str() {
                Some("latest" | "pending") => lagged,
                Some(tag) if tag.starts_with("0x") => quantity(&call["params"][0])?,
                // safe, finalized, earliest: the node's own are older than its head anyway.
                Some(tag @ ("safe" | "finalized")) => {
                    let real = upstream.result("eth_getBlockByNumber", json!([tag, false])).await;
                    real.as_ref().and_then(|b| quantity(&b["number"])).unwrap_or(0).min(lagged)
                }
                _ => return None,
            };
            if asked > lagged {
                return reply(Value::Null);
            }
            reply(upstream.result("eth_getBlockByNumber", json!([hex_quantity(asked), full])).await?)
        }
        "eth_getLogs" => {
            let filter = &mut call["params"][0];
            if filter.get("blockHash").is_some() {
                return None;
            }
            let from = match &filter["fromBlock"] {
                Value::String(s) if s.starts_with("0x") => quantity(&filter["fromBlock"]).unwrap_or(0),
                _ => lagged,
            };
            if from > lagged {
                return reply(json!([]));
            }
            let to = match &filter["toBlock"] {
                Value::String(s) if s.starts_with("0x") => quantity(&filter["toBlock"]).unwrap_or(lagged),
                _ => lagged,
            };
            filter["toBlock"] = hex_quantity(to.min(lagged));
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_with_their_defaults_and_print_back() {
        let rule: Rule = "latency=5ms..50ms".parse().unwrap();
        assert_eq!(
            rule,
            Rule {
                fault: Fault::Latency { min: Duration::from_millis(5), max: Duration::from_millis(50) },
                rate: 1.0
            }
        );
        assert_eq!("429=2@0.05".parse::<Rule>().unwrap().fault, Fault::RateLimit { retry_after: Some(2) });
        assert_eq!("lag".parse::<Rule>().unwrap(), Rule { fault: Fault::Lag { blocks: 3 }, rate: 0.2 });
        for fault in Fault::all() {
            let rule = Rule { fault, rate: 0.25 };
            assert_eq!(rule.to_string().parse::<Rule>().unwrap(), rule, "{rule}");
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        for (text, why) in [
            ("lag=many", "not a block count"),
            ("reset=3", "takes no argument"),
            ("5xx@2", "between 0 and 1"),
            ("5xx@often", "not a number"),
            ("latency=50ms..5ms", "above the longest"),
            ("latency=fast", "not a duration"),
            ("flaky", "not a fault"),
        ] {
            let error = text.parse::<Rule>().unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn strikes_at_about_the_rate() {
        let mut state = State {
            upstream: "127.0.0.1:1".parse().unwrap(),
            rules: Vec::new(),
            rng: SplitMix64::new(3),
            counts: BTreeMap::new(),
            holes: std::collections::HashMap::new(),
        };
        let hits = (0..10_000).filter(|_| state.strikes(0.2)).count();
        assert!((1_800..2_200).contains(&hits), "{hits}");
        assert!((0..100).all(|_| !state.strikes(0.0)));
        assert!((0..100).all(|_| state.strikes(1.0)));
    }
}
