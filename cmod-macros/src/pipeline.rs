//! `#[pipeline]`: parse, validate, expand.

use proc_macro2::TokenStream;

/// Expands the attribute. (Placeholder until implemented: re-emits the item unchanged.)
pub(crate) fn expand(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
