//! Password hashing with argon2id (RustCrypto `argon2`), off the async
//! runtime: one hash costs tens of milliseconds of CPU, which would stall
//! every other request on the worker thread that ran it.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::settings::AccountSettings;

#[derive(Debug, thiserror::Error)]
pub enum PasswordHashingError {
    #[error("argon2 parameters refused: {0}")]
    Params(argon2::Error),
    #[error("hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("the hashing task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Arc<Argon2<'static>>,
    /// Verified against when the email is unknown, so that an unknown email
    /// and a wrong password cost the same time.
    decoy: Arc<String>,
}

impl PasswordHasher {
    pub fn new(settings: &AccountSettings) -> Result<Self, PasswordHashingError> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(PasswordHashingError::Params)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy = argon2
            .hash_password(
                b"decoy password, never anyone's",
                &SaltString::generate(&mut OsRng),
            )
            .map_err(PasswordHashingError::Hash)?
            .to_string();
        Ok(Self {
            argon2: Arc::new(argon2),
            decoy: Arc::new(decoy),
        })
    }

    /// The PHC string of `password` under a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, PasswordHashingError> {
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || {
            argon2
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
                .map(|hash| hash.to_string())
                .map_err(PasswordHashingError::Hash)
        })
        .await?
    }

    /// Whether `password` matches `hash`; with no hash (an unknown account)
    /// a decoy is checked instead, which takes as long and never matches.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, PasswordHashingError> {
        let argon2 = self.argon2.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.as_ref().clone());
        tokio::task::spawn_blocking(move || {
            // A hash that does not parse (an erased account's placeholder)
            // is checked as the decoy would be, and fails.
            let matches = match PasswordHash::new(&hash) {
                Ok(parsed) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
                Err(_) => false,
            };
            matches && known
        })
        .await
        .map_err(PasswordHashingError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        // The cheapest parameters argon2 accepts: these tests check
        // behaviour, not cost.
        PasswordHasher::new(&AccountSettings {
            session_ttl_seconds: 60,
            argon2_memory_kib: 8,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            guest_data_retention_days: 1,
            code_ttl_seconds: 60,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = hasher();
        let hash = hasher.hash("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
        assert_ne!(
            hash,
            hasher.hash("correct horse battery".into()).await.unwrap(),
            "salted"
        );
        assert!(hasher
            .verify("correct horse battery".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher
            .verify("correct horse batterY".into(), Some(hash))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn an_unknown_account_or_an_unparsable_hash_never_matches() {
        let hasher = hasher();
        assert!(!hasher
            .verify("decoy password, never anyone's".into(), None)
            .await
            .unwrap());
        assert!(!hasher
            .verify("anything".into(), Some("erased".into()))
            .await
            .unwrap());
    }
}
