//! Accepting requests: the nonce allocated in the accepting database transaction (the sender's row locked
//! first), idempotency keys answered with the original request, the balance checked against everything
//! pending, and client-signed transactions recorded with their one attempt.

use super::*;

impl SqlStore {
    /// Accepts a request: locks the sender's nonce row (created from `chain_nonce`, the chain's transaction
    /// count for the sender; a ledger behind the chain catches up to it), answers a known idempotency key
    /// with the original request, checks the balance when asked, else allocates the next nonce and records
    /// the request as `queued` with its `transaction.queued` outbox row, all in one database transaction.
    /// `payload` builds the outbox body from the new record.
    pub async fn accept_transaction(
        &self,
        request: &NewTransaction,
        chain_nonce: u64,
        payload: impl Fn(&TxRecord) -> String,
    ) -> Result<Accepted, StoreError> {
        let mut accepted = self.accept_transactions(&[(request.clone(), chain_nonce)], payload).await?;
        accepted.pop().ok_or_else(|| StoreError::Database { message: "no answer for the request".into() })
    }

    /// Accepts several requests in one database transaction (group commit: one commit, and on Postgres one
    /// turn of the outbox lock, for many requests), each exactly as `accept_transaction` would, in order.
    pub async fn accept_transactions(
        &self,
        requests: &[(NewTransaction, u64)],
        payload: impl Fn(&TxRecord) -> String,
    ) -> Result<Vec<Accepted>, StoreError> {
        let mut owned = self.begin().await?;
        let answers = accept_all(owned.tx(), requests).await?;
        let outbox: Vec<OutboxRow> = answers
            .iter()
            .filter_map(|answer| match answer {
                Accepted::New(record) => Some(outbox_row(
                    &record.id,
                    0,
                    TxState::Queued,
                    record.chain_id,
                    &ordering_key(record.chain_id, &record.sender),
                    payload(record),
                )),
                _ => None,
            })
            .collect();
        owned.tx().insert_outbox(&outbox).await?;
        owned.commit().await?;
        Ok(answers)
    }

    /// Records a client-signed transaction as `signed` with its one attempt. The same bytes again answer
    /// with the original record; other bytes for a nonce already tracked are a conflict.
    pub async fn accept_raw(
        &self,
        raw: &RawSubmission,
        payload: impl Fn(&TxRecord) -> String,
    ) -> Result<Accepted, StoreError> {
        let mut owned = self.begin().await?;
        let tx = owned.tx();
        let d = tx.dialect();
        let key = format!("raw:{}:{}", raw.chain_id, raw.attempt.hash);
        if let Some((existing, _)) = find_by_key(tx, &key).await? {
            return Ok(Accepted::Existing(existing));
        }
        let id = request_id(raw.chain_id, &raw.sender, raw.nonce);
        let taken = format!("SELECT id FROM tx_requests WHERE id = {}", d.param(1));
        if !tx.fetch(&taken, vec![Bind::text(&id)], &[ColumnKind::Text]).await?.is_empty() {
            return Ok(Accepted::Conflict { id });
        }
        let record = TxRecord {
            to: raw.to.clone(),
            value: raw.value.clone(),
            data: raw.data.clone(),
            gas_limit: Some(raw.attempt.gas_limit),
            speed: raw.speed.clone(),
            ..TxRecord::new(raw.chain_id, &raw.sender, raw.nonce, "raw", TxState::Signed)
        };
        insert_requests(tx, &[(&record, Some(&key), &raw.attempt.hash)]).await?;
        insert_attempts(tx, &[(record.id.as_str(), &raw.attempt)]).await?;
        let row = outbox_row(
            &record.id,
            0,
            TxState::Signed,
            record.chain_id,
            &ordering_key(record.chain_id, &record.sender),
            payload(&record),
        );
        tx.insert_outbox(std::slice::from_ref(&row)).await?;
        owned.commit().await?;
        Ok(Accepted::New(record))
    }
}

/// Requests accepted together (see `SqlStore::accept_transactions`), in a few statements whatever their
/// number: each sender's nonce row is locked once (senders in a fixed order, so two accepting processes
/// cannot deadlock) and caught up to the chain, known idempotency keys are read in one query, nonces are
/// handed out in request order, and the new requests are inserted many rows a statement.
async fn accept_all(
    tx: &mut dyn Tx,
    requests: &[(NewTransaction, u64)],
) -> Result<Vec<Accepted>, StoreError> {
    let d = tx.dialect();
    let p = |n| d.param(n);
    let greatest = match d {
        Dialect::Sqlite => "max",
        Dialect::Postgres => "GREATEST",
    };
    // Per sender: (the nonce its row held once locked, the next nonce to hand out); chain counts first.
    let mut next: BTreeMap<(u64, String), (u64, u64)> = BTreeMap::new();
    for (request, chain_nonce) in requests {
        let (seen, _) = next.entry((request.chain_id, request.sender.clone())).or_default();
        *seen = (*seen).max(*chain_nonce);
    }
    let lock = format!(
        "INSERT INTO tx_nonces (chain_id, sender, next_nonce) VALUES ({}, {}, {}) \
         ON CONFLICT (chain_id, sender) DO UPDATE SET next_nonce = {greatest}(tx_nonces.next_nonce, excluded.next_nonce) \
         RETURNING next_nonce",
        p(1),
        p(2),
        p(3)
    );
    for ((chain_id, sender), (locked, nonce)) in next.iter_mut() {
        let binds = vec![Bind::int(*chain_id), Bind::text(sender), Bind::int(*locked)];
        *locked = match tx.fetch(&lock, binds, &[ColumnKind::Int]).await?.first().map(|r| &r[0]) {
            Some(Cell::Int(n)) => *n as u64,
            _ => return Err(StoreError::Database { message: "no nonce row".into() }),
        };
        *nonce = *locked;
    }

    // Known keys (no nonce spent on them: the upserts above only caught the rows up to the chain), and
    // the keys of this batch as they are accepted.
    let keys: Vec<&str> = requests.iter().filter_map(|(r, _)| r.idempotency_key.as_deref()).collect();
    let mut known: HashMap<String, (TxRecord, String)> = find_by_keys(tx, &keys).await?;

    let fee_cost = |funds: &Funds, value: &str, gas: Option<u64>| {
        let value = value.parse::<U256>().unwrap_or_default();
        value.saturating_add(
            U256::from(funds.max_fee_per_gas).saturating_mul(U256::from(gas.unwrap_or_default())),
        )
    };
    // The cost of what each sender has pending, read once and kept up to date.
    let mut pending: HashMap<(u64, String), U256> = HashMap::new();
    // Forwarder nonces being relayed in this batch: (relayer, user, nonce), and ("", digest, ""), -> the
    // transaction carrying it.
    let mut relaying: HashMap<(String, String, String), String> = HashMap::new();
    let mut answers = Vec::with_capacity(requests.len());
    for (request, _) in requests {
        if let Some(key) = &request.idempotency_key
            && let Some((existing, body)) = known.get(key)
        {
            answers.push(if *body == request.body_sha256 {
                Accepted::Existing(existing.clone())
            } else {
                Accepted::Conflict { id: existing.id.clone() }
            });
            continue;
        }
        if let Some(id) = relaying_already(tx, &request.relayed, &relaying).await? {
            answers.push(Accepted::Conflict { id });
            continue;
        }
        let sender_key = (request.chain_id, request.sender.clone());
        if let Some(funds) = &request.funds {
            let already = match pending.get(&sender_key) {
                Some(cost) => *cost,
                None => {
                    let sql = format!(
                        "SELECT value, gas_limit FROM tx_requests WHERE chain_id = {} AND sender = {} AND state IN ({PENDING_STATES})",
                        p(1),
                        p(2)
                    );
                    let binds = vec![Bind::int(request.chain_id), Bind::text(&request.sender)];
                    let rows = tx.fetch(&sql, binds, &[ColumnKind::Text, ColumnKind::Int]).await?;
                    rows.iter()
                        .map(|r| fee_cost(funds, r[0].as_text().unwrap_or("0"), int(r, 1)))
                        .fold(U256::ZERO, U256::saturating_add)
                }
            };
            let needed = already.saturating_add(fee_cost(funds, &request.value, request.gas_limit));
            if needed > funds.balance {
                pending.insert(sender_key, already);
                answers.push(Accepted::InsufficientFunds { balance: funds.balance, needed });
                continue;
            }
            pending.insert(sender_key.clone(), needed);
        }
        let (_, nonce) = next.get_mut(&sender_key).expect("every sender's row was locked above");
        let record = TxRecord {
            signer: request.signer.clone(),
            to: request.to.clone(),
            value: request.value.clone(),
            data: request.data.clone(),
            gas_limit: request.gas_limit,
            speed: request.speed.clone(),
            valid_until: request.valid_until.clone(),
            valid_until_ms: request.valid_until_ms,
            ..TxRecord::new(request.chain_id, &request.sender, *nonce, origin(request), TxState::Queued)
        };
        *nonce += 1;
        for call in &request.relayed {
            relaying.insert((call.relayer.clone(), call.from.clone(), call.nonce.clone()), record.id.clone());
            // And by digest alone (two relayers on one forwarder see the same signed request).
            relaying.insert((String::new(), call.digest.clone(), String::new()), record.id.clone());
        }
        if let Some(key) = &request.idempotency_key {
            known.insert(key.clone(), (record.clone(), request.body_sha256.clone()));
        }
        answers.push(Accepted::New(record));
    }

    let advance =
        format!("UPDATE tx_nonces SET next_nonce = {} WHERE chain_id = {} AND sender = {}", p(1), p(2), p(3));
    for ((chain_id, sender), (locked, nonce)) in &next {
        if nonce != locked {
            tx.execute(&advance, vec![Bind::int(*nonce), Bind::int(*chain_id), Bind::text(sender)]).await?;
        }
    }
    let new: Vec<(&TxRecord, Option<&str>, &str)> = requests
        .iter()
        .zip(&answers)
        .filter_map(|((request, _), answer)| match answer {
            Accepted::New(record) => {
                Some((record, request.idempotency_key.as_deref(), request.body_sha256.as_str()))
            }
            _ => None,
        })
        .collect();
    for chunk in new.chunks(INSERT_CHUNK) {
        insert_requests(tx, chunk).await?;
    }
    let relayed: Vec<(&str, &RelayedCall, usize)> = requests
        .iter()
        .zip(&answers)
        .filter_map(|((request, _), answer)| match answer {
            Accepted::New(record) => Some((record.id.as_str(), &request.relayed)),
            _ => None,
        })
        .flat_map(|(id, calls)| calls.iter().enumerate().map(move |(i, call)| (id, call, i)))
        .collect();
    for chunk in relayed.chunks(INSERT_CHUNK) {
        super::relay::insert_relayed(tx, chunk).await?;
    }
    Ok(answers)
}

/// The transaction already relaying one of `calls`: the same signed request (its digest), or its forwarder
/// nonce (same relayer, user and nonce) while that transaction is pending, accepted earlier in this batch or
/// in the ledger. The relayer's sender row is locked before this runs, so two replicas cannot both accept
/// the same nonce; one that failed or expired frees it.
async fn relaying_already(
    tx: &mut dyn Tx,
    calls: &[RelayedCall],
    batch: &HashMap<(String, String, String), String>,
) -> Result<Option<String>, StoreError> {
    let d = tx.dialect();
    for call in calls {
        let in_batch = batch
            .get(&(call.relayer.clone(), call.from.clone(), call.nonce.clone()))
            .or_else(|| batch.get(&(String::new(), call.digest.clone(), String::new())));
        if let Some(id) = in_batch {
            return Ok(Some(id.clone()));
        }
        // The same signed request relayed already (in another transaction: a batch, or another replica's).
        let sql = format!("SELECT tx_id FROM relay_requests WHERE digest = {}", d.param(1));
        if let Some(row) = tx.fetch(&sql, vec![Bind::text(&call.digest)], &[ColumnKind::Text]).await?.first()
        {
            return Ok(text(row, 0));
        }
        let sql = format!(
            "SELECT r.tx_id FROM relay_requests r JOIN tx_requests t ON t.id = r.tx_id \
             WHERE r.relayer = {} AND r.meta_from = {} AND r.meta_nonce = {} AND t.state IN ({PENDING_STATES}) LIMIT 1",
            d.param(1),
            d.param(2),
            d.param(3)
        );
        let binds = vec![Bind::text(&call.relayer), Bind::text(&call.from), Bind::text(&call.nonce)];
        if let Some(row) = tx.fetch(&sql, binds, &[ColumnKind::Text]).await?.first() {
            return Ok(text(row, 0));
        }
    }
    Ok(None)
}

/// `relay` for a transaction carrying users' ERC-2771 requests, else `api`.
fn origin(request: &NewTransaction) -> &'static str {
    if request.relayed.is_empty() { "api" } else { "relay" }
}

/// New requests a statement: 16 values each, well under SQLite's and Postgres's parameter limits.
const INSERT_CHUNK: usize = 100;

/// The requests holding any of `keys`, with their body hashes, by key.
async fn find_by_keys(
    tx: &mut dyn Tx,
    keys: &[&str],
) -> Result<HashMap<String, (TxRecord, String)>, StoreError> {
    let mut found = HashMap::new();
    let mut kinds = kinds(&RECORD);
    kinds.push(ColumnKind::Text);
    for chunk in keys.chunks(500) {
        let sql = format!(
            "SELECT {}, idempotency_key FROM tx_requests WHERE idempotency_key IN ({})",
            columns(tx.dialect()),
            params(tx.dialect(), 1, chunk.len())
        );
        let rows = tx.fetch(&sql, chunk.iter().map(|k| Bind::text(*k)).collect(), &kinds).await?;
        for row in rows {
            let key = text(&row, RECORD.len()).unwrap_or_default().to_string();
            found.insert(key, (record(&row)?, text(&row, RECORD.len() - 1).unwrap_or_default().to_string()));
        }
    }
    Ok(found)
}

/// Inserts new requests in one statement, each with its idempotency key and body hash.
async fn insert_requests(
    tx: &mut dyn Tx,
    rows: &[(&TxRecord, Option<&str>, &str)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let d = tx.dialect();
    // `valid_until` (the 12th value) is a timestamp on Postgres.
    let values = value_rows(d, rows.len(), 16, |column, param| match (d, column) {
        (Dialect::Postgres, 11) => format!("{param}::timestamptz"),
        _ => param,
    });
    let sql = format!(
        "INSERT INTO tx_requests (id, idempotency_key, body_sha256, chain_id, signer, sender, nonce, to_address, \
         value, data, gas_limit, valid_until, speed, state, origin, valid_until_ms) VALUES {values}"
    );
    let binds = rows
        .iter()
        .flat_map(|(r, idempotency_key, body_sha256)| {
            [
                Bind::text(&r.id),
                Bind::Text(idempotency_key.map(str::to_string)),
                Bind::text(*body_sha256),
                Bind::int(r.chain_id),
                Bind::text(&r.signer),
                Bind::text(&r.sender),
                Bind::int(r.nonce),
                Bind::Text(r.to.clone()),
                Bind::text(&r.value),
                Bind::text(&r.data),
                Bind::Int(r.gas_limit.map(|g| g as i64)),
                Bind::Text(r.valid_until.clone()),
                Bind::text(&r.speed),
                Bind::text(r.state.as_str()),
                Bind::text(&r.origin),
                Bind::Int(r.valid_until_ms.map(|m| m as i64)),
            ]
        })
        .collect();
    tx.execute(&sql, binds).await?;
    Ok(())
}

async fn find_by_key(tx: &mut dyn Tx, key: &str) -> Result<Option<(TxRecord, String)>, StoreError> {
    Ok(find_by_keys(tx, &[key]).await?.remove(key))
}
