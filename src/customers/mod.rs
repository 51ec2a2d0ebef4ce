//! Customers' personal data on its way out and in: the masks (`mask.rs`) applied after the
//! policy decides, and the card redaction applied before anything is stored.

pub mod mask;
pub mod verification;

use crate::crypto::vault::Opener;
use crate::error::{ApiError, ApiResult};
use crate::vocabulary::{Field, Storage};

/// The text of a field stored in one column of `customers`, decrypted if sealed.
pub fn stored_text(
    row: &entity::customer::Model,
    opener: &Opener,
    field: Field,
) -> ApiResult<String> {
    use sea_orm::{ModelTrait, Value};
    let broken = |why: &str| {
        ApiError::internal(
            anyhow::anyhow!("customers.{field}: {why}"),
            "reading a customer",
        )
    };
    let Storage::Column { column, sealed, .. } = field.storage() else {
        return Err(broken("not stored in one column"));
    };
    let column: entity::customer::Column = column.parse().map_err(|_| broken("no such column"))?;
    match (row.get(column), sealed) {
        (Value::Bytes(Some(bytes)), true) => {
            opener.text("customers", field.storage_column(), row.id, &bytes)
        }
        (Value::String(Some(text)), false) => Ok(text),
        (Value::ChronoDate(Some(date)), false) => Ok(date.to_string()),
        _ => Err(broken("unexpected column type")),
    }
}
