//! AWS Query: form parameters in (POST body and/or GET query string), XML out.

mod decode;
mod params;
mod xml;

pub use decode::decode;
pub use params::{Params, parse_params};
pub use xml::{NAMESPACE, encode_error, encode_response};

/// `Content-Type` of every Query response, errors included.
pub const CONTENT_TYPE: &str = "text/xml";
