//! The sandbox bank (API.md, The sandbox bank): an in-process bank that
//! behaves like a real one, deterministically, so every path can be driven
//! from outside.
//!
//! Signing: answers after `sign_delay_ms`, sub-account `3109401` + the 8
//! digits of the account number; a `credential_no` ending in `FAIL` is
//! refused.

use std::time::Duration;

use actix::prelude::*;

use super::Sign;
use crate::actors::account::SignResult;
use crate::config::BankConfig;

pub struct SandboxBank {
    config: BankConfig,
}

impl SandboxBank {
    pub fn new(config: BankConfig) -> Self {
        Self { config }
    }

    /// The sub-account number the sandbox gives an account.
    pub fn sub_account_no(account_number: u64) -> String {
        format!("3109401{:08}", account_number % 100_000_000)
    }
}

impl Actor for SandboxBank {
    type Context = Context<Self>;
}

impl Handler<Sign> for SandboxBank {
    type Result = ();

    fn handle(&mut self, request: Sign, ctx: &mut Self::Context) {
        let delay = Duration::from_millis(self.config.sign_delay_ms);
        ctx.run_later(delay, move |_, _| {
            let outcome = if request.info.credential_no.ends_with("FAIL") {
                Err("SIGN_REFUSED: the bank refused the credential".into())
            } else {
                Ok(Self::sub_account_no(request.info.account_id.0).into())
            };
            request.account.do_send(SignResult { outcome });
        });
    }
}
