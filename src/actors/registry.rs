//! The registry actor: applications, their approval, and the opening of
//! accounts (scenario 1). One actor, so application and account ids are
//! handed out in order with no lock.
//!
//! Owns [`Applications`] and the opening of accounts. Approval appends the
//! record that opens the account, registers it in the directory (status
//! `signing`, idle: its actor starts with its first message) and asks the
//! account's bank to sign it. Must not touch balances.

use std::sync::Arc;

use actix::prelude::*;

use super::bank::Banks;
use super::directory::{AccountInfo, AccountRef, Directory};
use super::log::{LedgerLog, LogError};
use crate::domain::account::{AccountBook, AccountStatus};
use crate::domain::ids::{AccountId, ApplicationId};
use crate::domain::record::{Application, ApplicationDecision, Record, SettlementAccount};
use crate::domain::registry::{ApplicationState, Applications};
use crate::limits;

pub struct RegistryActor {
    applications: Applications,
    log: LedgerLog,
    directory: Arc<Directory>,
    banks: Arc<Banks>,
}

impl RegistryActor {
    pub fn new(applications: Applications, log: LedgerLog, directory: Arc<Directory>, banks: Arc<Banks>) -> Self {
        Self { applications, log, directory, banks }
    }

    fn append(&mut self, record: Record) -> Result<u64, LogError> {
        self.log.admit()?;
        let lsn = self.log.append(vec![record.clone()])?.start;
        self.applications.apply(&record);
        Ok(lsn)
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;
}

#[derive(Debug)]
pub enum RegistryError {
    NotFound,
    InvalidState,
    DuplicateCustomer,
    NameMismatch,
    UnknownBank,
    TooManyAccounts,
    Log(LogError),
}

impl From<LogError> for RegistryError {
    fn from(error: LogError) -> Self {
        RegistryError::Log(error)
    }
}

pub type Answer = Result<(u64, ApplicationState), RegistryError>;

pub struct CreateApplication {
    pub name: Arc<str>,
    pub credential_no: Box<str>,
    pub bank: Box<str>,
    pub settlement_account: SettlementAccount,
    pub operator: Arc<str>,
}

impl Message for CreateApplication {
    type Result = Answer;
}

impl Handler<CreateApplication> for RegistryActor {
    type Result = Answer;

    fn handle(&mut self, request: CreateApplication, _: &mut Self::Context) -> Answer {
        let directory = &self.directory;
        if self.applications.is_duplicate(&request.credential_no, |id| directory.status(id)) {
            return Err(RegistryError::DuplicateCustomer);
        }
        if request.settlement_account.account_name != request.name {
            return Err(RegistryError::NameMismatch);
        }
        if self.banks.get(&request.bank).is_none() {
            return Err(RegistryError::UnknownBank);
        }
        let mut settlement_account = request.settlement_account;
        // The same name: one allocation for both, kept for the account's life.
        settlement_account.account_name = Arc::clone(&request.name);
        let application = Arc::new(Application {
            application_id: self.applications.next_application_id(),
            name: request.name,
            credential_no: request.credential_no,
            bank: request.bank,
            settlement_account,
            created_at_ms: crate::clock::now_ms(),
            operator: request.operator,
        });
        let id = application.application_id;
        let lsn = self.append(Record::ApplicationCreated(application))?;
        Ok((lsn, self.applications.get(id).expect("just created").clone()))
    }
}

pub struct Decide {
    pub application_id: ApplicationId,
    pub approve: bool,
    pub text: Option<Box<str>>,
    pub operator: Arc<str>,
}

impl Message for Decide {
    type Result = Answer;
}

impl Handler<Decide> for RegistryActor {
    type Result = Answer;

    fn handle(&mut self, request: Decide, _: &mut Self::Context) -> Answer {
        let state = self.applications.get(request.application_id).ok_or(RegistryError::NotFound)?;
        if state.status() != crate::domain::registry::ApplicationStatus::PendingReview {
            return Err(RegistryError::InvalidState);
        }
        let application = Arc::clone(&state.application);
        let account_id = request.approve.then(|| self.applications.next_account_id());
        if account_id.is_some_and(|id| id.0 > limits::ACCOUNTS_MAX) {
            return Err(RegistryError::TooManyAccounts);
        }
        let decision = ApplicationDecision {
            application_id: request.application_id,
            account_id,
            text: request.text,
            decided_at_ms: crate::clock::now_ms(),
            operator: request.operator,
        };
        let record = if request.approve {
            Record::ApplicationApproved(decision.clone())
        } else {
            Record::ApplicationRejected(decision.clone())
        };
        let lsn = self.append(record)?;
        if let Some(account_id) = account_id {
            self.open_account(account_id, &application, decision.decided_at_ms);
        }
        Ok((lsn, self.applications.get(request.application_id).expect("decided").clone()))
    }
}

impl RegistryActor {
    fn open_account(&self, account_id: AccountId, application: &Arc<Application>, created_at_ms: i64) {
        let info = Arc::new(account_info(account_id, application, created_at_ms));
        self.directory.insert(Arc::clone(&info), AccountStatus::Signing, None, AccountBook::default());
        let entry = self.directory.get(account_id).expect("just inserted");
        self.banks.start_signing(&info, AccountRef { directory: Arc::clone(&self.directory), entry });
    }
}

pub fn account_info(account_id: AccountId, application: &Arc<Application>, created_at_ms: i64) -> AccountInfo {
    AccountInfo { account_id, created_at_ms, application: Arc::clone(application) }
}

pub struct GetApplication(pub ApplicationId);

impl Message for GetApplication {
    type Result = Option<ApplicationState>;
}

impl Handler<GetApplication> for RegistryActor {
    type Result = Option<ApplicationState>;

    fn handle(&mut self, request: GetApplication, _: &mut Self::Context) -> Self::Result {
        self.applications.get(request.0).cloned()
    }
}

/// One page of applications in id order, after application number
/// `after`, optionally of one status; `more` says whether another follows.
pub struct ListApplications {
    pub status: Option<crate::domain::registry::ApplicationStatus>,
    pub after: u64,
    pub limit: usize,
}

pub struct ApplicationPage {
    pub items: Vec<ApplicationState>,
    pub more: bool,
}

impl Message for ListApplications {
    type Result = ApplicationPage;
}

impl Handler<ListApplications> for RegistryActor {
    type Result = MessageResult<ListApplications>;

    fn handle(&mut self, request: ListApplications, _: &mut Self::Context) -> Self::Result {
        let all = self.applications.all();
        let start = usize::try_from(request.after).unwrap_or(usize::MAX).min(all.len());
        let mut matching =
            all[start..].iter().filter(|state| request.status.is_none_or(|status| state.status() == status));
        let items: Vec<ApplicationState> = matching.by_ref().take(request.limit).cloned().collect();
        let more = matching.next().is_some();
        MessageResult(ApplicationPage { items, more })
    }
}
