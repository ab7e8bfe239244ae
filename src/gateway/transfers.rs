//! The path of a transfer through the gateway: parse, check existence,
//! claim the id, route to the owning account actor, collect the outcome.
//!
//! Owns the batch plan (DESIGN.md, The path of one transfer, step 5): items
//! are grouped into waves; in each wave every owning account gets ONE
//! message with its items in array order. An item goes to a later wave
//! than any item it depends on (a hold opened earlier in the batch, or an
//! earlier item with the same id) and never to an earlier wave than a
//! previous item of the same owning account, so same-payer items keep
//! array order. Messages of different waves are not in flight together, so
//! an unfreeze of a hold opened in the batch reaches the hold's account
//! after the movement that opened it.
//!
//! A single transfer is a batch of one.
//!
//! Must not: hold balances, or wait for an in-flight id while holding
//! claims (see [`super::idempotency`]).

use hashbrown::{HashMap, HashTable};
use std::hash::BuildHasher;
use std::sync::Arc;

use actix::MailboxError;
use futures::future::join_all;

use super::idempotency::{Claim, Committed, IdHash, IdIndex, TryClaim, Waiter};
use crate::actors::account::{ApplyTransfers, ItemOutcome, TransferItem};
use crate::actors::directory::{Directory, Sent};
use crate::domain::account::TransferRequest;
use crate::domain::ids::AccountId;
use crate::domain::record::TransferType;
use crate::http::error::{ApiError, ApiResult, ErrorCode};

pub struct Transfers {
    pub directory: Arc<Directory>,
    pub ids: Arc<IdIndex>,
}

/// A request of at least this many items copies its operator's name (see
/// [`Transfers::submit`]).
const OWN_OPERATOR_ITEMS_MIN: usize = 64;

/// How many messages (or items) ahead a wave loads its accounts' entries.
const PREFETCH_ENTRIES_AHEAD: usize = 8;

/// How many items ahead a wave's claims load the id table's lines they
/// will probe ([`IdIndex::prefetch_claim`]).
const PREFETCH_CLAIMS_AHEAD: usize = 8;

/// Where an item goes and what it waits for.
struct Planned {
    index: usize,
    request: TransferRequest,
    /// The owning account (payer, or the hold's account).
    route: AccountId,
    /// An earlier batch item that opens the hold this item uses.
    hold_from: Option<usize>,
    wave: usize,
}

/// The last planned item with each client id (the batch's `id`s, and the
/// `hold_id`s that name them), found by the id stored in the item itself:
/// no copy of the id per item.
struct LastWithId {
    table: HashTable<usize>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl LastWithId {
    fn with_capacity(capacity: usize) -> Self {
        LastWithId { table: HashTable::with_capacity(capacity), hasher: Default::default() }
    }

    /// The index in `planned` of the last item with `id`.
    fn get(&self, id: &str, planned: &[Planned]) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        self.table.find(hash, |&at| &*planned[at].request.id == id).copied()
    }

    /// `planned[at]` is now the last item with its id.
    fn set(&mut self, at: usize, planned: &[Planned]) {
        let id = &*planned[at].request.id;
        let hash = self.hasher.hash_one(id);
        match self.table.find_mut(hash, |&earlier| &*planned[earlier].request.id == id) {
            Some(earlier) => *earlier = at,
            None => {
                let hasher = &self.hasher;
                self.table.insert_unique(hash, at, |&other| hasher.hash_one(&*planned[other].request.id));
            }
        }
    }
}

fn not_found(field: &str, id: AccountId) -> ApiError {
    ApiError::new(ErrorCode::AccountNotFound, format!("no account {id} (field `{field}`)"))
}

fn hold_not_found(hold_id: &str) -> ApiError {
    ApiError::new(ErrorCode::HoldNotFound, format!("no hold {hold_id}"))
}

pub fn id_reused(id: &str) -> ApiError {
    ApiError::new(ErrorCode::IdReused, format!("id {id} was already used with different fields"))
}

/// The account a committed movement's hold lives on, if it opened one.
fn hold_account(committed: &Committed) -> Option<AccountId> {
    committed.movement().filter(|movement| movement.kind.opens_hold()).and_then(|movement| movement.hold_account)
}

impl Transfers {
    /// Judge and apply every item; the answer of each, in order. Items that
    /// were already refused by parsing keep their error.
    pub async fn submit(
        &self,
        requests: Vec<ApiResult<TransferRequest>>,
        operator: &Arc<str>,
    ) -> Vec<ApiResult<Committed>> {
        // The caller's operator is one `Arc` shared by every request of its
        // token; each movement keeps a clone, and clones and drops of one
        // count from every thread (gateway, accounts, history) fight over
        // its cache line. A batch gets its own copy, which keeps that
        // traffic local; a small request shares the token's (a copy per
        // movement would be kept as long as the movement: memory).
        let operator: Arc<str> =
            if requests.len() >= OWN_OPERATOR_ITEMS_MIN { Arc::from(&**operator) } else { Arc::clone(operator) };
        let mut outcomes: Vec<Option<ApiResult<Committed>>> = Vec::with_capacity(requests.len());
        let mut planned: Vec<Planned> = Vec::with_capacity(requests.len());
        let mut last_with_id = LastWithId::with_capacity(requests.len());
        let mut last_wave_of: HashMap<AccountId, usize> = HashMap::with_capacity(requests.len());
        let mut wave_of: Vec<usize> = Vec::with_capacity(requests.len());
        let mut requests = requests.into_iter();
        for index in 0.. {
            // The entries of the accounts a few items ahead, for the checks
            // that they exist.
            if let Some(Ok(ahead)) = requests.as_slice().get(PREFETCH_ENTRIES_AHEAD) {
                for account in [ahead.payer, ahead.payee].into_iter().flatten() {
                    self.directory.prefetch_entry(account);
                }
            }
            let Some(request) = requests.next() else { break };
            wave_of.push(0);
            let request = match request {
                Ok(request) => request,
                Err(error) => {
                    outcomes.push(Some(Err(error)));
                    continue;
                }
            };
            match self.plan(index, request, &planned, &last_with_id, &wave_of).await {
                Ok(mut item) => {
                    let after_account = last_wave_of.get(&item.route).copied().unwrap_or(0);
                    item.wave = item.wave.max(after_account);
                    wave_of[index] = item.wave;
                    last_wave_of.insert(item.route, item.wave);
                    planned.push(item);
                    last_with_id.set(planned.len() - 1, &planned);
                    outcomes.push(None);
                }
                Err(error) => outcomes.push(Some(Err(error))),
            }
        }
        let waves = planned.iter().map(|item| item.wave + 1).max().unwrap_or(0);
        let mut by_wave: Vec<Vec<Planned>> = if waves == 1 {
            // Most batches: no item waits for another.
            vec![planned]
        } else {
            let mut by_wave: Vec<Vec<Planned>> = (0..waves).map(|_| Vec::new()).collect();
            for item in planned {
                by_wave[item.wave].push(item);
            }
            by_wave
        };
        for wave in by_wave.drain(..) {
            self.run_wave(wave, &mut outcomes, &operator).await;
        }
        outcomes.into_iter().map(|outcome| outcome.expect("every item was answered")).collect()
    }

    async fn plan(
        &self,
        index: usize,
        request: TransferRequest,
        planned: &[Planned],
        last_with_id: &LastWithId,
        wave_of: &[usize],
    ) -> ApiResult<Planned> {
        if let Some(payer) = request.payer {
            self.directory.get(payer).ok_or_else(|| not_found("payer", payer))?;
        }
        if let Some(payee) = request.payee {
            self.directory.get(payee).ok_or_else(|| not_found("payee", payee))?;
        }
        let mut wave = 0;
        let mut hold_from = None;
        let route = if request.kind.uses_hold() {
            let hold_id = request.hold_id.as_deref().expect("parsing requires hold_id");
            let in_batch =
                last_with_id.get(hold_id, planned).map(|at| &planned[at]).filter(|item| item.request.kind.opens_hold());
            match in_batch {
                Some(opener) => {
                    hold_from = Some(opener.index);
                    wave = wave_of[opener.index] + 1;
                    opener_hold_account(&opener.request).expect("hold openers name their hold account")
                }
                None => self
                    .ids
                    .get(hold_id)
                    .await
                    .map(Committed::available)
                    .transpose()?
                    .as_ref()
                    .and_then(hold_account)
                    .ok_or_else(|| hold_not_found(hold_id))?,
            }
        } else {
            request.payer.expect("parsing requires payer")
        };
        if let Some(earlier) = last_with_id.get(&request.id, planned) {
            wave = wave.max(wave_of[planned[earlier].index] + 1);
        }
        Ok(Planned { index, request, route, hold_from, wave })
    }

    async fn run_wave(
        &self,
        mut wave: Vec<Planned>,
        outcomes: &mut [Option<ApiResult<Committed>>],
        operator: &Arc<str>,
    ) {
        // A hold that was to be opened earlier in the batch but was not: look
        // for it among committed holds instead.
        for item in &mut wave {
            if let Some(opener) = item.hold_from {
                if !matches!(outcomes[opener], Some(Ok(_))) {
                    let hold_id = item.request.hold_id.as_deref().unwrap_or("");
                    match self.ids.get(hold_id).await.map(Committed::available).transpose() {
                        Err(error) => outcomes[item.index] = Some(Err(error)),
                        Ok(found) => match found.as_ref().and_then(hold_account) {
                            Some(account) => item.route = account,
                            None => outcomes[item.index] = Some(Err(hold_not_found(hold_id))),
                        },
                    }
                }
            }
        }
        wave.retain(|item| outcomes[item.index].is_none());
        let claims = self.claim_all(&wave).await;
        // Each account's message sized once: a busy payer's items are not
        // copied again every time its vector doubles. Messages go in the
        // order their accounts first appear; `routes` says where each
        // account's is (its count, then its place).
        let mut routes: HashMap<AccountId, (usize, usize)> = HashMap::with_capacity(wave.len());
        for (item, _) in wave.iter().zip(&claims).filter(|(_, claim)| claim.is_ok()) {
            routes.entry(item.route).or_insert((0, usize::MAX)).0 += 1;
        }
        let mut messages: Vec<(AccountId, (Indexes, Vec<TransferItem>))> = Vec::with_capacity(routes.len());
        for (item, claim) in wave.into_iter().zip(claims) {
            match claim {
                Ok(claim) => {
                    let (count, at) = routes.get_mut(&item.route).expect("every claimed item's account was counted");
                    if *at == usize::MAX {
                        *at = messages.len();
                        messages.push((item.route, (Indexes::with_capacity(*count), Vec::with_capacity(*count))));
                    }
                    let (_, (indexes, items)) = &mut messages[*at];
                    indexes.push(item.index);
                    items.push(TransferItem { request: item.request, claim });
                }
                Err(committed) => {
                    let answer = match committed.available() {
                        Ok(committed) if committed.movement().is_some_and(|m| item.request.matches(m)) => Ok(committed),
                        Ok(_) => Err(id_reused(&item.request.id)),
                        Err(error) => Err(error),
                    };
                    outcomes[item.index] = Some(answer);
                }
            }
        }
        // Idle payers answer at once (applied in place); only messages that
        // went to a live actor's mailbox are awaited. The accounts of the
        // messages a few places ahead are loaded meanwhile (over many
        // accounts each is a cache miss, docs/PERFORMANCE.md).
        let mut waiting = Vec::new();
        let mut messages = messages.into_iter();
        loop {
            let ahead = messages.as_slice();
            if let Some((route, (_, items))) = ahead.get(PREFETCH_ENTRIES_AHEAD) {
                self.prefetch_accounts(*route, items);
                items.iter().for_each(|item| item.claim.prefetch());
            }
            let Some((route, (indexes, items))) = messages.next() else { break };
            let entry = self.directory.get(route).expect("routes are existing accounts");
            let message = ApplyTransfers { items, operator: Arc::clone(operator) };
            match self.directory.send_transfers(route, entry, message) {
                Sent::Applied(answers) => record_answers(outcomes, indexes, Ok(answers)),
                Sent::Mailbox(answers) => waiting.push(async move { (indexes, answers.await) }),
            }
        }
        for (indexes, answers) in join_all(waiting).await {
            record_answers(outcomes, indexes, answers);
        }
    }

    /// Start loading the entries of a message's account and its items'
    /// payees.
    fn prefetch_accounts(&self, route: AccountId, items: &[TransferItem]) {
        self.directory.prefetch_entry(route);
        for payee in items.iter().filter_map(|item| item.request.payee) {
            self.directory.prefetch_entry(payee);
        }
    }

    /// Claim every item's id, or (if any is busy elsewhere) release all,
    /// wait for the busy ones and try again: never wait holding a claim.
    async fn claim_all(&self, wave: &[Planned]) -> Vec<Result<Claim, Committed>> {
        let hashes: Vec<IdHash> = wave.iter().map(|item| self.ids.hash(&item.request.id)).collect();
        loop {
            let mut claims = Vec::with_capacity(wave.len());
            let mut busy: Vec<Waiter> = Vec::new();
            for (at, (item, &hash)) in wave.iter().zip(&hashes).enumerate() {
                if let Some(&ahead) = hashes.get(at + PREFETCH_CLAIMS_AHEAD) {
                    self.ids.prefetch_claim(ahead);
                    self.ids.prefetch_archived(&wave[at + PREFETCH_CLAIMS_AHEAD].request.id);
                }
                match self.ids.try_claim_hashed(&item.request.id, hash) {
                    TryClaim::Claimed(claim) => claims.push(Ok(claim)),
                    TryClaim::Done(committed) => claims.push(Err(committed)),
                    TryClaim::Busy(waiter) => busy.push(waiter),
                }
            }
            if busy.is_empty() {
                return claims;
            }
            drop(claims);
            for waiter in busy {
                waiter.wait().await;
            }
        }
    }
}

/// Where one account message's items sit in the request: nearly always
/// one or two (a batch over many accounts), kept without an allocation.
type Indexes = smallvec::SmallVec<[usize; 2]>;

/// One account message's answers, into the batch's outcomes (each item at
/// its index in the request).
fn record_answers(
    outcomes: &mut [Option<ApiResult<Committed>>],
    indexes: Indexes,
    answers: Result<Vec<ItemOutcome>, MailboxError>,
) {
    match answers {
        Ok(results) => {
            for (index, result) in indexes.into_iter().zip(results) {
                outcomes[index] = Some(result.map_err(ApiError::from));
            }
        }
        Err(error) => {
            for index in indexes {
                outcomes[index] = Some(Err(ApiError::from(error)));
            }
        }
    }
}

fn opener_hold_account(request: &TransferRequest) -> Option<AccountId> {
    match request.kind {
        TransferType::Freeze => request.payer,
        TransferType::PayFreeze => request.payee,
        _ => None,
    }
}
