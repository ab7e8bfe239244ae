//! The drill's load: random movements of every kind until the kill, each
//! recorded with what (if anything) the server answered.

use super::*;

/// What the load workers of one iteration share.
pub(super) struct Shared {
    pub(super) endpoint: Endpoint,
    pub(super) tokens: Tokens,
    pub(super) accounts: Arc<Vec<Account>>,
    pub(super) ops: Mutex<Vec<Op>>,
    pub(super) killed: AtomicBool,
    pub(super) run: String,
}

impl Shared {
    fn register(&self, ops: Vec<Op>) -> usize {
        let mut all = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let first = all.len();
        all.extend(ops);
        first
    }

    fn settle(&self, index: usize, outcome: Outcome) {
        let mut all = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(op) = all.get_mut(index) {
            op.outcome = outcome;
        }
    }
}

/// Classifies a non-2xx (or missing) answer of a movement.
fn failed_outcome(status: Option<u16>, key: String) -> Outcome {
    match status {
        Some(s) if (400..500).contains(&s) => Outcome::Refused(key),
        _ => Outcome::Unanswered(key),
    }
}

fn ack_lsn(body: &Value) -> Option<u64> {
    body.get("lsn").and_then(Value::as_u64)
}

/// One worker of the load: random movements of every kind until the kill.
pub(super) async fn load_worker(shared: Arc<Shared>, worker: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut conn = Conn::new(shared.endpoint.clone());
    let mut counter = 0u64;
    let n = shared.accounts.len();
    // Bounded even if the kill never came: at most an hour of load.
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !shared.killed.load(Ordering::SeqCst) && Instant::now() < deadline {
        counter += 1;
        let id = format!("cd-{}-{worker}-{counter}", shared.run);
        let a = rng.gen_range(0..n);
        let b = (a + rng.gen_range(1..n)) % n;
        let alive = match rng.gen_range(0..100) {
            0..=9 => deposit_op(&shared, &mut conn, &id, a, rng.gen_range(1..=10_000)).await,
            10..=34 => {
                let m = Movement {
                    kind: Kind::Transfer,
                    account: a,
                    counterparty: Some(b),
                    cents: rng.gen_range(1..=5_000),
                };
                single(&shared, &mut conn, &id, m, None).await.is_some()
            }
            35..=54 => freeze_chain(&shared, &mut conn, &id, a, b, &mut rng).await,
            55..=74 => pay_freeze_chain(&shared, &mut conn, &id, a, b, &mut rng).await,
            75..=77 => {
                // More than any balance: refused (422), so it must never show up.
                let m = Movement { kind: Kind::Transfer, account: a, counterparty: Some(b), cents: REFUSED_CENTS };
                single(&shared, &mut conn, &id, m, None).await;
                true
            }
            _ => batch_op(&shared, &mut conn, &id, &mut rng).await,
        };
        if !alive && !shared.killed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn transfer_body(id: &str, m: &Movement, hold_id: Option<&str>, accounts: &[Account], explicit_amount: bool) -> Value {
    let account = |i: usize| Value::from(&*accounts[i].id);
    let mut body = json!({"id": id});
    let kind = match m.kind {
        Kind::Transfer => "transfer",
        Kind::Freeze => "freeze",
        Kind::Unfreeze => "unfreeze",
        Kind::UnfreezePay => "unfreeze_pay",
        Kind::PayFreeze => "pay_freeze",
        Kind::Deposit => "deposit",
    };
    body["type"] = Value::from(kind);
    match m.kind {
        Kind::Unfreeze | Kind::UnfreezePay => {
            body["hold_id"] = Value::from(hold_id.unwrap_or_default());
        }
        _ => body["payer"] = account(m.account),
    }
    if let Some(b) = m.counterparty {
        body["payee"] = account(b);
    }
    if explicit_amount {
        body["amount"] = Value::from(format_cents(m.cents));
    }
    if m.kind == Kind::Transfer {
        body["order_id"] = Value::from(format!("o-{id}"));
    }
    body
}

/// Sends one movement as a single POST /v1/transfers; returns its ack body.
async fn single(shared: &Shared, conn: &mut Conn, id: &str, m: Movement, hold_id: Option<&str>) -> Option<Value> {
    single_with(shared, conn, id, m, hold_id, true).await
}

async fn single_with(
    shared: &Shared,
    conn: &mut Conn,
    id: &str,
    m: Movement,
    hold_id: Option<&str>,
    explicit_amount: bool,
) -> Option<Value> {
    let body = Bytes::from(transfer_body(id, &m, hold_id, &shared.accounts, explicit_amount).to_string());
    let index = shared.register(vec![Op {
        id: id.to_string(),
        movement: m,
        request: Some(("/v1/transfers", body.clone())),
        outcome: Outcome::InFlight,
        checked: false,
    }]);
    match conn.post("/v1/transfers", Some(&shared.tokens.platform), body).await {
        Ok(answer) if answer.status.as_u16() == 201 => match answer.json() {
            Ok(value) => {
                let lsn = ack_lsn(&value).unwrap_or(0);
                shared.settle(index, Outcome::Acked { lsn, body: value.clone() });
                Some(value)
            }
            Err(err) => {
                shared.settle(index, Outcome::Unanswered(format!("201 not JSON: {err:#}")));
                None
            }
        },
        Ok(answer) => {
            shared.settle(index, failed_outcome(Some(answer.status.as_u16()), answer.error_key()));
            None
        }
        Err(err) => {
            shared.settle(index, Outcome::Unanswered(format!("{err:#}")));
            None
        }
    }
}

async fn deposit_op(shared: &Shared, conn: &mut Conn, id: &str, account: usize, cents: i64) -> bool {
    let notification_id = format!("N{id}");
    let index = shared.register(vec![Op {
        id: notification_id.clone(),
        movement: Movement { kind: Kind::Deposit, account, counterparty: None, cents },
        request: None,
        outcome: Outcome::InFlight,
        checked: false,
    }]);
    let target = &shared.accounts[account];
    let result = match crate::setup::credit_notification(&notification_id, target, cents) {
        Ok((body, signature)) => {
            conn.send(hyper::Method::POST, &crate::setup::notifications_path(), None, Some(signature), Some(body)).await
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(answer) if answer.status.as_u16() == 200 => {
            let outcome = match (answer.json(), credited_lsn(&answer, target)) {
                (Ok(body), Ok(lsn)) => Outcome::Acked { lsn, body },
                (_, Err(err)) => Outcome::Refused(format!("200 but not credited: {err:#}")),
                (Err(err), _) => Outcome::Unanswered(format!("{err:#}")),
            };
            let ok = matches!(outcome, Outcome::Acked { .. });
            shared.settle(index, outcome);
            ok
        }
        Ok(answer) => {
            shared.settle(index, failed_outcome(Some(answer.status.as_u16()), answer.error_key()));
            false
        }
        Err(err) => {
            shared.settle(index, Outcome::Unanswered(format!("{err:#}")));
            false
        }
    }
}

/// freeze x on A, unfreeze part of it, unfreeze_pay the rest (default amount) to B.
async fn freeze_chain(shared: &Shared, conn: &mut Conn, id: &str, a: usize, b: usize, rng: &mut StdRng) -> bool {
    let x = rng.gen_range(3..=3_000);
    let y = rng.gen_range(1..x);
    let freeze = Movement { kind: Kind::Freeze, account: a, counterparty: None, cents: x };
    if single(shared, conn, id, freeze, None).await.is_none() {
        return false;
    }
    let unfreeze = Movement { kind: Kind::Unfreeze, account: a, counterparty: None, cents: y };
    if single(shared, conn, &format!("{id}-u"), unfreeze, Some(id)).await.is_none() {
        return false;
    }
    let pay = Movement { kind: Kind::UnfreezePay, account: a, counterparty: Some(b), cents: x - y };
    single_with(shared, conn, &format!("{id}-p"), pay, Some(id), false).await.is_some()
}

/// pay_freeze x from A to B, then either unfreeze it on B or refund it to A.
async fn pay_freeze_chain(shared: &Shared, conn: &mut Conn, id: &str, a: usize, b: usize, rng: &mut StdRng) -> bool {
    let x = rng.gen_range(1..=3_000);
    let open = Movement { kind: Kind::PayFreeze, account: a, counterparty: Some(b), cents: x };
    if single(shared, conn, id, open, None).await.is_none() {
        return false;
    }
    let close = if rng.gen_bool(0.5) {
        Movement { kind: Kind::Unfreeze, account: b, counterparty: None, cents: x }
    } else {
        Movement { kind: Kind::UnfreezePay, account: b, counterparty: Some(a), cents: x }
    };
    single(shared, conn, &format!("{id}-c"), close, Some(id)).await.is_some()
}

/// A batch of up to 20 six-item chains touching every type.
async fn batch_op(shared: &Shared, conn: &mut Conn, id: &str, rng: &mut StdRng) -> bool {
    let n = shared.accounts.len();
    let chains = rng.gen_range(1..=20);
    let mut ops = Vec::new();
    let mut items = Vec::new();
    for c in 0..chains {
        let a = rng.gen_range(0..n);
        let b = (a + rng.gen_range(1..n)) % n;
        let x = rng.gen_range(3..=2_000);
        let y = rng.gen_range(1..x);
        let z = rng.gen_range(1..=2_000);
        let hold_f = format!("{id}-{c}-f");
        let hold_z = format!("{id}-{c}-z");
        let chain: [(String, Movement, Option<&str>); 6] = [
            (hold_f.clone(), Movement { kind: Kind::Freeze, account: a, counterparty: None, cents: x }, None),
            (
                format!("{id}-{c}-u"),
                Movement { kind: Kind::Unfreeze, account: a, counterparty: None, cents: y },
                Some(&hold_f),
            ),
            (
                format!("{id}-{c}-p"),
                Movement { kind: Kind::UnfreezePay, account: a, counterparty: Some(b), cents: x - y },
                Some(&hold_f),
            ),
            (hold_z.clone(), Movement { kind: Kind::PayFreeze, account: a, counterparty: Some(b), cents: z }, None),
            (
                format!("{id}-{c}-r"),
                Movement { kind: Kind::UnfreezePay, account: b, counterparty: Some(a), cents: z },
                Some(&hold_z),
            ),
            (
                format!("{id}-{c}-t"),
                Movement { kind: Kind::Transfer, account: a, counterparty: Some(b), cents: rng.gen_range(1..=2_000) },
                None,
            ),
        ];
        for (item_id, m, hold) in chain {
            // The unfreeze_pay of the freeze hold takes the default amount (the rest).
            let explicit = !item_id.ends_with("-p");
            items.push(transfer_body(&item_id, &m, hold, &shared.accounts, explicit));
            ops.push(Op { id: item_id, movement: m, request: None, outcome: Outcome::InFlight, checked: false });
        }
    }
    for (op, item) in ops.iter_mut().zip(&items) {
        op.request = Some(("/v1/transfers/batch", Bytes::from(json!({"transfers": [item]}).to_string())));
    }
    let count = ops.len();
    let first = shared.register(ops);
    let body = Bytes::from(json!({"transfers": items}).to_string());
    match conn.post("/v1/transfers/batch", Some(&shared.tokens.platform), body).await {
        Ok(answer) if answer.status.as_u16() == 200 => {
            let results = answer
                .json()
                .ok()
                .and_then(|v| v.get("results").and_then(Value::as_array).cloned())
                .unwrap_or_default();
            if results.len() != count {
                for i in 0..count {
                    shared.settle(
                        first + i,
                        Outcome::Unanswered(format!("batch answered {} results for {count} items", results.len())),
                    );
                }
                return false;
            }
            for (i, result) in results.into_iter().enumerate() {
                let status = result.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
                let body = result.get("body").cloned().unwrap_or(Value::Null);
                let outcome = if status == 201 {
                    Outcome::Acked { lsn: ack_lsn(&body).unwrap_or(0), body }
                } else {
                    failed_outcome(Some(status), crate::client::error_key(status, body.to_string().as_bytes()))
                };
                shared.settle(first + i, outcome);
            }
            true
        }
        Ok(answer) => {
            let outcome = failed_outcome(Some(answer.status.as_u16()), answer.error_key());
            for i in 0..count {
                shared.settle(first + i, outcome.clone());
            }
            false
        }
        Err(err) => {
            for i in 0..count {
                shared.settle(first + i, Outcome::Unanswered(format!("{err:#}")));
            }
            false
        }
    }
}
