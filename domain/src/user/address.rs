//! An address-book entry: the shared `PostalAddress` (what carts and orders
//! snapshot) plus the book's own `type`. Serialized flat with the seed's
//! `user_addresses` column names, `type` included.

use serde::{Deserialize, Serialize};

use crate::values::{PostalAddress, PostalAddressInput, ValueError};

/// The seed's `user_addresses.type` CHECK values; `home` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressType {
    #[default]
    Home,
    Work,
    Other,
}

/// A checked address. Every way in (`new`, `from_postal`, serde) goes through
/// `PostalAddress::new`, because `PostalAddress` has public fields and a
/// hand-built one may not respect the seed's column lengths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AddressRepr")]
pub struct Address {
    #[serde(rename = "type")]
    address_type: AddressType,
    #[serde(flatten)]
    postal: PostalAddress,
}

#[derive(Deserialize)]
struct AddressRepr {
    #[serde(rename = "type", default)]
    address_type: AddressType,
    #[serde(flatten)]
    postal: PostalAddress,
}

impl TryFrom<AddressRepr> for Address {
    type Error = ValueError;
    fn try_from(repr: AddressRepr) -> Result<Self, Self::Error> {
        Address::from_postal(repr.address_type, repr.postal)
    }
}

impl Address {
    pub fn new(address_type: AddressType, input: PostalAddressInput) -> Result<Self, ValueError> {
        Ok(Self {
            address_type,
            postal: PostalAddress::new(input)?,
        })
    }

    /// Re-checks `postal` field by field (see the type's doc).
    pub fn from_postal(
        address_type: AddressType,
        postal: PostalAddress,
    ) -> Result<Self, ValueError> {
        let input = PostalAddressInput {
            first_name: postal.first_name,
            last_name: postal.last_name,
            company: postal.company,
            street_address_1: postal.street_address_1,
            street_address_2: postal.street_address_2,
            city: postal.city,
            state_province: postal.state_province,
            postal_code: postal.postal_code,
            country: Some(postal.country.into()),
            phone: postal.phone.map(Into::into),
        };
        Self::new(address_type, input)
    }

    pub fn address_type(&self) -> AddressType {
        self.address_type
    }

    /// What a cart or an order snapshots.
    pub fn postal(&self) -> &PostalAddress {
        &self.postal
    }

    pub fn into_postal(self) -> PostalAddress {
        self.postal
    }
}
