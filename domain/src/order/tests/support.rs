//! Builders shared by the order tests: states are built through each
//! aggregate's own decisions and events, as the command side would load them.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration};
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::cart::{
    open_cart, Cart, CartEvent, CartOwner, CartPolicy, CatalogItem, SessionId, ShippingMethodCode,
};
use crate::inventory::{Inventory, InventoryEvent};
use crate::order::{
    Order, OrderCoupon, OrderEvent, OrderLine, OrderStatus, PaymentStatus, StockReservation,
};
use crate::promotion::{AppliedPromotion, PromotionType};
use crate::values::{
    CouponCode, Currency, Money, OrderNumber, PostalAddress, PostalAddressInput, Quantity, Sku,
};

pub(crate) use crate::promotion::promotion::tests::t;
pub use chrono::Utc;

pub const ORDER: Uuid = Uuid::from_u128(0x0a);
pub const CART: Uuid = Uuid::from_u128(0x0c);
pub const USER: Uuid = Uuid::from_u128(0x0e);
pub const IPHONE: Uuid = Uuid::from_u128(0x100);
pub const CASE: Uuid = Uuid::from_u128(0x101);
pub const NOVEL: Uuid = Uuid::from_u128(0x102);
pub const PHONES: Uuid = Uuid::from_u128(0x200);
pub const BOOKS: Uuid = Uuid::from_u128(0x201);
pub const PAYMENT: Uuid = Uuid::from_u128(0x300);

pub fn money(amount: Decimal) -> Money {
    Money::new(amount).unwrap()
}

pub fn sku(raw: &str) -> Sku {
    Sku::parse(raw).unwrap()
}

pub fn qty(n: i64) -> Quantity {
    Quantity::new(n).unwrap()
}

pub fn address() -> PostalAddress {
    PostalAddress::new(PostalAddressInput {
        first_name: "Somchai".into(),
        last_name: "Jaidee".into(),
        street_address_1: "1 Sukhumvit Rd".into(),
        city: "Bangkok".into(),
        state_province: "Bangkok".into(),
        postal_code: "10110".into(),
        ..Default::default()
    })
    .unwrap()
}

pub fn apply<A: Aggregate>(state: &mut A, events: Vec<A::Event>) {
    for event in events {
        state.apply(event);
    }
}

/// What a product looks like in the catalog, for the cart and for checkout.
#[derive(Clone)]
pub struct Product {
    pub product_id: Uuid,
    pub sku: Sku,
    pub name: &'static str,
    pub price: Money,
    pub category_id: Uuid,
    pub taxable: bool,
}

pub fn iphone() -> Product {
    Product {
        product_id: IPHONE,
        sku: sku("IPH-15-PRO"),
        name: "iPhone 15 Pro",
        price: money(Decimal::from(35900)),
        category_id: PHONES,
        taxable: true,
    }
}

pub fn phone_case() -> Product {
    Product {
        product_id: CASE,
        sku: sku("CASE-01"),
        name: "Phone case",
        price: money(Decimal::from(490)),
        category_id: PHONES,
        taxable: true,
    }
}

/// A VAT-exempt book.
pub fn novel() -> Product {
    Product {
        product_id: NOVEL,
        sku: sku("BOOK-01"),
        name: "Novel",
        price: money(Decimal::from(400)),
        category_id: BOOKS,
        taxable: false,
    }
}

impl Product {
    pub fn catalog_item(&self) -> CatalogItem {
        CatalogItem {
            product_id: self.product_id,
            variant_id: None,
            sku: self.sku.clone(),
            name: self.name.into(),
            unit_price: self.price,
            is_active: true,
            image_url: None,
        }
    }

    pub fn entry(&self) -> crate::order::CatalogEntry {
        crate::order::CatalogEntry {
            product_id: self.product_id,
            variant_id: None,
            sku: self.sku.clone(),
            name: self.name.into(),
            price: self.price,
            is_active: true,
            image_url: None,
            category_id: Some(self.category_id),
            taxable: self.taxable,
        }
    }
}

/// An active cart of `owner`, opened on Jan 9 2024 (it lives 7 days), holding
/// `lines`, shipping to `address()` by "standard" for `fee`, with `coupon` applied.
pub fn cart_with(
    owner: CartOwner,
    lines: &[(Product, i64, BTreeMap<String, String>)],
    fee: Decimal,
    coupon: Option<&str>,
) -> Cart {
    let policy = CartPolicy::default();
    let opened = t(9);
    let mut cart = Cart::default();
    apply(&mut cart, open_cart(None, CART, owner, opened).unwrap());
    for (product, quantity, options) in lines {
        let events = cart
            .add_item(
                product.catalog_item(),
                qty(*quantity),
                options.clone(),
                &policy,
                opened,
            )
            .unwrap();
        apply(&mut cart, events);
    }
    let events = cart
        .set_shipping_address(address(), &policy, opened)
        .unwrap();
    apply(&mut cart, events);
    let events = cart
        .select_shipping_method(
            ShippingMethodCode::parse("standard").unwrap(),
            money(fee),
            &policy,
            opened,
        )
        .unwrap();
    apply(&mut cart, events);
    if let Some(code) = coupon {
        let events = cart
            .apply_coupon(CouponCode::parse(code).unwrap(), &policy, opened)
            .unwrap();
        apply(&mut cart, events);
    }
    cart
}

pub fn user() -> CartOwner {
    CartOwner::User { user_id: USER }
}

pub fn guest() -> CartOwner {
    CartOwner::Guest {
        session_id: SessionId::parse("session_123").unwrap(),
    }
}

pub fn line(product: Product, quantity: i64) -> (Product, i64, BTreeMap<String, String>) {
    (product, quantity, BTreeMap::new())
}

pub fn stock(product: &Product, quantity: i32, track_inventory: bool) -> Inventory {
    let mut inventory = Inventory::default();
    apply(
        &mut inventory,
        vec![InventoryEvent::StockInitialized {
            sku: product.sku.clone(),
            product_id: product.product_id,
            variant_id: None,
            quantity,
            low_stock_threshold: 0,
            track_inventory,
            at: t(1),
        }],
    );
    inventory
}

pub fn checked_out(cart: &Cart, order_id: Uuid) -> Cart {
    let mut cart = cart.clone();
    let events: Vec<CartEvent> = cart.check_out(order_id, t(10)).unwrap();
    apply(&mut cart, events);
    cart
}

pub fn expired_by(cart: &Cart) -> DateTime<Utc> {
    cart.expires_at().unwrap() + Duration::seconds(1)
}

/// A small placed order: one iPhone, 35900 + 50 shipping + 2513 VAT, with a
/// coupon and a promotion use, holding two units of stock.
pub fn placed() -> OrderEvent {
    let iphone = iphone();
    OrderEvent::OrderPlaced {
        order_id: ORDER,
        order_number: OrderNumber::allocate(2024, 1).unwrap(),
        cart_id: CART,
        user_id: Some(USER),
        status: OrderStatus::Pending,
        payment_status: PaymentStatus::Pending,
        items: vec![OrderLine {
            order_item_id: Uuid::from_u128(0x1_0000),
            product_id: iphone.product_id,
            product_variant_id: None,
            product_name: iphone.name.into(),
            product_sku: iphone.sku.clone(),
            product_image_url: None,
            unit_price: iphone.price,
            quantity: qty(1),
            total_price: iphone.price,
            discount_amount: Money::ZERO,
            taxable: true,
            product_options: BTreeMap::new(),
        }],
        subtotal: iphone.price,
        discount_amount: Money::ZERO,
        shipping_fee: money(Decimal::from(50)),
        shipping_discount: Money::ZERO,
        shipping_amount: money(Decimal::from(50)),
        tax_amount: money(Decimal::from(2513)),
        total_amount: money(Decimal::from(38463)),
        currency: Currency::default(),
        billing_address: address(),
        shipping_address: address(),
        shipping_method: ShippingMethodCode::parse("standard").unwrap(),
        payment_method: None,
        coupon: Some(OrderCoupon {
            coupon_id: crate::promotion::coupon::tests::COUPON,
            code: crate::promotion::coupon::tests::code(),
        }),
        promotions: vec![AppliedPromotion {
            promotion_id: crate::promotion::coupon::tests::PROMOTION,
            coupon_code: Some(crate::promotion::coupon::tests::code()),
            promotion_type: PromotionType::FreeShipping,
            discount_amount: Money::ZERO,
            shipping_discount: Money::ZERO,
        }],
        reserved_stock: vec![StockReservation {
            sku: iphone.sku,
            quantity: qty(1),
        }],
        notes: None,
        created_at: t(10),
    }
}

pub fn order_from(events: Vec<OrderEvent>) -> Order {
    let mut order = Order::default();
    apply(&mut order, events);
    order
}
