//! Order events for the projector tests, appended the way the command API
//! appends them: serialized, with the placement's addresses sealed under the
//! key of the user who placed the order (`domain::personal::
//! personal_subject`), and the orders tables read back.

use std::collections::BTreeMap;

use domain::cart::ShippingMethodCode;
use domain::order::{
    OrderEvent, OrderLine, OrderNote, OrderStatus, PaymentChange, PaymentMethodCode, PaymentStatus,
    StockReservation, TrackingNumber,
};
use domain::values::{
    Currency, Money, OrderNumber, PostalAddress, PostalAddressInput, Quantity, Sku, Url,
};
use infrastructure::event_store::aggregates::new_events;
use infrastructure::event_store::StreamAppend;
use serde_json::Value;
use uuid::Uuid;

use super::users::at;
use super::{metadata, Harness};

pub fn money(raw: &str) -> Money {
    Money::new(raw.parse().unwrap()).unwrap()
}

/// A Thai address of `first_name`'s at `street`.
pub fn address(first_name: &str, street: &str) -> PostalAddress {
    PostalAddress::new(PostalAddressInput {
        first_name: first_name.into(),
        last_name: "Jaidee".into(),
        company: Some("Jaidee Co.".into()),
        street_address_1: street.into(),
        street_address_2: None,
        city: "Bangkok".into(),
        state_province: "Bangkok".into(),
        postal_code: "10110".into(),
        country: Some("TH".into()),
        phone: Some("+66812223333".into()),
    })
    .unwrap()
}

/// An order number of `order`'s own.
pub fn number_of(order: Uuid) -> String {
    format!("ORD-2026-{:012}", order.as_u128() % 1_000_000_000_000)
}

/// A line of `quantity` × `unit_price` of `product` (and `variant`).
pub fn line(
    product: Uuid,
    variant: Option<Uuid>,
    sku: &str,
    unit_price: &str,
    quantity: u32,
) -> OrderLine {
    let unit = money(unit_price);
    OrderLine {
        order_item_id: Uuid::now_v7(),
        product_id: product,
        product_variant_id: variant,
        product_name: format!("Product {sku}"),
        product_sku: Sku::parse(sku).unwrap(),
        product_image_url: Some(
            Url::parse(&format!(
                "https://cdn.example.com/p/{}.jpg",
                sku.to_lowercase()
            ))
            .unwrap(),
        ),
        unit_price: unit,
        quantity: Quantity::new(i64::from(quantity)).unwrap(),
        total_price: Money::new(unit.amount() * rust_decimal::Decimal::from(quantity)).unwrap(),
        discount_amount: Money::ZERO,
        taxable: true,
        product_options: match variant {
            Some(_) => BTreeMap::from([("colour".to_owned(), "black".to_owned())]),
            None => BTreeMap::new(),
        },
    }
}

/// `user`'s order of `lines`: 50.00 off, 40.00 shipping, 7.00 tax, paid by
/// credit card, with the customer's note; billed to Somchai on Sukhumvit,
/// shipped to Somying on Silom.
pub fn placed(order: Uuid, user: Option<Uuid>, lines: Vec<OrderLine>, when: i64) -> OrderEvent {
    let subtotal = lines.iter().fold(Money::ZERO, |sum, l| {
        sum.checked_add(l.total_price).unwrap()
    });
    let (discount, shipping, tax) = (money("50"), money("40"), money("7"));
    let total =
        Money::new(subtotal.amount() - discount.amount() + shipping.amount() + tax.amount())
            .unwrap();
    let reserved_stock = lines
        .iter()
        .map(|l| StockReservation {
            sku: l.product_sku.clone(),
            quantity: l.quantity,
        })
        .collect();
    OrderEvent::OrderPlaced {
        order_id: order,
        order_number: OrderNumber::parse(&number_of(order)).unwrap(),
        cart_id: Uuid::now_v7(),
        user_id: user,
        status: OrderStatus::Pending,
        payment_status: PaymentStatus::Pending,
        items: lines,
        subtotal,
        discount_amount: discount,
        shipping_fee: shipping,
        shipping_discount: Money::ZERO,
        shipping_amount: shipping,
        tax_amount: tax,
        total_amount: total,
        currency: Currency::thb(),
        billing_address: address("Somchai", "1 Sukhumvit Rd"),
        shipping_address: address("Somying", "9 Silom Rd"),
        shipping_method: ShippingMethodCode::parse("standard").unwrap(),
        payment_method: Some(PaymentMethodCode::parse("credit_card").unwrap()),
        coupon: None,
        promotions: vec![],
        reserved_stock,
        notes: Some(OrderNote::parse("Leave it at the door").unwrap()),
        created_at: at(when),
    }
}

pub fn confirmed(order: Uuid, when: i64) -> OrderEvent {
    OrderEvent::OrderConfirmed {
        order_id: order,
        previous_status: OrderStatus::Pending,
        status: OrderStatus::Confirmed,
        at: at(when),
    }
}

pub fn processing(order: Uuid, when: i64) -> OrderEvent {
    OrderEvent::OrderProcessingStarted {
        order_id: order,
        previous_status: OrderStatus::Confirmed,
        status: OrderStatus::Processing,
        at: at(when),
    }
}

pub fn shipped(order: Uuid, tracking: &str, when: i64) -> OrderEvent {
    OrderEvent::OrderShipped {
        order_id: order,
        previous_status: OrderStatus::Processing,
        status: OrderStatus::Shipped,
        tracking_number: TrackingNumber::parse(tracking).unwrap(),
        shipped_at: at(when),
    }
}

pub fn delivered(order: Uuid, when: i64) -> OrderEvent {
    OrderEvent::OrderDelivered {
        order_id: order,
        previous_status: OrderStatus::Shipped,
        status: OrderStatus::Delivered,
        delivered_at: at(when),
    }
}

pub fn cancelled(order: Uuid, previous: OrderStatus, when: i64) -> OrderEvent {
    OrderEvent::OrderCancelled {
        order_id: order,
        previous_status: previous,
        status: OrderStatus::Cancelled,
        reason: OrderNote::parse("Changed my mind").unwrap(),
        refund_requested: None,
        at: at(when),
    }
}

pub fn refunded(order: Uuid, previous: OrderStatus, amount: &str, when: i64) -> OrderEvent {
    OrderEvent::OrderRefunded {
        order_id: order,
        previous_status: previous,
        status: OrderStatus::Refunded,
        refunded_amount: money(amount),
        at: at(when),
    }
}

/// A payment change bringing the order to `status`, with the totals given.
pub fn payment(
    order: Uuid,
    change: PaymentChange,
    (previous, status): (PaymentStatus, PaymentStatus),
    (amount, paid, refunded): (&str, &str, &str),
    when: i64,
) -> OrderEvent {
    OrderEvent::OrderPaymentStatusChanged {
        order_id: order,
        payment_id: Uuid::from_u128(order.as_u128() ^ 1),
        refund_id: (change == PaymentChange::RefundCompleted).then(Uuid::now_v7),
        change,
        amount: money(amount),
        previous_payment_status: previous,
        payment_status: status,
        paid_amount: money(paid),
        refunded_amount: money(refunded),
        at: at(when),
    }
}

/// `note` added, the whole text being `admin_notes`.
pub fn admin_note(order: Uuid, note: &str, admin_notes: &str, when: i64) -> OrderEvent {
    OrderEvent::OrderAdminNoteAdded {
        order_id: order,
        note: OrderNote::parse(note).unwrap(),
        admin_notes: admin_notes.to_owned(),
        at: at(when),
    }
}

impl Harness {
    /// Appends `events` to `order`'s stream after `expected`, the personal
    /// fields of each sealed under its customer's key, as the command API
    /// does (`command-api`'s `seal_personal_data`).
    pub async fn append_order(&self, order: Uuid, expected: i64, events: &[OrderEvent]) {
        self.append_order_edited(order, expected, events, |_| {})
            .await;
    }

    /// `append_order`, with each serialized payload passed through `edit`
    /// before it is sealed: an event as an older command side wrote it.
    pub async fn append_order_edited(
        &self,
        order: Uuid,
        expected: i64,
        events: &[OrderEvent],
        edit: impl Fn(&mut Value),
    ) {
        let personal = self.personal();
        let stream = order.to_string();
        let mut sealed = new_events(events);
        for event in &mut sealed {
            edit(&mut event.payload);
            if !personal.has_personal_fields("order", &event.event_type) {
                continue;
            }
            let body = event
                .payload
                .get(&event.event_type)
                .cloned()
                .unwrap_or(Value::Null);
            let subject = domain::personal::personal_subject("order", &stream, &body)
                .expect("a placement names its customer");
            personal
                .seal_payload(subject, "order", &event.event_type, &mut event.payload)
                .await
                .expect("seal");
        }
        self.store
            .append(
                vec![StreamAppend {
                    stream_id: stream,
                    aggregate_type: "order".to_owned(),
                    expected_version: expected,
                    events: sealed,
                }],
                &metadata(),
                None,
                |_| Value::Null,
            )
            .await
            .expect("append");
    }

    /// An order for each of `users`, of one or two of `products`, confirmed,
    /// paid and noted; returns their ids.
    pub async fn seed_orders(&self, users: &[Uuid], products: &[Uuid]) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for (n, user) in users.iter().enumerate() {
            let order = Uuid::now_v7();
            let mut lines = vec![line(products[n % products.len()], None, "SKU-0", "1000", 1)];
            if products.len() > 1 {
                lines.push(line(
                    products[(n + 1) % products.len()],
                    None,
                    "SKU-1",
                    "250.50",
                    3,
                ));
            }
            let placement = placed(order, Some(*user), lines, 10);
            let OrderEvent::OrderPlaced { total_amount, .. } = &placement else {
                unreachable!()
            };
            let total = total_amount.amount().to_string();
            self.append_order(
                order,
                0,
                &[
                    placement,
                    confirmed(order, 11),
                    payment(
                        order,
                        PaymentChange::Captured,
                        (PaymentStatus::Pending, PaymentStatus::Paid),
                        (&total, &total, "0"),
                        12,
                    ),
                    admin_note(order, "Gift wrap", "Gift wrap", 13),
                ],
            )
            .await;
            ids.push(order);
        }
        ids
    }
}

/// Rows of the orders tables as JSON, in a stable order, for comparing two
/// read models.
pub async fn dump_orders(pool: &sqlx::PgPool) -> Vec<Value> {
    let mut rows = Vec::new();
    for table in ["orders", "order_items"] {
        let json: Vec<Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM read_model.{table} t ORDER BY id"
        ))
        .fetch_all(pool)
        .await
        .expect("dump table");
        rows.push(serde_json::json!({ table: json }));
    }
    rows
}
