//! Paying for an order and refunding it, through the payment provider
//! (`payments::provider`):
//! - `POST /v1/orders/{id}/payments`: records the payment (`PaymentInitiated`,
//!   the order's one active payment claimed), asks the provider for an
//!   intent, and records what it answered;
//! - `POST /v1/payments/webhooks/{provider}`: the provider's signed reports;
//! - `POST /v1/payments/{id}/refunds`: a partial or full refund, never above
//!   what is left of the capture.
//!
//! The payment is recorded before the provider hears of it, so a webhook
//! always finds its payment in the event store, however early it comes (it
//! never waits for a read model). Every report goes through the payment's
//! own decision, which ignores a report it has already applied and one
//! that would move it backwards (a late `requires_action` after the
//! success): a webhook that arrives twice or out of order, and the
//! synchronous answer racing its own webhook, end in the same state. A
//! captured payment or a completed refund moves the order's
//! `payment_status` in the same append.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::order::{Order, OrderStatus};
use domain::payment::{Payment, PaymentCommand, PaymentError, ProviderOutcome, RefundOutcome};
use domain::uniqueness::{UniqueKey, UniqueKeyEvent, UniqueScope};
use domain::values::Money;
use infrastructure::event_store::aggregates::Loaded;
use infrastructure::event_store::IdempotencyKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, SignedIn, ADMIN_ROLE};
use crate::command::{commit, execute, load_as, load_key, render, AppState, Committed, Plan};
use crate::error::ApiError;
use crate::input::Amount;
use crate::openapi::{
    CommandHeaders, Conflict, Forbidden, NotFound, PreconditionFailed, RuleBroken,
};
use crate::payments::provider::{
    IntentRequest, IntentState, ProviderError, RefundRequest, RefundState, WebhookError,
    WebhookKind,
};
use crate::request::{ApiPath, CommandBody, CommandContext, CommandRequest};

/// The namespace of payment and refund ids derived from an
/// `Idempotency-Key`: the same key names the same payment, so a retried
/// request resumes it instead of starting another.
const KEYED_IDS: Uuid = Uuid::from_u128(0x3b2c_5d1e_8f4a_4c6b_9e7d_1a2b_3c4d_5e6f);

impl CommandBody for StartPaymentRequest {}

impl CommandBody for RefundPaymentRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = &["reason"];
}

/// The id a request names, or the one its `Idempotency-Key` stands for, or
/// a new one; the key itself is then not stored, because the id carries it.
fn request_id(given: Option<Uuid>, context: &mut CommandContext) -> Uuid {
    let keyed = context
        .idempotency
        .take()
        .map(|IdempotencyKey { key, .. }| Uuid::new_v5(&KEYED_IDS, key.as_bytes()));
    given.or(keyed).unwrap_or_else(Uuid::now_v7)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPaymentRequest {
    /// Client-chosen id (or the `Idempotency-Key`'s): the same id resumes
    /// a payment that did not reach the provider.
    pub payment_id: Option<Uuid>,
    /// The order's (chosen at checkout) when absent.
    pub payment_method: Option<String>,
    /// For `credit_card`.
    pub card_number: Option<String>,
}

/// What the customer sees of their payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentAnswer {
    pub payment_id: Uuid,
    /// `pending`, `processing` (waiting for the customer or the provider),
    /// `completed` or `failed`.
    pub status: String,
    /// What the customer must do next (a PromptPay QR), when anything.
    #[schema(value_type = Option<Object>)]
    pub next_action: Option<Value>,
    #[schema(value_type = String)]
    pub consistency_token: String,
}

#[utoipa::path(
    post,
    path = "/v1/orders/{id}/payments",
    tag = "payments",
    operation_id = "start_payment",
    summary = "Pay for an order",
    description = "For the order's total, by its customer. One active payment per order (422 \
        `payment-exists`); a failed one frees the order for another. The answer says where the payment \
        stands: `completed`, `failed`, or `processing` with the `next_action` the customer takes (the \
        outcome then comes by webhook). When the provider cannot be reached, a 503: send the same \
        `payment_id` (or `Idempotency-Key`) again to resume.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The order"), CommandHeaders),
    request_body = StartPaymentRequest,
    responses(
        (status = 201, description = "Payment recorded", body = PaymentAnswer),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(order_id = %order_id, payment_id = tracing::field::Empty))]
pub async fn start(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<Uuid>,
    request: CommandRequest<StartPaymentRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { mut context, body } = request;
    let payment_id = request_id(body.payment_id, &mut context);
    Span::current().record("payment_id", tracing::field::display(payment_id));
    let is_admin = session.role == ADMIN_ROLE;
    let user_id = session.user_id;
    let provider = state.payment_provider.clone();

    // 1. The payment, recorded (or found, when resumed).
    let method = body.payment_method.clone();
    let provider_name = provider.name();
    commit(&state, &context, || {
        let (state, context, method) = (state.clone(), context.clone(), method.clone());
        async move {
            let order = load_as::<Order>(&state, &order_id.to_string())
                .await?
                .filter(|order| order.version > 0)
                .filter(|order| is_admin || order.aggregate.user_id() == Some(user_id))
                .ok_or_else(|| ApiError::not_found("order", order_id))?;
            plan_initiation(&state, &context, &order, payment_id, method, provider_name).await
        }
    })
    .await?;

    // 2. The provider's intent, for the payment as recorded.
    let payment = load_as::<Payment>(&state, &payment_id.to_string())
        .await?
        .filter(|payment| payment.version > 0)
        .ok_or_else(|| ApiError::not_found("payment", payment_id))?;
    let intent = provider
        .create_intent(IntentRequest {
            payment_id,
            order_id,
            amount: payment.aggregate.amount(),
            currency: payment.aggregate.currency().as_str().to_owned(),
            method: payment.aggregate.payment_method().to_owned(),
            card_number: body.card_number.clone(),
        })
        .await
        .map_err(provider_error)?;

    // 3. What it answered, unless its webhook got there first.
    let outcome = match &intent.state {
        IntentState::Succeeded => ProviderOutcome::Completed,
        IntentState::Failed { .. } => ProviderOutcome::Failed,
        IntentState::Pending => ProviderOutcome::Processing,
    };
    let recorded = commit(&state, &context, || {
        let (state, context) = (state.clone(), context.clone());
        let (transaction, raw) = (intent.provider_payment_id.clone(), intent.raw.clone());
        async move { plan_report(&state, &context, payment_id, transaction, outcome, raw).await }
    })
    .await?;
    // The report's append: its token and the payment's version go out as
    // every command's do (`Consistency-Token`, `ETag`).
    let (token, mut response) = match recorded {
        Committed::Appended(stored) => (
            stored["body"]["consistency_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            render(&stored, false)?,
        ),
        Committed::Replayed(response) => (String::new(), response),
    };
    let status = load_as::<Payment>(&state, &payment_id.to_string())
        .await?
        .map(|payment| payment.aggregate.status().as_str().to_owned())
        .unwrap_or_default();
    let answer = PaymentAnswer {
        payment_id,
        status,
        next_action: intent.next_action,
        consistency_token: token,
    };
    *response.status_mut() = StatusCode::CREATED;
    *response.body_mut() = Json(answer).into_response().into_body();
    if let Ok(location) = format!("/v1/payments/{payment_id}").parse() {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    Ok(response)
}

/// `PaymentInitiated` with the order's active-payment claim, or nothing for
/// a payment already recorded for this order and not past `pending`.
async fn plan_initiation(
    state: &AppState,
    context: &CommandContext,
    order: &Loaded<Order>,
    payment_id: Uuid,
    method: Option<String>,
    provider: &str,
) -> Result<Plan, ApiError> {
    let order_id = order.aggregate.order_id().unwrap_or_default();
    let payment = load_as::<Payment>(state, &payment_id.to_string())
        .await?
        .ok_or_else(|| ApiError::id_in_use("payment", payment_id))?;
    if payment.version > 0 {
        if payment.aggregate.order_id() != order_id {
            return Err(ApiError::id_in_use("payment", payment_id));
        }
        // Resumed: the intent is asked for again (the provider keys it by
        // the payment's id).
        return Ok(Plan::created(
            "payments",
            payment_id,
            vec![payment.append(&[])],
        ));
    }
    if matches!(
        order.aggregate.status(),
        OrderStatus::Cancelled | OrderStatus::Refunded
    ) {
        return Err(ApiError::rule(
            "order-not-payable",
            "Order not payable",
            format!("the order is {}", order.aggregate.status()),
        ));
    }
    let claim = load_key(state, UniqueScope::ActivePayment, &order_id.to_string()).await?;
    let active = match claim.aggregate.owner_id() {
        Some(holder) if holder != payment_id => load_as::<Payment>(state, &holder.to_string())
            .await?
            .is_some_and(|held| held.aggregate.status().is_active()),
        _ => false,
    };
    let method = method
        .or_else(|| {
            order
                .aggregate
                .payment_method()
                .map(|m| m.as_str().to_owned())
        })
        .unwrap_or_else(|| "credit_card".to_owned());
    let events = payment.aggregate.decide(PaymentCommand::InitiatePayment {
        payment_id,
        order_id,
        order_total: order.aggregate.total_amount(),
        order_currency: order.aggregate.currency().clone(),
        amount: order.aggregate.total_amount(),
        currency: order.aggregate.currency().clone(),
        payment_method: method,
        payment_provider: provider.to_owned(),
        transaction_id: Some(payment_id.to_string()),
        has_active_payment_for_order: active,
        at: context.at,
    })?;
    let appends = vec![
        payment.append(&events),
        claim.append(&claim_events(&claim, &order_id.to_string(), payment_id)),
        // The order is read, not written: its version is asserted.
        order.append(&[]),
    ];
    Ok(Plan::created("payments", payment_id, appends))
}

fn claim_events(claim: &Loaded<UniqueKey>, key: &str, payment_id: Uuid) -> Vec<UniqueKeyEvent> {
    let mut events = Vec::new();
    if let Some(stale) = claim.aggregate.owner_id().filter(|id| *id != payment_id) {
        events.push(UniqueKeyEvent::UniqueKeyReleased {
            scope: UniqueScope::ActivePayment,
            key: key.to_owned(),
            owner_id: stale,
        });
    }
    if claim.aggregate.owner_id() != Some(payment_id) {
        events.push(UniqueKeyEvent::UniqueKeyClaimed {
            scope: UniqueScope::ActivePayment,
            key: key.to_owned(),
            owner_id: payment_id,
        });
    }
    events
}

/// A provider report on the payment, with what it means for the order, in
/// one append; nothing when the payment has it already or is past it.
async fn plan_report(
    state: &AppState,
    context: &CommandContext,
    payment_id: Uuid,
    provider_transaction_id: String,
    outcome: ProviderOutcome,
    provider_response: Value,
) -> Result<Plan, ApiError> {
    let at = context.at;
    let payment = load_as::<Payment>(state, &payment_id.to_string())
        .await?
        .filter(|payment| payment.version > 0)
        .ok_or_else(|| ApiError::not_found("payment", payment_id))?;
    let decided = payment
        .aggregate
        .decide(PaymentCommand::RecordProviderResult {
            provider_transaction_id,
            outcome,
            provider_response,
            at,
        });
    let events = match decided {
        Ok(events) => events,
        // Late news: the payment is already further along.
        Err(PaymentError::InvalidTransition { from, to }) => {
            tracing::info!(%payment_id, %from, %to, "provider report behind the payment; ignored");
            Vec::new()
        }
        Err(error) => return Err(error.into()),
    };
    let order_id = payment.aggregate.order_id();
    let order = load_as::<Order>(state, &order_id.to_string())
        .await?
        .filter(|order| order.version > 0)
        .ok_or_else(|| ApiError::not_found("order", order_id))?;
    let order_events = match (events.is_empty(), outcome) {
        (false, ProviderOutcome::Completed) => {
            order
                .aggregate
                .record_payment_captured(payment_id, payment.aggregate.amount(), at)?
        }
        (false, ProviderOutcome::Failed | ProviderOutcome::Cancelled) => {
            order.aggregate.record_payment_failed(payment_id, at)?
        }
        _ => Vec::new(),
    };
    Ok(Plan::updated(
        payment_id,
        vec![payment.append(&events), order.append(&order_events)],
    ))
}

/// A refund's result on the payment, and on the order when it completed.
async fn plan_refund_result(
    state: &AppState,
    context: &CommandContext,
    payment_id: Uuid,
    refund_id: Uuid,
    outcome: RefundOutcome,
    provider_refund_id: Option<String>,
) -> Result<Plan, ApiError> {
    let at = context.at;
    let payment = load_as::<Payment>(state, &payment_id.to_string())
        .await?
        .filter(|payment| payment.version > 0)
        .ok_or_else(|| ApiError::not_found("payment", payment_id))?;
    let events = match payment
        .aggregate
        .decide(PaymentCommand::RecordRefundResult {
            refund_id,
            outcome,
            provider_refund_id,
            at,
        }) {
        Ok(events) => events,
        // Already settled the same way: a redelivery.
        Err(PaymentError::RefundAlreadySettled { status, .. }) if status == outcome.status() => {
            Vec::new()
        }
        Err(error) => return Err(error.into()),
    };
    let order_id = payment.aggregate.order_id();
    let order = load_as::<Order>(state, &order_id.to_string())
        .await?
        .filter(|order| order.version > 0)
        .ok_or_else(|| ApiError::not_found("order", order_id))?;
    let amount = payment
        .aggregate
        .refund(refund_id)
        .map(|refund| refund.amount)
        .unwrap_or(Money::ZERO);
    let order_events = if !events.is_empty() && outcome == RefundOutcome::Completed {
        order
            .aggregate
            .record_refund_completed(payment_id, refund_id, amount, at)?
    } else {
        Vec::new()
    };
    Ok(Plan::updated(
        payment_id,
        vec![payment.append(&events), order.append(&order_events)],
    ))
}

fn provider_error(error: ProviderError) -> ApiError {
    match error {
        ProviderError::Unavailable(_) => {
            tracing::warn!(error = %error, "payment provider unavailable");
            ApiError::service_unavailable("the payment provider does not answer; try again")
        }
        ProviderError::Refused(reason) => {
            ApiError::rule("payment-refused", "Payment refused by the provider", reason)
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/payments/webhooks/{provider}",
    tag = "payments",
    operation_id = "payment_webhook",
    summary = "A payment provider's report",
    description = "Signed by the provider (HMAC-SHA256 over the timestamp and the body); an unsigned, \
        mis-signed or stale delivery is a 400 `invalid-header`. Idempotent by the provider's event id: a \
        redelivery answers as the first delivery did.",
    security(()),
    params(("provider" = String, Path, description = "The provider's name, `sandbox`")),
    request_body(content = Object, description = "The provider's event, as it signed it"),
    responses(
        (status = 200, description = "Recorded", body = crate::command::Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(provider = %provider, event_id = tracing::field::Empty))]
pub async fn webhook(
    State(state): State<AppState>,
    ApiPath(provider): ApiPath<String>,
    mut context: CommandContext,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let adapter = state.payment_provider.clone();
    if provider != adapter.name() {
        return Err(ApiError::not_found("payment provider", &provider));
    }
    let event = adapter
        .verify_webhook(&headers, &body, context.at)
        .map_err(|error| match error {
            // As a provider expects: a 400 it can see in its delivery log.
            WebhookError::MissingSignature
            | WebhookError::BadSignature
            | WebhookError::Stale { .. } => {
                ApiError::invalid_header(adapter.signature_header(), error.to_string())
            }
            WebhookError::Malformed(_) => ApiError::bad_request(error.to_string()),
        })?;
    Span::current().record("event_id", tracing::field::display(&event.event_id));
    // The provider's event id is the delivery's idempotency key.
    context.idempotency = Some(IdempotencyKey {
        key: format!("webhook:{provider}:{}", event.event_id),
        fingerprint: crate::request::fingerprint(
            &axum::http::Method::POST,
            "/v1/payments/webhooks",
            &body,
        ),
    });
    let payment_id = event.payment_id;
    execute(&state, &context, || {
        let (state, context, event) = (state.clone(), context.clone(), event.clone());
        async move {
            match event.kind {
                WebhookKind::PaymentSucceeded | WebhookKind::PaymentFailed => {
                    let outcome = if event.kind == WebhookKind::PaymentSucceeded {
                        ProviderOutcome::Completed
                    } else {
                        ProviderOutcome::Failed
                    };
                    plan_report(
                        &state,
                        &context,
                        payment_id,
                        event.provider_payment_id,
                        outcome,
                        event.raw,
                    )
                    .await
                }
                WebhookKind::RefundSucceeded | WebhookKind::RefundFailed => {
                    let refund_id = event.refund_id.ok_or_else(|| {
                        ApiError::bad_request("a refund event without its refund")
                    })?;
                    let outcome = if event.kind == WebhookKind::RefundSucceeded {
                        RefundOutcome::Completed
                    } else {
                        RefundOutcome::Failed
                    };
                    plan_refund_result(
                        &state,
                        &context,
                        payment_id,
                        refund_id,
                        outcome,
                        event.provider_refund_id,
                    )
                    .await
                }
            }
        }
    })
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundPaymentRequest {
    /// Client-chosen id (or the `Idempotency-Key`'s).
    pub refund_id: Option<Uuid>,
    /// THB; at most what is left of the capture.
    pub amount: Amount,
    pub reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/payments/{id}/refunds",
    tag = "payments",
    operation_id = "refund_payment",
    summary = "Refund a payment, in part or in full",
    description = "An admin's. Pending and completed refunds never add up to more than was captured (422 \
        `refund-exceeds-captured`, with what is `refundable`), however many run at once. The refund is \
        recorded before the provider hears of it, and its outcome (the answer, or the webhook) moves the \
        order's `payment_status` to `partially_refunded` or `refunded`.",
    security(("bearerAuth" = [])),
    params(("id" = Uuid, Path, description = "The payment"), CommandHeaders),
    request_body = RefundPaymentRequest,
    responses(
        (status = 201, description = "Refund recorded", body = crate::command::Receipt),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(payment_id = %payment_id, refund_id = tracing::field::Empty))]
pub async fn refund(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(payment_id): ApiPath<Uuid>,
    request: CommandRequest<RefundPaymentRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { mut context, body } = request;
    let refund_id = request_id(body.refund_id, &mut context);
    Span::current().record("refund_id", tracing::field::display(refund_id));
    let amount =
        Money::new(body.amount.0).map_err(|error| ApiError::invalid_field("amount", error))?;
    let reason = body.reason.clone();
    let requested = commit(&state, &context, || {
        let (state, context, reason) = (state.clone(), context.clone(), reason.clone());
        async move {
            let payment = load_as::<Payment>(&state, &payment_id.to_string())
                .await?
                .filter(|payment| payment.version > 0)
                .ok_or_else(|| ApiError::not_found("payment", payment_id))?;
            let events = payment.aggregate.decide(PaymentCommand::RefundPayment {
                refund_id,
                amount,
                reason,
                at: context.at,
            })?;
            let mut plan = Plan::created("payments", refund_id, vec![payment.append(&events)]);
            plan.location = Some(format!("/v1/payments/{payment_id}"));
            plan.stream_id = payment_id.to_string();
            Ok(plan)
        }
    })
    .await?;

    let payment = load_as::<Payment>(&state, &payment_id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found("payment", payment_id))?;
    let provider_payment_id = payment
        .aggregate
        .provider_transaction_id()
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("a refundable payment without its intent"))
        })?;
    let refunded = state
        .payment_provider
        .refund(RefundRequest {
            refund_id,
            payment_id,
            provider_payment_id,
            amount,
        })
        .await
        .map_err(provider_error)?;
    let outcome = match refunded.state {
        RefundState::Succeeded => Some(RefundOutcome::Completed),
        RefundState::Failed { .. } => Some(RefundOutcome::Failed),
        RefundState::Pending => None,
    };
    let mut answer = None;
    if let Some(outcome) = outcome {
        let committed = commit(&state, &context, || {
            let (state, context) = (state.clone(), context.clone());
            let provider_refund_id = Some(refunded.provider_refund_id.clone());
            async move {
                let mut plan = plan_refund_result(
                    &state,
                    &context,
                    payment_id,
                    refund_id,
                    outcome,
                    provider_refund_id,
                )
                .await?;
                plan.id = refund_id;
                plan.location = Some(format!("/v1/payments/{payment_id}"));
                Ok(plan)
            }
        })
        .await?;
        answer = Some(committed);
    }
    // The last append's receipt, as any command answers: the result's, or
    // the request's while the provider has not decided.
    match answer.unwrap_or(requested) {
        Committed::Appended(stored) => {
            let mut response = render(&stored, false)?;
            *response.status_mut() = StatusCode::CREATED;
            if let Ok(location) = format!("/v1/payments/{payment_id}").parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::LOCATION, location);
            }
            Ok(response)
        }
        Committed::Replayed(response) => Ok(response),
    }
}
