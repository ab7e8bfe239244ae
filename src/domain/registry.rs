//! Applications (开户申请) and who may apply: pure state and rules.
//!
//! Owns the application records and the duplicate-customer rule. The
//! registry actor and recovery both fold records through
//! [`Applications::apply`]. Must not know about actors or the log.

use std::sync::Arc;

use super::account::AccountStatus;
use super::ids::{AccountId, ApplicationId};
use super::keyed_ids::KeyedIds;
use super::record::{Application, ApplicationDecision, Record};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplicationStatus {
    PendingReview,
    Approved,
    Rejected,
}

impl ApplicationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingReview => "pending_review",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::PendingReview, Self::Approved, Self::Rejected].into_iter().find(|status| status.as_str() == text)
    }
}

#[derive(Clone, Debug)]
pub struct ApplicationState {
    pub application: Arc<Application>,
    /// The approval or rejection; `None` while pending review.
    pub decision: Option<ApplicationDecision>,
}

impl ApplicationState {
    /// Read from the decision (an approval names the account it opened),
    /// not kept beside it: 8 bytes less per application, a million kept.
    pub fn status(&self) -> ApplicationStatus {
        match &self.decision {
            None => ApplicationStatus::PendingReview,
            Some(decision) if decision.account_id.is_some() => ApplicationStatus::Approved,
            Some(_) => ApplicationStatus::Rejected,
        }
    }
}

#[derive(Default)]
pub struct Applications {
    /// Index = application number - 1.
    applications: Vec<ApplicationState>,
    /// Credential -> its latest application (the credential itself is
    /// read from the application, not copied).
    latest_by_credential: KeyedIds<ApplicationId>,
    accounts_opened: u64,
}

impl Applications {
    pub fn get(&self, id: ApplicationId) -> Option<&ApplicationState> {
        state_of(&self.applications, id)
    }

    pub fn next_application_id(&self) -> ApplicationId {
        ApplicationId(self.applications.len() as u64 + 1)
    }

    pub fn next_account_id(&self) -> AccountId {
        AccountId(self.accounts_opened + 1)
    }

    /// A credential may apply unless it has an application pending review
    /// or an account that is signing or active (`status_of` reads it).
    pub fn is_duplicate(&self, credential_no: &str, status_of: impl Fn(AccountId) -> Option<AccountStatus>) -> bool {
        let latest = self.latest_by_credential.get(credential_no, credential_of(&self.applications));
        let Some(latest) = latest.and_then(|id| self.get(id)) else {
            return false;
        };
        match latest.status() {
            ApplicationStatus::PendingReview => true,
            ApplicationStatus::Rejected => false,
            ApplicationStatus::Approved => {
                let account = latest.decision.as_ref().and_then(|decision| decision.account_id);
                account.and_then(status_of).is_some_and(|status| status != AccountStatus::SignFailed)
            }
        }
    }

    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::ApplicationCreated(application) => {
                assert_eq!(application.application_id, self.next_application_id(), "application ids are sequential");
                self.applications.push(ApplicationState { application: Arc::clone(application), decision: None });
                let credential_of = credential_of(&self.applications);
                self.latest_by_credential.insert(&application.credential_no, application.application_id, credential_of);
            }
            Record::ApplicationApproved(decision) => {
                let account_id = decision.account_id.expect("approvals open an account");
                assert_eq!(account_id, self.next_account_id(), "account ids are sequential");
                self.accounts_opened += 1;
                self.decide(decision);
            }
            Record::ApplicationRejected(decision) => {
                assert!(decision.account_id.is_none(), "rejections open no account");
                self.decide(decision);
            }
            _ => {}
        }
    }

    fn decide(&mut self, decision: &ApplicationDecision) {
        let index = (decision.application_id.0 - 1) as usize;
        let state = self.applications.get_mut(index).expect("decided applications exist");
        assert_eq!(state.status(), ApplicationStatus::PendingReview, "only pending applications are decided");
        state.decision = Some(decision.clone());
    }

    /// Room for `additional` more applications without growing (a state
    /// checkpoint's restore knows how many it holds).
    pub fn reserve(&mut self, additional: usize) {
        self.applications.reserve(additional);
        self.latest_by_credential.reserve(additional, credential_of(&self.applications));
    }

    /// Every application, in id order (index = application number - 1).
    pub fn all(&self) -> &[ApplicationState] {
        &self.applications
    }

    pub fn len(&self) -> usize {
        self.applications.len()
    }

    pub fn is_empty(&self) -> bool {
        self.applications.is_empty()
    }
}

/// Application `id`'s state (index = application number - 1).
fn state_of(applications: &[ApplicationState], id: ApplicationId) -> Option<&ApplicationState> {
    applications.get(usize::try_from(id.0).ok()?.checked_sub(1)?)
}

/// How the credential index reads an application's credential back.
fn credential_of<'a>(applications: &'a [ApplicationState]) -> impl Fn(ApplicationId) -> Option<&'a str> {
    move |id| state_of(applications, id).map(|state| &*state.application.credential_no)
}
