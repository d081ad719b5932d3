//! Operators' accounts and their sessions: what the dashboard signs in with.
//! A user has a role in a tenant, as an API key has, and acts with it; its
//! password is kept as an Argon2id hash (PHC string), its sessions by the
//! SHA-256 of their token.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jiff::SignedDuration;
use updraft_core::{Access, FieldError, Role, Session, User};

use crate::actor::{new_id, new_token, token_hash};
use crate::error::{Error, ErrorCode, Result};
use crate::{Actor, App};

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
/// The longest password accepted (hashing is costly; nobody types more).
pub const MAX_PASSWORD: usize = 256;

/// A user as an administrator asks for it.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub role: String,
    pub password: String,
    /// Another tenant's (the server administrator's to give); the actor's by default.
    pub tenant: Option<String>,
}

/// A session begun by signing in: its token (for the cookie, shown once) and what it is.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: String,
    pub session: Session,
}

/// Checks a user name: 1 to 64 of letters, digits and `. _ @ + -`.
fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-'));
    if !ok {
        errors.push(FieldError::new("name", "1 to 64 letters, digits and . _ @ + -"));
    }
}

fn check_password(password: &str, errors: &mut Vec<FieldError>) {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        errors.push(FieldError::new("password", format!("{MIN_PASSWORD} to {MAX_PASSWORD} characters")));
    }
}

/// The password's Argon2id hash, with a fresh salt, as a PHC string.
fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::internal("random salt", e))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal("salt", e))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal("password hash", e))
}

/// Whether `password` matches the PHC string `hash` (false for a hash it cannot read).
fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash no password matches, verified when the name is unknown so that
/// signing in takes as long for a name that does not exist.
const NOBODY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0VcfJiUrdfsmI5mPTyHSnNI8rV+zfeufl6sJvFzHmqM";

fn signed_out() -> Error {
    Error::new(ErrorCode::Unauthorized, "unknown name or wrong password")
}

impl App {
    /// Creates a user account (an administrator's to do; another tenant's, the
    /// server administrator's).
    pub async fn add_user(&self, actor: &Actor, input: NewUser) -> Result<User> {
        actor.require(Access::ManageKeys)?;
        let tenant = match &input.tenant {
            Some(t) if t != actor.tenant() => {
                actor.require_server_admin()?;
                self.get_tenant(actor, t).await?.id
            }
            _ => actor.tenant().to_owned(),
        };
        let mut errors = Vec::new();
        check_name(&input.name, &mut errors);
        check_password(&input.password, &mut errors);
        let role = Role::parse(&input.role);
        if role.is_none() {
            errors.push(FieldError::new("role", "admin, operator, viewer or consent"));
        }
        let Some(role) = role.filter(|_| errors.is_empty()) else { return Err(Error::invalid(errors)) };
        let user = User { id: new_id("usr_"), tenant, name: input.name, role, created_at: self.now() };
        self.store.create_user(&user, &hash_password(&input.password)?).await?;
        tracing::info!(user = %user.id, tenant = %user.tenant, role = role.as_str(), "user created");
        Ok(user)
    }

    /// The tenant's users.
    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<User>> {
        actor.require(Access::ManageKeys)?;
        Ok(self.store.list_users(actor.tenant()).await?)
    }

    /// Deletes a user of the actor's tenant; its sessions end.
    pub async fn delete_user(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Access::ManageKeys)?;
        self.store.delete_user(actor.tenant(), id).await?;
        tracing::info!(user = %id, "user deleted");
        Ok(())
    }

    /// Replaces a user's password (an administrator's, or the user's own);
    /// its sessions end.
    pub async fn set_user_password(&self, actor: &Actor, id: &str, password: &str) -> Result<()> {
        if !matches!(actor, Actor::User(u) if u.id == id) {
            actor.require(Access::ManageKeys)?;
        }
        let mut errors = Vec::new();
        check_password(password, &mut errors);
        if !errors.is_empty() {
            return Err(Error::invalid(errors));
        }
        self.store.set_user_password(actor.tenant(), id, &hash_password(password)?).await?;
        Ok(())
    }

    /// Signs a user in: a new session of `session_hours`, or `unauthorized`
    /// for an unknown name or a wrong password alike.
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<SignedIn> {
        let found = if password.chars().count() > MAX_PASSWORD { None } else { self.store.user_by_name(name).await? };
        let Some((user, hash)) = found else {
            verify_password(password, NOBODY);
            return Err(signed_out());
        };
        if !verify_password(password, &hash) {
            tracing::info!(user = %user.id, "sign-in refused: wrong password");
            return Err(signed_out());
        }
        let token = new_token("upd_s_");
        let now = self.now();
        let expires_at = now + SignedDuration::from_hours(self.config.session_hours.clamp(1, 24 * 30) as i64);
        self.store.create_session(&token_hash(&token), &user, now, expires_at).await?;
        tracing::info!(user = %user.id, "signed in");
        Ok(SignedIn { token, session: Session { user, created_at: now, expires_at } })
    }

    /// The user a session token names, as an actor; `unauthorized` once it ended.
    pub async fn authenticate_session(&self, token: &str) -> Result<Actor> {
        match self.store.session(&token_hash(token), self.now()).await? {
            Some(s) => Ok(Actor::User(s.user)),
            None => Err(Error::new(ErrorCode::Unauthorized, "the session ended: sign in again")),
        }
    }

    /// Ends a session (signing out).
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        Ok(self.store.delete_session(&token_hash(token)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify_and_nobody_is_a_real_hash() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batter", &h));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
        // The stand-in hash must parse, or an unknown name would answer faster than a wrong password.
        assert!(PasswordHash::new(NOBODY).is_ok());
        assert!(!verify_password("", NOBODY));
    }
}
