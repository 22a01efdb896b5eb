//! `POST /v1/orders`: the checkout. The signed-in customer's cart becomes an
//! order in one atomic multi-stream append, decided by
//! `domain::order::place_order`:
//! - the order (its number claimed on `order_number:<number>`);
//! - the cart, checked out (and first its shipping method, when the request
//!   names another);
//! - every inventory stream it reserves;
//! - the coupon it redeems and every promotion it uses (the global limit);
//! - the customer's usage stream of each of those promotions (the per-user
//!   limit, see `domain::promotion::customer_usage`).
//!
//! Every stream is appended at the version read, so a concurrent checkout
//! of the last unit, the last coupon use or the customer's other order
//! conflicts, and the retry decides on what the winner left. Prices are
//! re-read from the catalog: a line whose price changed answers 409 with
//! the new price. Guests sign in (or register) to check out: an order's
//! addresses are sealed under the customer's key.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use chrono::Datelike;
use domain::cart::{Cart, CartOwner, ShippingMethodCode};
use domain::catalog::Product;
use domain::inventory::{inventory_stream_id, Inventory};
use domain::order::{
    place_order, CatalogEntry, CheckoutInput, CheckoutOutcome, CouponState, Order, OrderNote,
    PaymentMethodCode,
};
use domain::promotion::{customer_usage_stream_id, Coupon, CustomerUsage, Promotion};
use domain::uniqueness::{UniqueKey, UniqueScope};
use domain::user::User;
use domain::values::{Money, OrderNumber, PostalAddress, PostalAddressInput, Sku};
use infrastructure::event_store::aggregates::{load, Loaded};
use serde::Deserialize;
use tracing::{instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use super::carts::{catalog_item_of, shipping_selection};
use crate::auth::SignedIn;
use crate::command::{execute, load_as, load_key, load_new, AppState, Plan};
use crate::error::ApiError;
use crate::input::Amount;
use crate::openapi::{CommandHeaders, Conflict, NotFound, PreconditionFailed, RuleBroken};
use crate::request::{CommandBody, CommandContext, CommandRequest};

/// Tries at the next number when the sequence hands out one already
/// claimed (a sequence restored from an older backup).
const ORDER_NUMBER_TRIES: usize = 5;

impl CommandBody for CheckoutRequest {
    const MULTI_LINE_FIELDS: &'static [&'static str] = &["notes"];
}

/// A postal address given for this order alone.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderAddressRequest {
    pub first_name: String,
    pub last_name: String,
    pub company: Option<String>,
    pub street_address_1: String,
    pub street_address_2: Option<String>,
    pub city: String,
    pub state_province: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2; TH when absent.
    pub country: Option<String>,
    pub phone: Option<String>,
}

impl OrderAddressRequest {
    fn parse(self, field: &str) -> Result<PostalAddress, ApiError> {
        PostalAddress::new(PostalAddressInput {
            first_name: self.first_name,
            last_name: self.last_name,
            company: self.company,
            street_address_1: self.street_address_1,
            street_address_2: self.street_address_2,
            city: self.city,
            state_province: self.state_province,
            postal_code: self.postal_code,
            country: self.country,
            phone: self.phone,
        })
        .map_err(|error| ApiError::invalid_field(field, error))
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// Client-chosen id; a new UUID v7 when absent.
    pub order_id: Option<Uuid>,
    /// The signed-in customer's active cart.
    pub cart_id: Uuid,
    /// Where to ship, for this order alone; or `shipping_address_id`.
    pub shipping_address: Option<OrderAddressRequest>,
    /// An address of the customer's book. Without either, the book's default.
    pub shipping_address_id: Option<Uuid>,
    /// Without either, billed to the shipping address.
    pub billing_address: Option<OrderAddressRequest>,
    pub billing_address_id: Option<Uuid>,
    /// One of the shop's methods; the cart's when absent.
    pub shipping_method: Option<String>,
    /// `credit_card`, `promptpay`, …: lower-case words joined by `_`.
    #[schema(pattern = r"^\s*[a-z0-9]+(_[a-z0-9]+)*\s*$", max_length = 50)]
    pub payment_method: String,
    pub notes: Option<String>,
    /// The total the customer was shown; a different one is a 409
    /// `total-changed` (a promotion ended meanwhile, say).
    pub expected_total: Option<Amount>,
}

/// Where an address comes from.
#[derive(Debug, Clone)]
enum AddressChoice {
    Given(Box<PostalAddress>),
    Book(Uuid),
    /// The shipping address: the book's default. The billing address: the
    /// shipping one.
    Default,
}

/// The request, parsed.
#[derive(Debug, Clone)]
struct Checkout {
    order_id: Uuid,
    cart_id: Uuid,
    shipping: AddressChoice,
    billing: AddressChoice,
    shipping_method: Option<(ShippingMethodCode, Money)>,
    payment_method: PaymentMethodCode,
    notes: Option<OrderNote>,
    expected_total: Option<Money>,
}

fn address_choice(
    given: Option<OrderAddressRequest>,
    book: Option<Uuid>,
    field: &str,
) -> Result<AddressChoice, ApiError> {
    match (given, book) {
        (Some(_), Some(_)) => Err(ApiError::invalid_field(
            field,
            format!("give {field} or {field}_id, not both"),
        )),
        (Some(address), None) => Ok(AddressChoice::Given(Box::new(address.parse(field)?))),
        (None, Some(id)) => Ok(AddressChoice::Book(id)),
        (None, None) => Ok(AddressChoice::Default),
    }
}

impl CheckoutRequest {
    fn parse(self, state: &AppState) -> Result<Checkout, ApiError> {
        let shipping = address_choice(
            self.shipping_address,
            self.shipping_address_id,
            "shipping_address",
        )?;
        let billing = address_choice(
            self.billing_address,
            self.billing_address_id,
            "billing_address",
        )?;
        let shipping_method = self
            .shipping_method
            .as_deref()
            .map(|method| shipping_selection(state, "shipping_method", method))
            .transpose()?;
        let payment_method = PaymentMethodCode::parse(&self.payment_method)
            .map_err(|error| ApiError::invalid_field("payment_method", error))?;
        let notes = self
            .notes
            .filter(|notes| !notes.trim().is_empty())
            .map(|notes| OrderNote::parse(&notes))
            .transpose()
            .map_err(|error| ApiError::invalid_field("notes", error))?;
        let expected_total = self
            .expected_total
            .map(|Amount(amount)| Money::new(amount))
            .transpose()
            .map_err(|error| ApiError::invalid_field("expected_total", error))?;
        Ok(Checkout {
            order_id: self.order_id.unwrap_or_else(Uuid::now_v7),
            cart_id: self.cart_id,
            shipping,
            billing,
            shipping_method,
            payment_method,
            notes,
            expected_total,
        })
    }
}

#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "orders",
    operation_id = "place_order",
    summary = "Check out the cart",
    description = "The signed-in customer's cart becomes an order, in one append with the stock it reserves, \
        the coupon it redeems and the promotions it uses. Prices are the catalog's now: a changed one is a 409 \
        `price-changed` with the new price; stock that is short a 422 `insufficient-stock`; a coupon that no \
        longer applies a 422 naming why. 201, `Location: /v1/orders/{id}`.",
    security(("bearerAuth" = [])),
    params(CommandHeaders),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "Placed", body = crate::command::Receipt),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = RuleBroken),
    ),
)]
#[instrument(skip_all, fields(user_id = %session.user_id, order_id = tracing::field::Empty))]
pub async fn place(
    SignedIn(session, _): SignedIn,
    State(state): State<AppState>,
    request: CommandRequest<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let CommandRequest { context, body } = request;
    let checkout = body.parse(&state)?;
    Span::current().record("order_id", tracing::field::display(checkout.order_id));
    let user_id = session.user_id;
    execute(&state, &context, || {
        plan(state.clone(), context.clone(), user_id, checkout.clone())
    })
    .await
}

/// Everything the decision reads, loaded at the versions the append will
/// assert.
struct Loads {
    products: BTreeMap<Uuid, Product>,
    inventories: BTreeMap<Sku, Loaded<Inventory>>,
    coupon: Option<(Loaded<Coupon>, Loaded<Promotion>)>,
    automatic: Vec<Loaded<Promotion>>,
    usage: BTreeMap<Uuid, Loaded<CustomerUsage>>,
}

async fn plan(
    state: AppState,
    context: CommandContext,
    user_id: Uuid,
    checkout: Checkout,
) -> Result<Plan, ApiError> {
    let at = context.at;
    let order = load_new::<Order>(&state, &context, "order", checkout.order_id).await?;
    let user = load_as::<User>(&state, &user_id.to_string())
        .await?
        .filter(|user| user.version > 0)
        .ok_or_else(|| ApiError::not_found("user", user_id))?;
    let owner = CartOwner::User { user_id };
    let cart = load_as::<Cart>(&state, &checkout.cart_id.to_string())
        .await?
        .filter(|cart| cart.version > 0 && cart.aggregate.owner() == Some(&owner))
        .ok_or_else(|| ApiError::not_found("cart", checkout.cart_id))?;

    let shipping_address = match &checkout.shipping {
        AddressChoice::Given(address) => Some(address.as_ref().clone()),
        AddressChoice::Book(id) => Some(book_address(&user.aggregate, *id, "shipping_address_id")?),
        AddressChoice::Default => user.aggregate.default_address().map(|a| a.postal().clone()),
    };
    let billing_address = match &checkout.billing {
        AddressChoice::Given(address) => Some(address.as_ref().clone()),
        AddressChoice::Book(id) => Some(book_address(&user.aggregate, *id, "billing_address_id")?),
        AddressChoice::Default => None,
    };

    // A method named by the request is selected on the cart first, in the
    // same append.
    let mut cart_state = cart.aggregate.clone();
    let mut cart_events = Vec::new();
    if let Some((method, fee)) = &checkout.shipping_method {
        let current = cart_state.shipping_method();
        if current.map(|s| (&s.method, s.fee)) != Some((method, *fee)) {
            let events =
                cart_state.select_shipping_method(method.clone(), *fee, &state.cart_policy, at)?;
            for event in &events {
                cqrs_es::Aggregate::apply(&mut cart_state, event.clone());
            }
            cart_events.extend(events);
        }
    }

    let loads = load_everything(&state, &cart_state, user_id, at).await?;
    let mut catalog = BTreeMap::new();
    for item in cart_state.items() {
        let Some(product) = loads.products.get(&item.product_id) else {
            continue;
        };
        // A product that cannot sell any more is left out: the decision
        // then refuses the line as unavailable.
        let Ok(sold) = catalog_item_of(product, item.product_id, item.variant_id) else {
            continue;
        };
        catalog.insert(
            sold.sku.clone(),
            CatalogEntry {
                product_id: sold.product_id,
                variant_id: sold.variant_id,
                sku: sold.sku,
                name: sold.name,
                price: sold.unit_price,
                is_active: sold.is_active,
                image_url: sold.image_url,
                category_id: product.category_id(),
                taxable: true,
            },
        );
    }
    let inventories: BTreeMap<Sku, &Inventory> = loads
        .inventories
        .iter()
        .map(|(sku, loaded)| (sku.clone(), &loaded.aggregate))
        .collect();
    let automatic: Vec<&Promotion> = loads.automatic.iter().map(|p| &p.aggregate).collect();
    let customer_usage: BTreeMap<Uuid, &CustomerUsage> = loads
        .usage
        .iter()
        .map(|(promotion_id, loaded)| (*promotion_id, &loaded.aggregate))
        .collect();
    let (number_key, sequence, number) = next_order_number(&state, at.year()).await?;
    let item_ids: Vec<Uuid> = cart_state.items().iter().map(|_| Uuid::now_v7()).collect();

    let outcome = place_order(CheckoutInput {
        order_id: checkout.order_id,
        item_ids: &item_ids,
        cart: &cart_state,
        catalog: &catalog,
        inventories: &inventories,
        coupon: loads
            .coupon
            .as_ref()
            .map(|(coupon, promotion)| CouponState {
                coupon: &coupon.aggregate,
                promotion: &promotion.aggregate,
            }),
        automatic_promotions: &automatic,
        user_redemptions: &BTreeMap::new(),
        customer_usage: &customer_usage,
        user_can_order: user.aggregate.can_place_orders().is_ok(),
        shipping_address,
        billing_address,
        payment_method: Some(checkout.payment_method.clone()),
        expected_total: checkout.expected_total,
        notes: checkout.notes.clone(),
        order_sequence: sequence,
        now: at,
    })?;
    let placed = match outcome {
        CheckoutOutcome::Placed(placed) => placed,
        CheckoutOutcome::AlreadyPlaced { order_id } => {
            return Err(ApiError::rule(
                "cart-checked-out",
                "Cart checked out",
                format!("the cart was checked out into order {order_id}"),
            )
            .with("order_id", order_id));
        }
    };

    cart_events.extend(placed.cart.iter().cloned());
    let mut appends = vec![order.append(&placed.order), cart.append(&cart_events)];
    let claim = number_key
        .aggregate
        .claim(UniqueScope::OrderNumber, number.as_str(), checkout.order_id)
        .map_err(ApiError::internal)?;
    appends.push(number_key.append(&claim));
    for (stream_id, events) in &placed.inventory {
        let loaded = loads
            .inventories
            .values()
            .find(|loaded| &loaded.stream_id == stream_id)
            .ok_or_else(|| not_loaded(stream_id))?;
        appends.push(loaded.append(events));
    }
    if let (Some((_, events)), Some((coupon, _))) = (&placed.coupon, &loads.coupon) {
        appends.push(coupon.append(events));
    }
    for (promotion_id, events) in &placed.promotions {
        let loaded = promotion_stream(&loads, *promotion_id)
            .ok_or_else(|| not_loaded(&promotion_id.to_string()))?;
        appends.push(loaded.append(events));
    }
    for (stream_id, events) in &placed.customer_usage {
        let loaded = loads
            .usage
            .values()
            .find(|loaded| &loaded.stream_id == stream_id)
            .ok_or_else(|| not_loaded(stream_id))?;
        appends.push(loaded.append(events));
    }
    Ok(Plan::created("orders", checkout.order_id, appends))
}

fn not_loaded(stream_id: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!(
        "the checkout decided on stream {stream_id}, which was not loaded"
    ))
}

fn promotion_stream(loads: &Loads, promotion_id: Uuid) -> Option<&Loaded<Promotion>> {
    loads
        .coupon
        .iter()
        .map(|(_, promotion)| promotion)
        .chain(loads.automatic.iter())
        .find(|loaded| loaded.aggregate.promotion_id() == Some(promotion_id))
}

fn book_address(user: &User, id: Uuid, field: &'static str) -> Result<PostalAddress, ApiError> {
    user.address(id)
        .map(|address| address.postal().clone())
        .ok_or_else(|| {
            ApiError::rule(
                "address-not-found",
                "Address not found",
                format!("{field} {id} is not in your address book"),
            )
            .with("field", field)
        })
}

/// The catalog, stock, coupon and promotions the cart's checkout reads.
async fn load_everything(
    state: &AppState,
    cart: &Cart,
    user_id: Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Loads, ApiError> {
    let mut products = BTreeMap::new();
    let mut inventories = BTreeMap::new();
    for item in cart.items() {
        if let std::collections::btree_map::Entry::Vacant(entry) = products.entry(item.product_id) {
            // A product that is gone is left out; the decision refuses its line.
            if let Some(product) = load_as::<Product>(state, &item.product_id.to_string())
                .await?
                .filter(|product| product.version > 0)
            {
                entry.insert(product.aggregate);
            }
        }
        if let std::collections::btree_map::Entry::Vacant(entry) =
            inventories.entry(item.sku.clone())
        {
            let stream = inventory_stream_id(&item.sku);
            entry.insert(load::<Inventory>(&state.store, &state.upcasters, &stream).await?);
        }
    }

    let coupon = match cart.coupon_code() {
        None => None,
        Some(code) => {
            let key = load_key(state, UniqueScope::CouponCode, code.as_str()).await?;
            match key.aggregate.owner_id() {
                // No such coupon: the decision names the code.
                None => None,
                Some(coupon_id) => {
                    let coupon =
                        load::<Coupon>(&state.store, &state.upcasters, &coupon_id.to_string())
                            .await?;
                    match coupon.aggregate.promotion_id() {
                        None => None,
                        Some(promotion_id) => {
                            let promotion = load::<Promotion>(
                                &state.store,
                                &state.upcasters,
                                &promotion_id.to_string(),
                            )
                            .await?;
                            Some((coupon, promotion))
                        }
                    }
                }
            }
        }
    };

    // Promotions without a coupon apply by themselves. The read model only
    // lists the candidates; their state is the event store's.
    let candidates: Vec<Uuid> = sqlx::query_scalar(
        "SELECT p.id FROM read_model.promotions p \
         WHERE p.is_active AND p.starts_at <= $1 AND p.ends_at > $1 \
           AND NOT EXISTS (SELECT 1 FROM read_model.coupons c WHERE c.promotion_id = p.id) \
         ORDER BY p.id",
    )
    .bind(at)
    .fetch_all(state.store.pool())
    .await?;
    let mut automatic = Vec::with_capacity(candidates.len());
    for promotion_id in candidates {
        let promotion =
            load::<Promotion>(&state.store, &state.upcasters, &promotion_id.to_string()).await?;
        if promotion.version > 0 {
            automatic.push(promotion);
        }
    }

    let mut usage = BTreeMap::new();
    let promotion_ids = coupon
        .iter()
        .map(|(_, promotion)| promotion)
        .chain(automatic.iter())
        .filter_map(|loaded| loaded.aggregate.promotion_id());
    for promotion_id in promotion_ids {
        let stream = customer_usage_stream_id(promotion_id, user_id);
        usage.insert(
            promotion_id,
            load::<CustomerUsage>(&state.store, &state.upcasters, &stream).await?,
        );
    }

    Ok(Loads {
        products,
        inventories,
        coupon,
        automatic,
        usage,
    })
}

/// The next order number nobody holds, with its claim's stream and the
/// sequence value it was made of.
async fn next_order_number(
    state: &AppState,
    year: i32,
) -> Result<(Loaded<UniqueKey>, u64, OrderNumber), ApiError> {
    for _ in 0..ORDER_NUMBER_TRIES {
        let sequence: i64 = sqlx::query_scalar("SELECT nextval('event_store.order_numbers')")
            .fetch_one(state.store.pool())
            .await?;
        let sequence = u64::try_from(sequence).map_err(ApiError::internal)?;
        let number = OrderNumber::allocate(year, sequence).map_err(ApiError::internal)?;
        let key = load_key(state, UniqueScope::OrderNumber, number.as_str()).await?;
        if key.aggregate.owner_id().is_none() {
            return Ok((key, sequence, number));
        }
        tracing::warn!(order_number = %number.as_str(), "order number already claimed; taking the next");
    }
    Err(ApiError::internal(anyhow::anyhow!(
        "{ORDER_NUMBER_TRIES} order numbers in a row were already claimed"
    )))
}
