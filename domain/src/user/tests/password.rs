//! The password policy (NIST SP 800-63B-4): a length window counted in
//! characters, any Unicode but control characters, no common password.

use super::*;

fn parse(raw: &str) -> Result<Password, PasswordError> {
    Password::parse(raw.to_owned())
}

#[test]
fn the_length_window_is_8_to_128_characters() {
    assert_eq!(PASSWORD_MIN_CHARS, 8);
    assert_eq!(PASSWORD_MAX_CHARS, 128);
    assert_eq!(
        parse("k7#vQz!"),
        Err(PasswordError::TooShort { min: 8, length: 7 })
    );
    assert_eq!(parse("k7#vQz!m").unwrap().expose_secret(), "k7#vQz!m");
    let longest = "k7#vQz!m".repeat(16);
    assert_eq!(parse(&longest).unwrap().expose_secret(), longest);
    assert_eq!(
        parse(&format!("{longest}x")),
        Err(PasswordError::TooLong {
            max: 128,
            length: 129
        })
    );
}

#[test]
fn characters_are_counted_not_bytes() {
    // 7 Thai characters are 21 bytes: still too short.
    let thai = "รหัสผ่า";
    assert_eq!(thai.len(), 21);
    assert_eq!(
        parse(thai),
        Err(PasswordError::TooShort { min: 8, length: 7 })
    );
    assert!(parse("รหัสผ่าน").is_ok());
    // 128 four-byte characters (512 bytes) fit; 129 do not.
    let emoji = "🔑".repeat(128);
    assert!(parse(&emoji).is_ok());
    assert_eq!(
        parse(&format!("{emoji}🔑")),
        Err(PasswordError::TooLong {
            max: 128,
            length: 129
        })
    );
}

#[test]
fn no_composition_rule_applies_and_spaces_are_kept() {
    for good in [
        "correct horse battery staple",
        "qzxvbnmwtrpl",
        "  leading and trailing  ",
        "ผ่านได้ไหมนะ",
        "naïve café ünïcødé",
    ] {
        assert_eq!(parse(good).unwrap().expose_secret(), good, "{good:?}");
    }
}

#[test]
fn control_characters_are_refused() {
    for bad in [
        "abcd\u{0}efgh",
        "abcdefgh\n",
        "abcd\tefgh",
        "abcd\u{1b}[31m",
        "abcd\u{1f}efgh",
        "abcd\u{7f}efgh",
        "abcd\u{85}efgh",
        "abcd\u{9f}efgh",
    ] {
        assert_eq!(parse(bad), Err(PasswordError::ControlCharacter), "{bad:?}");
    }
}

#[test]
fn common_passwords_are_refused_in_any_case() {
    for bad in [
        "password1",
        "PASSWORD1",
        "Password1",
        "password",
        "12345678",
    ] {
        assert_eq!(parse(bad), Err(PasswordError::Common), "{bad:?}");
    }
}

#[test]
fn the_shipped_list_is_loaded_without_its_comments() {
    let list = super::super::password::common_passwords();
    assert_eq!(list.len(), 11_611);
    assert!(list.contains("password1"));
    assert!(list.iter().all(|entry| !entry.starts_with('#')));
    // Lower-casing the candidate finds every entry only if they are stored
    // lower-case.
    assert!(list.iter().all(|entry| entry.to_lowercase() == *entry));
}

#[test]
fn a_password_never_shows_in_debug_or_errors() {
    let password = parse("correct horse battery staple").unwrap();
    assert_eq!(format!("{password:?}"), "Password(***)");
    for bad in ["hunter2", "password1", "abcd\u{0}efgh", &"x".repeat(129)] {
        let error = parse(bad).unwrap_err();
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(bad), "{shown}");
        }
    }
}
