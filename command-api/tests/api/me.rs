//! The signed-in user's own account over real HTTP: the profile and its
//! phone claim, the email and password changes that end every session, the
//! address book, and erasure, with the sessions in the real Redis and the
//! personal data sealed in the real event store.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

const NEW_PASSWORD: &str = "a brand new long passphrase";

/// 401: the client's session is gone.
async fn assert_signed_out(app: &TestApp, client: &reqwest::Client) {
    let response = app
        .send_as(
            client,
            Method::PATCH,
            "/v1/me",
            Some(&json!({ "bio": "still here?" })),
        )
        .await;
    problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

fn body_of<'a>(
    events: &'a [infrastructure::event_store::RecordedEvent],
    event_type: &str,
) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e.event_type == event_type)
        .map(|e| &e.payload[event_type])
        .collect()
}

fn home_address() -> Value {
    json!({
        "first_name": "Somchai",
        "last_name": "Jaidee",
        "street_address_1": "1 Sukhumvit Rd",
        "city": "Bangkok",
        "state_province": "Bangkok",
        "postal_code": "10110",
    })
}

#[tokio::test]
async fn a_profile_patch_merges_into_the_profile_and_moves_the_phone_claim() {
    let app = TestApp::spawn().await;
    let (somchai, somchai_id) = app.customer("somchai@example.com").await;
    let (malee, _) = app.customer("malee@example.com").await;

    let full = json!({
        "last_name": "Srisuk",
        "phone": "+66812345678",
        "date_of_birth": "1990-05-20",
        "gender": "male",
        "avatar_url": "https://cdn.example.com/somchai.jpg",
        "bio": "Likes phones.\nAnd tablets.",
        "preferences": { "notifications": { "email": false } },
        "settings": { "theme": "dark" },
    });
    let answer = ok_body(
        app.send_as(&somchai, Method::PATCH, "/v1/me", Some(&full))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["id"], somchai_id.to_string());
    assert!(answer["consistency_token"].is_string(), "{answer}");
    let cleared = json!({ "bio": null, "avatar_url": null });
    ok_body(
        app.send_as(&somchai, Method::PATCH, "/v1/me", Some(&cleared))
            .await,
        StatusCode::OK,
    )
    .await;

    let events = app.opened_events(&somchai_id.to_string()).await;
    let updates = body_of(&events, "UserProfileUpdated");
    assert_eq!(updates.len(), 2);
    let last = updates[1];
    assert_eq!(last["first_name"], "Somchai", "absent: kept");
    assert_eq!(last["last_name"], "Srisuk");
    assert_eq!(last["phone"], "+66812345678");
    assert_eq!(last["date_of_birth"], "1990-05-20");
    assert_eq!(last["gender"], "male");
    assert_eq!(last["bio"], Value::Null, "null: cleared");
    assert_eq!(last["avatar_url"], Value::Null);
    assert_eq!(
        last["preferences"],
        json!({ "notifications": { "email": false } })
    );
    assert_eq!(last["settings"], json!({ "theme": "dark" }));
    assert_eq!(updates[0]["bio"], "Likes phones.\nAnd tablets.");
    let raw = app.events(&somchai_id.to_string()).await;
    let stored_phone = raw.last().unwrap().payload["UserProfileUpdated"]["phone"].clone();
    assert!(
        stored_phone.as_str().unwrap().starts_with("pd1."),
        "sealed: {stored_phone}"
    );

    // Somchai's number is his alone...
    let before = app.event_count().await;
    let same_phone = json!({ "phone": "+66812345678" });
    problem(
        app.send_as(&malee, Method::PATCH, "/v1/me", Some(&same_phone))
            .await,
        StatusCode::CONFLICT,
        "phone-taken",
    )
    .await;
    assert_eq!(app.event_count().await, before, "nothing appended");
    // ...until he moves to another one.
    ok_body(
        app.send_as(
            &somchai,
            Method::PATCH,
            "/v1/me",
            Some(&json!({ "phone": "+66899999999" })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    ok_body(
        app.send_as(&malee, Method::PATCH, "/v1/me", Some(&same_phone))
            .await,
        StatusCode::OK,
    )
    .await;

    let before = app.event_count().await;
    for (body, field) in [
        (json!({}), "body"),
        (json!({ "first_name": null }), "first_name"),
        (json!({ "first_name": " " }), "first_name"),
        (json!({ "phone": "call me" }), "phone"),
        (json!({ "avatar_url": "ftp://x" }), "avatar_url"),
        (json!({ "preferences": null }), "preferences"),
        (json!({ "preferences": "dark" }), "preferences"),
        (json!({ "settings": [1] }), "settings"),
        (json!({ "date_of_birth": "2999-01-01" }), "date_of_birth"),
    ] {
        let refused = problem(
            app.send_as(&somchai, Method::PATCH, "/v1/me", Some(&body))
                .await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], field, "{body}: {refused}");
    }
    for body in [
        json!({ "email": "x@example.com" }),
        json!({ "gender": "robot" }),
    ] {
        problem(
            app.send_as(&somchai, Method::PATCH, "/v1/me", Some(&body))
                .await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
    }
    assert_eq!(app.event_count().await, before, "nothing appended");
}

#[tokio::test]
async fn an_idempotency_key_is_scoped_to_its_sender() {
    let app = TestApp::spawn().await;
    let (somchai, somchai_id) = app.customer("somchai@example.com").await;
    let (malee, _) = app.customer("malee@example.com").await;
    let body = json!({ "bio": "Hello" });
    let send = |client: &reqwest::Client| {
        client
            .patch(format!("{}/v1/me", app.base))
            .header("Idempotency-Key", "profile-form-1")
            .json(&body)
            .send()
    };
    let first = ok_body(send(&somchai).await.unwrap(), StatusCode::OK).await;
    assert_eq!(first["id"], somchai_id.to_string());
    let again = send(&somchai).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(ok_body(again, StatusCode::OK).await, first);
    // The same key and body from another user is another request, with an
    // answer of its own.
    let other = send(&malee).await.unwrap();
    assert!(other.headers().get("idempotent-replayed").is_none());
    let other = ok_body(other, StatusCode::OK).await;
    assert_ne!(other["id"], first["id"]);
}

#[tokio::test]
async fn an_email_change_needs_the_password_ends_every_session_and_moves_the_login() {
    let app = TestApp::spawn().await;
    let (somchai, id) = app.customer("somchai@example.com").await;
    let second = bearer_client(
        &log_in(
            &app.anonymous,
            &app.base,
            "somchai@example.com",
            CUSTOMER_PASSWORD,
        )
        .await,
    );
    let change =
        |email: &str, password: &str| json!({ "email": email, "current_password": password });
    let before = app.event_count().await;

    let wrong = problem(
        app.send_as(
            &somchai,
            Method::PUT,
            "/v1/me/email",
            Some(&change("new@example.com", "not my password at all")),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    assert!(!wrong.to_string().contains("not my password"), "{wrong}");
    problem(
        app.send_as(
            &somchai,
            Method::PUT,
            "/v1/me/email",
            Some(&change(ADMIN_EMAIL, CUSTOMER_PASSWORD)),
        )
        .await,
        StatusCode::CONFLICT,
        "email-taken",
    )
    .await;
    let bad = problem(
        app.send_as(
            &somchai,
            Method::PUT,
            "/v1/me/email",
            Some(&change("not an email", CUSTOMER_PASSWORD)),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    assert_eq!(bad["errors"][0]["field"], "email");
    problem(
        app.send_as(
            &somchai,
            Method::PUT,
            "/v1/me/email",
            Some(&change("SOMCHAI@example.com", CUSTOMER_PASSWORD)),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "account-rule",
    )
    .await;
    assert_eq!(app.event_count().await, before, "nothing appended");

    ok_body(
        app.send_as(
            &somchai,
            Method::PUT,
            "/v1/me/email",
            Some(&change("Somchai.New@Example.com", CUSTOMER_PASSWORD)),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_signed_out(&app, &somchai).await;
    assert_signed_out(&app, &second).await;
    problem(
        app.try_log_in("somchai@example.com", CUSTOMER_PASSWORD)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    let session = ok_body(
        app.try_log_in("somchai.new@example.com", CUSTOMER_PASSWORD)
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(session["user_id"], id.to_string());

    let events = app.opened_events(&id.to_string()).await;
    let changed = body_of(&events, "UserEmailChanged");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["previous_email"], "somchai@example.com");
    assert_eq!(changed[0]["email"], "somchai.new@example.com");
    assert_eq!(changed[0]["email_verified"], false);
    // The old address was released with the change.
    let (_, other) = app.customer("somchai@example.com").await;
    assert_ne!(other, id);
}

#[tokio::test]
async fn a_password_change_ends_every_session_and_retires_the_old_password() {
    let app = TestApp::spawn().await;
    let (somchai, id) = app.customer("somchai@example.com").await;
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    let before = app.event_count().await;
    problem(
        app.send_as(
            &somchai,
            Method::PUT,
            "/v1/me/password",
            Some(&change("wrong wrong wrong", NEW_PASSWORD)),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    let weak = problem(
        app.send_as(
            &somchai,
            Method::PUT,
            "/v1/me/password",
            Some(&change(CUSTOMER_PASSWORD, "password1")),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation",
    )
    .await;
    assert_eq!(weak["errors"][0]["field"], "new_password", "{weak}");
    assert!(!weak.to_string().contains("password1"), "{weak}");
    assert_eq!(app.event_count().await, before, "nothing appended");

    let answer = ok_body(
        app.send_as(
            &somchai,
            Method::PUT,
            "/v1/me/password",
            Some(&change(CUSTOMER_PASSWORD, NEW_PASSWORD)),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["id"], id.to_string());
    assert_signed_out(&app, &somchai).await;
    problem(
        app.try_log_in("somchai@example.com", CUSTOMER_PASSWORD)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    ok_body(
        app.try_log_in("somchai@example.com", NEW_PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    let events = app.events(&id.to_string()).await;
    let changed = body_of(&events, "UserPasswordChanged");
    assert_eq!(changed.len(), 1);
    assert!(
        changed[0]["password_hash"]
            .as_str()
            .unwrap()
            .starts_with("pd1."),
        "the hash is sealed"
    );
}

#[tokio::test]
async fn the_address_book_adds_updates_moves_the_default_and_removes() {
    let app = TestApp::spawn().await;
    let (somchai, id) = app.customer("somchai@example.com").await;
    let add = |body: Value| {
        let somchai = somchai.clone();
        let app = &app;
        async move {
            app.send_as(&somchai, Method::POST, "/v1/me/addresses", Some(&body))
                .await
        }
    };

    let response = add(home_address()).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let home = created_id(response).await;
    assert_eq!(location, format!("/v1/me/addresses/{home}"));
    let mut work = home_address();
    work["type"] = json!("work");
    work["company"] = json!("Acme");
    work["street_address_1"] = json!("99 Silom Rd");
    work["phone"] = json!("+66811111111");
    let work = created_id(add(work).await).await;
    let mut other = home_address();
    other["type"] = json!("other");
    other["country"] = json!("jp");
    let other = created_id(add(other).await).await;

    let patch = json!({ "city": "Nonthaburi", "company": null });
    ok_body(
        app.send_as(
            &somchai,
            Method::PATCH,
            &format!("/v1/me/addresses/{work}"),
            Some(&patch),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let answer = ok_body(
        app.send_as(
            &somchai,
            Method::PUT,
            &format!("/v1/me/addresses/{other}/default"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["id"], other.to_string());
    // Removing the default promotes the most recently added of the rest.
    for removed in [other, work] {
        ok_body(
            app.send_as(
                &somchai,
                Method::DELETE,
                &format!("/v1/me/addresses/{removed}"),
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }

    let events = app.opened_events(&id.to_string()).await;
    let added = body_of(&events, "UserAddressAdded");
    assert_eq!(added.len(), 3);
    assert_eq!(added[0]["address_id"], home.to_string());
    assert_eq!(added[0]["is_default"], true, "the first is the default");
    assert_eq!(added[0]["address"]["type"], "home");
    assert_eq!(added[0]["address"]["country"], "TH");
    assert_eq!(added[1]["is_default"], false);
    assert_eq!(added[1]["address"]["phone"], "+66811111111");
    assert_eq!(added[2]["address"]["country"], "JP");
    let updated = body_of(&events, "UserAddressUpdated");
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["address"]["city"], "Nonthaburi");
    assert_eq!(updated[0]["address"]["company"], Value::Null);
    assert_eq!(
        updated[0]["address"]["street_address_1"], "99 Silom Rd",
        "kept"
    );
    assert_eq!(updated[0]["address"]["type"], "work");
    let default_set = body_of(&events, "UserDefaultAddressSet");
    assert_eq!(default_set.len(), 1);
    assert_eq!(default_set[0]["address_id"], other.to_string());
    assert_eq!(
        default_set[0]["previous_default_address_id"],
        home.to_string()
    );
    let removed = body_of(&events, "UserAddressRemoved");
    assert_eq!(removed.len(), 2);
    assert_eq!(removed[0]["address_id"], other.to_string());
    assert_eq!(removed[0]["was_default"], true);
    assert_eq!(removed[0]["new_default_address_id"], work.to_string());
    assert_eq!(removed[1]["address_id"], work.to_string());
    assert_eq!(removed[1]["was_default"], true);
    assert_eq!(removed[1]["new_default_address_id"], home.to_string());

    // Another user's address is as unknown as one that never was.
    let (malee, _) = app.customer("malee@example.com").await;
    let before = app.event_count().await;
    let unknown = Uuid::now_v7();
    for (client, address) in [(&malee, home), (&somchai, unknown), (&somchai, work)] {
        let path = format!("/v1/me/addresses/{address}");
        for (method, path, body) in [
            (
                Method::PATCH,
                path.clone(),
                Some(json!({ "city": "Chiang Mai" })),
            ),
            (Method::DELETE, path.clone(), None),
            (Method::PUT, format!("{path}/default"), None),
        ] {
            problem(
                app.send_as(client, method, &path, body.as_ref()).await,
                StatusCode::NOT_FOUND,
                "not-found",
            )
            .await;
        }
    }
    let mut long_code = home_address();
    long_code["postal_code"] = json!("1".repeat(21));
    let mut bad_country = home_address();
    bad_country["country"] = json!("XX");
    let mut no_city = home_address();
    no_city.as_object_mut().unwrap().remove("city");
    for (body, field) in [
        (long_code, Some("postal_code")),
        (bad_country, Some("country")),
        (no_city, None),
    ] {
        let refused = problem(add(body).await, StatusCode::BAD_REQUEST, "validation").await;
        if let Some(field) = field {
            assert_eq!(refused["errors"][0]["field"], field, "{refused}");
        }
    }
    for (body, field) in [
        (json!({}), "body"),
        (json!({ "city": null }), "city"),
        (json!({ "postal_code": "1".repeat(21) }), "postal_code"),
    ] {
        let refused = problem(
            app.send_as(
                &somchai,
                Method::PATCH,
                &format!("/v1/me/addresses/{home}"),
                Some(&body),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "validation",
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], field, "{refused}");
    }
    assert_eq!(app.event_count().await, before, "nothing appended");
}

#[tokio::test]
async fn an_erasure_ends_the_sessions_frees_the_email_and_leaves_nothing_readable() {
    let app = TestApp::spawn().await;
    let (somchai, id) = app.customer("somchai@example.com").await;
    let profile = json!({
        "phone": "+66812345678",
        "date_of_birth": "1990-05-20",
        "avatar_url": "https://cdn.example.com/somchai.jpg",
        "bio": "Somchai from Bangkok",
    });
    ok_body(
        app.send_as(&somchai, Method::PATCH, "/v1/me", Some(&profile))
            .await,
        StatusCode::OK,
    )
    .await;
    created_id(
        app.send_as(
            &somchai,
            Method::POST,
            "/v1/me/addresses",
            Some(&home_address()),
        )
        .await,
    )
    .await;
    let email_change =
        json!({ "email": "somchai.b@example.com", "current_password": CUSTOMER_PASSWORD });
    ok_body(
        app.send_as(&somchai, Method::PUT, "/v1/me/email", Some(&email_change))
            .await,
        StatusCode::OK,
    )
    .await;
    let somchai = bearer_client(
        &log_in(
            &app.anonymous,
            &app.base,
            "somchai.b@example.com",
            CUSTOMER_PASSWORD,
        )
        .await,
    );

    // Erasure cannot be undone: the session alone is not enough.
    let before = app.event_count().await;
    for body in [None, Some(json!({ "current_password": "not my password" }))] {
        let refused = app
            .send_as(&somchai, Method::DELETE, "/v1/me", body.as_ref())
            .await;
        // 415 without a body, 401 with a wrong password.
        assert!(
            matches!(
                refused.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNAUTHORIZED
            ),
            "{}",
            refused.status()
        );
    }
    assert_eq!(app.event_count().await, before, "nothing erased");
    let erased = app
        .send_as(
            &somchai,
            Method::DELETE,
            "/v1/me",
            Some(&json!({ "current_password": CUSTOMER_PASSWORD })),
        )
        .await;
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);
    assert!(erased.headers().contains_key("consistency-token"));
    assert_signed_out(&app, &somchai).await;
    problem(
        app.try_log_in("somchai.b@example.com", CUSTOMER_PASSWORD)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;

    let events = app.opened_events(&id.to_string()).await;
    assert_eq!(events.last().unwrap().event_type, "UserErased");
    let placeholder = format!("erased-{id}@erased.invalid");
    let registered = body_of(&events, "UserRegistered")[0];
    assert_eq!(registered["email"], placeholder.as_str());
    assert_eq!(registered["first_name"], "Erased");
    assert_eq!(registered["last_name"], "Erased");
    assert_eq!(registered["password_hash"], "$argon2id$erased");
    let profile = body_of(&events, "UserProfileUpdated")[0];
    for field in ["phone", "date_of_birth", "avatar_url", "bio"] {
        assert_eq!(profile[field], Value::Null, "{field}");
    }
    let changed = body_of(&events, "UserEmailChanged")[0];
    assert_eq!(changed["previous_email"], placeholder.as_str());
    assert_eq!(changed["email"], placeholder.as_str());
    let address = &body_of(&events, "UserAddressAdded")[0]["address"];
    assert_eq!(address["street_address_1"], "Erased");
    assert_eq!(address["postal_code"], "00000");
    for login in body_of(&events, "UserLoggedIn") {
        assert_eq!(login["user_agent"], Value::Null);
        assert_eq!(login["ip_address"], Value::Null);
    }
    for event in &events {
        assert_eq!(event.metadata.client_ip, None, "{}", event.event_type);
    }
    let readable = serde_json::to_string(&events).unwrap();
    for clear in [
        "somchai@example.com",
        "somchai.b@example.com",
        "Somchai",
        "Jaidee",
        "+66812345678",
        "1990-05-20",
        "Bangkok",
        "Sukhumvit",
        "cdn.example.com",
        "127.0.0.1",
    ] {
        assert!(!readable.contains(clear), "{clear} still readable");
    }

    // The email and the phone were released with the erasure.
    let again = app
        .anonymous
        .post(format!("{}/v1/users", app.base))
        .json(&json!({
            "email": "somchai.b@example.com",
            "password": CUSTOMER_PASSWORD,
            "first_name": "Somchai",
            "last_name": "Jaidee",
            "phone": "+66812345678",
        }))
        .send()
        .await
        .unwrap();
    assert_ne!(created_id(again).await, id);
}

#[tokio::test]
async fn a_guest_has_no_account_to_change() {
    let app = TestApp::spawn().await;
    let address = Uuid::now_v7();
    for (method, path, body) in [
        (
            Method::PATCH,
            "/v1/me".to_owned(),
            Some(json!({ "bio": "x" })),
        ),
        (Method::DELETE, "/v1/me".to_owned(), None),
        (
            Method::PUT,
            "/v1/me/email".to_owned(),
            Some(json!({ "email": "a@example.com", "current_password": "x" })),
        ),
        (
            Method::PUT,
            "/v1/me/password".to_owned(),
            Some(json!({ "current_password": "x", "new_password": NEW_PASSWORD })),
        ),
        (
            Method::POST,
            "/v1/me/addresses".to_owned(),
            Some(home_address()),
        ),
        (
            Method::PATCH,
            format!("/v1/me/addresses/{address}"),
            Some(json!({ "city": "x" })),
        ),
        (Method::DELETE, format!("/v1/me/addresses/{address}"), None),
        (
            Method::PUT,
            format!("/v1/me/addresses/{address}/default"),
            None,
        ),
    ] {
        let response = app
            .send_as(&app.anonymous, method.clone(), &path, body.as_ref())
            .await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer",
            "{method} {path}"
        );
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    assert_eq!(app.event_count().await, 0);
}
