//! One-time codes: issued, checked against their digest, expiring, single
//! use, replaced by the next one, voided when the email or the password
//! changes.

use super::*;

fn verify(code_hash: BlindIndex, at: DateTime<Utc>) -> UserCommand {
    UserCommand::VerifyEmail { code_hash, at }
}

fn reset(code_hash: BlindIndex, at: DateTime<Utc>) -> UserCommand {
    UserCommand::ResetPassword {
        code_hash,
        password_hash: new_hash(),
        at,
    }
}

fn password_reset() -> UserEvent {
    UserEvent::UserPasswordReset {
        user_id: user_id(),
        password_hash: new_hash(),
        at: at(),
    }
}

fn email_changed() -> UserEvent {
    UserEvent::UserEmailChanged {
        user_id: user_id(),
        previous_email: email(),
        email: new_email(),
        email_verified: false,
        at: at(),
    }
}

#[test]
fn a_verification_code_is_issued_for_the_current_email() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::RequestEmailVerification {
            code: issued_code(),
            at: at(),
        })
        .then_expect_events(vec![verification_requested(later())]);
}

#[test]
fn no_verification_code_is_issued_for_a_verified_email() {
    Given::with(())
        .given(vec![registered(), email_verified()])
        .when(UserCommand::RequestEmailVerification {
            code: issued_code(),
            at: at(),
        })
        .then_expect_error(UserError::EmailAlreadyVerified { email: email() });
}

#[test]
fn a_suspended_user_is_issued_no_code() {
    for command in [
        UserCommand::RequestEmailVerification {
            code: issued_code(),
            at: at(),
        },
        UserCommand::RequestPasswordReset {
            code: issued_code(),
            at: at(),
        },
    ] {
        Given::with(())
            .given(history_in(UserStatus::Suspended))
            .when(command)
            .then_expect_error(UserError::Suspended { user_id: user_id() });
    }
}

#[test]
fn the_right_code_verifies_the_email() {
    Given::with(())
        .given(vec![registered(), verification_requested(later())])
        .when(verify(code_hash(), at()))
        .then_expect_events(vec![email_verified()]);
}

#[test]
fn a_wrong_code_is_refused() {
    Given::with(())
        .given(vec![registered(), verification_requested(later())])
        .when(verify(wrong_code_hash(), at()))
        .then_expect_error(UserError::WrongCode {
            purpose: CodePurpose::EmailVerification,
        });
}

#[test]
fn a_code_is_refused_from_its_expiry_on() {
    Given::with(())
        .given(vec![registered(), verification_requested(at())])
        .when(verify(code_hash(), at()))
        .then_expect_error(UserError::CodeExpired {
            purpose: CodePurpose::EmailVerification,
            expired_at: at(),
        });
}

#[test]
fn verifying_without_a_code_is_refused() {
    Given::with(())
        .given(vec![registered()])
        .when(verify(code_hash(), at()))
        .then_expect_error(UserError::NoPendingCode {
            purpose: CodePurpose::EmailVerification,
        });
}

#[test]
fn a_verification_code_is_single_use() {
    let user = {
        let mut user = User::default();
        for event in [
            registered(),
            verification_requested(later()),
            email_verified(),
        ] {
            user.apply(event);
        }
        user
    };
    assert_eq!(user.pending_code(CodePurpose::EmailVerification), None);
    // Verified already: a second use is refused before the code is looked at.
    assert_eq!(
        user.decide(verify(code_hash(), at())),
        Err(UserError::EmailAlreadyVerified { email: email() })
    );
}

#[test]
fn a_new_code_replaces_the_earlier_one() {
    let newer = UserEvent::UserEmailVerificationRequested {
        user_id: user_id(),
        email: email(),
        code: OneTimeCode::parse("11112222").unwrap(),
        code_hash: index('e'),
        expires_at: later(),
        at: at(),
    };
    Given::with(())
        .given(vec![registered(), verification_requested(later()), newer])
        .when(verify(code_hash(), at()))
        .then_expect_error(UserError::WrongCode {
            purpose: CodePurpose::EmailVerification,
        });
}

#[test]
fn an_email_change_voids_both_codes() {
    Given::with(())
        .given(vec![
            registered(),
            verification_requested(later()),
            reset_requested(later()),
            email_changed(),
        ])
        .when(verify(code_hash(), at()))
        .then_expect_error(UserError::NoPendingCode {
            purpose: CodePurpose::EmailVerification,
        });
    Given::with(())
        .given(vec![
            registered(),
            reset_requested(later()),
            email_changed(),
        ])
        .when(reset(code_hash(), at()))
        .then_expect_error(UserError::NoPendingCode {
            purpose: CodePurpose::PasswordReset,
        });
}

#[test]
fn a_reset_code_is_issued_to_the_current_email() {
    Given::with(())
        .given(vec![registered()])
        .when(UserCommand::RequestPasswordReset {
            code: issued_code(),
            at: at(),
        })
        .then_expect_events(vec![reset_requested(later())]);
}

#[test]
fn the_right_reset_code_sets_the_new_password() {
    Given::with(())
        .given(vec![registered(), reset_requested(later())])
        .when(reset(code_hash(), at()))
        .then_expect_events(vec![password_reset()]);
}

#[test]
fn a_reset_code_is_single_use() {
    Given::with(())
        .given(vec![
            registered(),
            reset_requested(later()),
            password_reset(),
        ])
        .when(reset(code_hash(), at()))
        .then_expect_error(UserError::NoPendingCode {
            purpose: CodePurpose::PasswordReset,
        });
}

#[test]
fn a_password_change_voids_the_reset_code() {
    Given::with(())
        .given(vec![
            registered(),
            reset_requested(later()),
            UserEvent::UserPasswordChanged {
                user_id: user_id(),
                password_hash: new_hash(),
                at: at(),
            },
        ])
        .when(reset(code_hash(), at()))
        .then_expect_error(UserError::NoPendingCode {
            purpose: CodePurpose::PasswordReset,
        });
}

#[test]
fn a_wrong_or_expired_reset_code_is_refused() {
    Given::with(())
        .given(vec![registered(), reset_requested(later())])
        .when(reset(wrong_code_hash(), at()))
        .then_expect_error(UserError::WrongCode {
            purpose: CodePurpose::PasswordReset,
        });
    Given::with(())
        .given(vec![registered(), reset_requested(later())])
        .when(reset(code_hash(), later()))
        .then_expect_error(UserError::CodeExpired {
            purpose: CodePurpose::PasswordReset,
            expired_at: later(),
        });
}

#[test]
fn a_suspended_user_cannot_reset_with_a_code_issued_before() {
    Given::with(())
        .given(vec![registered(), reset_requested(later()), suspended()])
        .when(reset(code_hash(), at()))
        .then_expect_error(UserError::Suspended { user_id: user_id() });
}

#[test]
fn codes_parse_from_eight_digits_only_and_never_print() {
    assert_eq!(
        OneTimeCode::parse(" 01234567 \n").unwrap().as_str(),
        "01234567"
    );
    for bad in ["", "1234567", "123456789", "1234567a", "１２３４５６７８"] {
        assert!(
            matches!(
                OneTimeCode::parse(bad),
                Err(crate::values::ValueError::OneTimeCode { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(OneTimeCode::from_number(42).as_str(), "00000042");
    assert_eq!(OneTimeCode::from_number(u64::MAX).as_str().len(), 8);
    assert!(!format!("{:?}", code()).contains(code().as_str()));
    let error = OneTimeCode::parse("4821390x").unwrap_err().to_string();
    assert!(!error.contains("4821390"), "{error}");
}
