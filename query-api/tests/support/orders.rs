//! Order fixtures: the seed's example order in the shape the query API
//! answers, written into `read_model.orders` and `order_items` as the
//! `orders-tables` projection writes them (with the `users` row an order
//! needs, and catalog rows for the products its lines name).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use query_api::orders::{
    OrderAddressView, OrderDetail, OrderItemView, OrderStatus, OrderView, PaymentStatus,
};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{at, money, TestContext};

/// Order numbers are unique; each fixture gets the next one.
static NEXT_ORDER_NUMBER: AtomicU64 = AtomicU64::new(1);

fn next_order_number() -> String {
    format!(
        "ORD-2024-{:06}",
        NEXT_ORDER_NUMBER.fetch_add(1, Ordering::Relaxed)
    )
}

fn bangkok_address() -> OrderAddressView {
    OrderAddressView {
        first_name: "Somchai".into(),
        last_name: "Jaidee".into(),
        company: None,
        street_address_1: "123 Sukhumvit Rd".into(),
        street_address_2: Some("Floor 4".into()),
        city: "Bangkok".into(),
        state_province: "Bangkok".into(),
        postal_code: "10110".into(),
        country: "TH".into(),
        phone: Some("+66812345678".into()),
    }
}

/// One line of `quantity` × `unit_price` of a product of its own (the
/// catalog row is made by `insert_order`), without a variant or options,
/// created with the seed's order.
pub fn order_line(order_id: Uuid, name: &str, unit_price: &str, quantity: i32) -> OrderItemView {
    let unit_price = money(unit_price);
    OrderItemView {
        id: Uuid::now_v7(),
        order_id,
        product_id: Some(Uuid::now_v7()),
        product_variant_id: None,
        product_name: name.into(),
        product_sku: name.to_uppercase().replace(' ', "-"),
        product_image_url: None,
        unit_price,
        quantity,
        total_price: unit_price * Decimal::from(quantity),
        product_options: BTreeMap::new(),
        created_at: at(15),
    }
}

/// The seed's example order of `user_id`: two iPhone 15 Pro (black,
/// 256GB) at 35900, so 71800 + 50 shipping + 5026 VAT = 76876 THB; placed
/// 2024-01-15 10:30 UTC, pending and unpaid, with the same address for
/// billing and shipping, a customer's note and an admin's.
pub fn seed_order(user_id: Uuid) -> OrderDetail {
    let id = Uuid::now_v7();
    let mut iphones = order_line(id, "iPhone 15 Pro", "35900.00", 2);
    iphones.product_variant_id = Some(Uuid::now_v7());
    iphones.product_sku = "IPH-15-PRO-256".into();
    iphones.product_image_url = Some("https://cdn.example.com/iphone.png".into());
    iphones.product_options = [
        ("color".to_owned(), "black".to_owned()),
        ("storage".to_owned(), "256GB".to_owned()),
    ]
    .into();
    OrderDetail {
        order: OrderView {
            id,
            order_number: next_order_number(),
            user_id: Some(user_id),
            status: OrderStatus::Pending,
            subtotal: money("71800.00"),
            tax_amount: money("5026.00"),
            shipping_amount: money("50.00"),
            discount_amount: money("0.00"),
            total_amount: money("76876.00"),
            currency: "THB".into(),
            billing_address: bangkok_address(),
            shipping_address: bangkok_address(),
            shipping_method: Some("standard".into()),
            tracking_number: None,
            shipped_at: None,
            delivered_at: None,
            payment_status: PaymentStatus::Pending,
            payment_method: Some("credit_card".into()),
            notes: Some("Please ring the bell".into()),
            admin_notes: Some("VIP customer".into()),
            created_at: at(15),
            updated_at: at(15),
            item_count: 2,
        },
        items: vec![iphones],
    }
}

impl TestContext {
    /// A `users` row for `user_id`, unless there is one.
    pub async fn insert_order_owner(&self, user_id: Uuid) {
        sqlx::query(
            "INSERT INTO read_model.users (id, email, password_hash, first_name, last_name, status) \
             VALUES ($1, $2, '$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA', 'Somchai', 'Jaidee', 'active') \
             ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(format!("{user_id}@orders.test"))
        .execute(self.pool())
        .await
        .expect("insert order owner");
    }

    /// A catalog product of `product_id` (with the variant, if any) for a
    /// line to name, unless there is one.
    async fn insert_line_product(&self, item: &OrderItemView) {
        let Some(product_id) = item.product_id else {
            return;
        };
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM read_model.products WHERE id = $1)")
                .bind(product_id)
                .fetch_one(self.pool())
                .await
                .expect("look the product up");
        if exists {
            return;
        }
        let mut product = super::product(&item.product_name);
        product.id = product_id;
        if let Some(variant_id) = item.product_variant_id {
            product.variants = vec![infrastructure::views::ProductVariantView {
                id: variant_id,
                sku: format!("{}-{}", product.sku, "V"),
                name: Some(item.product_name.clone()),
                price: item.unit_price,
                stock_quantity: 10,
                attributes: item.product_options.clone(),
                is_active: true,
            }];
        }
        self.insert_product(&product).await;
    }

    /// The order's row and its lines (`item_count` is the read model's to
    /// count), with their owner and products.
    pub async fn insert_order(&self, detail: &OrderDetail) {
        let order = &detail.order;
        if let Some(user_id) = order.user_id {
            self.insert_order_owner(user_id).await;
        }
        for item in &detail.items {
            self.insert_line_product(item).await;
        }
        sqlx::query(
            "INSERT INTO read_model.orders (id, order_number, user_id, status, subtotal, tax_amount, \
             shipping_amount, discount_amount, total_amount, currency, billing_address, \
             shipping_address, shipping_method, tracking_number, shipped_at, delivered_at, \
             payment_status, payment_method, notes, admin_notes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, $22)",
        )
        .bind(order.id)
        .bind(&order.order_number)
        .bind(order.user_id)
        .bind(order.status.as_str())
        .bind(order.subtotal)
        .bind(order.tax_amount)
        .bind(order.shipping_amount)
        .bind(order.discount_amount)
        .bind(order.total_amount)
        .bind(&order.currency)
        .bind(sqlx::types::Json(&order.billing_address))
        .bind(sqlx::types::Json(&order.shipping_address))
        .bind(&order.shipping_method)
        .bind(&order.tracking_number)
        .bind(order.shipped_at)
        .bind(order.delivered_at)
        .bind(order.payment_status.as_str())
        .bind(&order.payment_method)
        .bind(&order.notes)
        .bind(&order.admin_notes)
        .bind(order.created_at)
        .bind(order.updated_at)
        .execute(self.pool())
        .await
        .expect("insert order");
        // Last first: the read model, not the insertion, orders them.
        for item in detail.items.iter().rev() {
            sqlx::query(
                "INSERT INTO read_model.order_items (id, order_id, product_id, product_variant_id, \
                 product_name, product_sku, product_image_url, unit_price, quantity, total_price, \
                 product_options, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(item.id)
            .bind(item.order_id)
            .bind(item.product_id)
            .bind(item.product_variant_id)
            .bind(&item.product_name)
            .bind(&item.product_sku)
            .bind(&item.product_image_url)
            .bind(item.unit_price)
            .bind(item.quantity)
            .bind(item.total_price)
            .bind(sqlx::types::Json(&item.product_options))
            .bind(item.created_at)
            .execute(self.pool())
            .await
            .expect("insert order item");
        }
    }
}
