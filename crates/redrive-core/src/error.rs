//! The one error table: every SQS error with its JSON `__type` shape, its legacy Query code
//! (also the first half of `x-amzn-query-error`), its HTTP status and its fault side.

use std::fmt;

/// Which side AWS blames for an error (`Sender` = client error, `Receiver` = server error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Sender,
    Receiver,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Sender => "Sender",
            Fault::Receiver => "Receiver",
        }
    }
}

macro_rules! error_codes {
    ($( $variant:ident => ($shape:literal, $query:literal, $status:literal, $fault:ident) ),* $(,)?) => {
        /// Every error the server can answer with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $variant ),* }

        impl ErrorCode {
            /// The shape name, used as `com.amazonaws.sqs#<shape>` in JSON `__type`.
            pub fn shape(self) -> &'static str { match self { $( ErrorCode::$variant => $shape ),* } }
            /// The legacy Query error code (`<Code>` in XML, first half of `x-amzn-query-error`).
            pub fn query_code(self) -> &'static str { match self { $( ErrorCode::$variant => $query ),* } }
            /// HTTP status code.
            pub fn status(self) -> u16 { match self { $( ErrorCode::$variant => $status ),* } }
            /// Sender or Receiver.
            pub fn fault(self) -> Fault { match self { $( ErrorCode::$variant => Fault::$fault ),* } }
            /// All codes, for table tests and docs.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant ),* ];
        }
    };
}

error_codes! {
    QueueDoesNotExist => ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", 400, Sender),
    QueueNameExists => ("QueueNameExists", "QueueAlreadyExists", 400, Sender),
    QueueDeletedRecently => ("QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently", 400, Sender),
    UnsupportedOperation => ("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", 400, Sender),
    MessageNotInflight => ("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", 400, Sender),
    BatchEntryIdsNotDistinct => ("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400, Sender),
    BatchRequestTooLong => ("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", 400, Sender),
    EmptyBatchRequest => ("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", 400, Sender),
    InvalidBatchEntryId => ("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", 400, Sender),
    TooManyEntriesInBatchRequest => ("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, Sender),
    InvalidAttributeName => ("InvalidAttributeName", "InvalidAttributeName", 400, Sender),
    InvalidAttributeValue => ("InvalidAttributeValue", "InvalidAttributeValue", 400, Sender),
    InvalidMessageContents => ("InvalidMessageContents", "InvalidMessageContents", 400, Sender),
    ResourceNotFoundException => ("ResourceNotFoundException", "ResourceNotFoundException", 404, Sender),
    InvalidAddress => ("InvalidAddress", "InvalidAddress", 404, Sender),
    ReceiptHandleIsInvalid => ("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", 404, Sender),
    InvalidSecurity => ("InvalidSecurity", "InvalidSecurity", 403, Sender),
    RequestThrottled => ("RequestThrottled", "RequestThrottled", 403, Sender),
    OverLimit => ("OverLimit", "OverLimit", 403, Sender),
    PurgeQueueInProgress => ("PurgeQueueInProgress", "AWS.SimpleQueueService.PurgeQueueInProgress", 403, Sender),
    KmsAccessDenied => ("KmsAccessDenied", "KMS.AccessDeniedException", 400, Sender),
    KmsDisabled => ("KmsDisabled", "KMS.DisabledException", 400, Sender),
    KmsInvalidKeyUsage => ("KmsInvalidKeyUsage", "KMS.InvalidKeyUsageException", 400, Sender),
    KmsInvalidState => ("KmsInvalidState", "KMS.InvalidStateException", 400, Sender),
    KmsNotFound => ("KmsNotFound", "KMS.NotFoundException", 400, Sender),
    KmsOptInRequired => ("KmsOptInRequired", "KMS.OptInRequired", 403, Sender),
    KmsThrottled => ("KmsThrottled", "KMS.ThrottlingException", 400, Sender),
    // Not modelled shapes (common errors): AWS JSON 1.0 answers these names in `__type`.
    InvalidParameterValue => ("InvalidParameterValueException", "InvalidParameterValue", 400, Sender),
    MissingParameter => ("MissingRequiredParameterException", "MissingParameter", 400, Sender),
    MalformedQueryString => ("MalformedQueryString", "MalformedQueryString", 400, Sender),
    InvalidAction => ("InvalidAction", "InvalidAction", 400, Sender),
    SerializationException => ("SerializationException", "SerializationException", 400, Sender),
    UnknownOperationException => ("UnknownOperationException", "UnknownOperationException", 400, Sender),
    RequestEntityTooLarge => ("RequestEntityTooLarge", "RequestEntityTooLarge", 413, Sender),
    // A request body that did not arrive in time (S3's code and status; SDKs retry it).
    RequestTimeout => ("RequestTimeout", "RequestTimeout", 400, Sender),
    AccessDenied => ("AccessDeniedException", "AccessDenied", 403, Sender),
    SignatureDoesNotMatch => ("SignatureDoesNotMatch", "SignatureDoesNotMatch", 403, Sender),
    InvalidClientTokenId => ("InvalidClientTokenId", "InvalidClientTokenId", 403, Sender),
    MissingAuthenticationToken => ("MissingAuthenticationToken", "MissingAuthenticationToken", 403, Sender),
    IncompleteSignature => ("IncompleteSignature", "IncompleteSignature", 400, Sender),
    InternalError => ("InternalError", "InternalError", 500, Receiver),
    ServiceUnavailable => ("ServiceUnavailable", "ServiceUnavailable", 503, Receiver),
}

impl ErrorCode {
    /// The name our own extension APIs (`/_redrive/v1/`) put in `__type`: the shape name, except
    /// for the common errors, which keep their short code there (stable since before the JSON
    /// names were corrected to AWS's `…Exception` forms).
    pub fn extension_name(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue
            | ErrorCode::MissingParameter
            | ErrorCode::AccessDenied => self.query_code(),
            _ => self.shape(),
        }
    }
}

/// An SQS error: a code from the table plus the human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SqsError {
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for SqsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.query_code(), self.message)
    }
}

pub type SqsResult<T> = Result<T, SqsError>;

impl SqsError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        SqsError {
            code,
            message: message.into(),
        }
    }

    pub fn queue_does_not_exist() -> Self {
        Self::new(
            ErrorCode::QueueDoesNotExist,
            "The specified queue does not exist.",
        )
    }

    /// 503: a temporary failure of the server (AWS's text); SDKs retry it.
    pub fn service_unavailable() -> Self {
        Self::new(
            ErrorCode::ServiceUnavailable,
            "The request has failed due to a temporary failure of the server.",
        )
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new(
            ErrorCode::MissingParameter,
            format!("The request must contain the parameter {name}."),
        )
    }

    /// `Value X for parameter P is invalid. Reason: R`
    pub fn invalid_value(param: &str, value: impl fmt::Display, reason: &str) -> Self {
        Self::invalid_parameter(format!(
            "Value {value} for parameter {param} is invalid. Reason: {reason}"
        ))
    }

    pub fn invalid_attribute_name(name: &str) -> Self {
        Self::new(
            ErrorCode::InvalidAttributeName,
            format!("Unknown Attribute {name}."),
        )
    }

    pub fn receipt_handle_invalid(handle: &str) -> Self {
        Self::new(
            ErrorCode::ReceiptHandleIsInvalid,
            format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }

    /// The value of the `x-amzn-query-error` header: `<query code>;<Sender|Receiver>`.
    pub fn query_error_header(&self) -> String {
        format!("{};{}", self.code.query_code(), self.code.fault().as_str())
    }

    /// The JSON `__type`: `com.amazonaws.sqs#<Shape>`.
    pub fn json_type(&self) -> String {
        format!("com.amazonaws.sqs#{}", self.code.shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_reference() {
        let e = SqsError::queue_does_not_exist();
        assert_eq!(e.json_type(), "com.amazonaws.sqs#QueueDoesNotExist");
        assert_eq!(
            e.query_error_header(),
            "AWS.SimpleQueueService.NonExistentQueue;Sender"
        );
        assert_eq!(e.code.status(), 400);
        assert_eq!(ErrorCode::ResourceNotFoundException.status(), 404);
        assert_eq!(ErrorCode::PurgeQueueInProgress.status(), 403);
        assert_eq!(ErrorCode::InternalError.fault(), Fault::Receiver);
        assert_eq!(
            ErrorCode::QueueNameExists.query_code(),
            "QueueAlreadyExists"
        );
    }

    /// AWS JSON 1.0 names of the common (not modelled) errors, issue 20 point 2.
    #[test]
    fn common_errors_carry_aws_json_names() {
        let e = SqsError::invalid_parameter("x");
        assert_eq!(
            e.json_type(),
            "com.amazonaws.sqs#InvalidParameterValueException"
        );
        assert_eq!(e.query_error_header(), "InvalidParameterValue;Sender");
        let e = SqsError::missing_parameter("QueueUrl");
        assert_eq!(
            e.json_type(),
            "com.amazonaws.sqs#MissingRequiredParameterException"
        );
        assert_eq!(e.query_error_header(), "MissingParameter;Sender");
    }

    /// Every modelled shape's JSON name is its Smithy shape name (what SDKs match without the
    /// `x-amzn-query-error` header), and its Query code is the model's `awsQueryError` code.
    #[test]
    fn modelled_shapes_match_the_model() {
        let modelled = [
            (
                ErrorCode::QueueDoesNotExist,
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
            ),
            (
                ErrorCode::QueueNameExists,
                "QueueNameExists",
                "QueueAlreadyExists",
            ),
            (
                ErrorCode::MessageNotInflight,
                "MessageNotInflight",
                "AWS.SimpleQueueService.MessageNotInflight",
            ),
            (
                ErrorCode::TooManyEntriesInBatchRequest,
                "TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            ),
            (
                ErrorCode::ReceiptHandleIsInvalid,
                "ReceiptHandleIsInvalid",
                "ReceiptHandleIsInvalid",
            ),
            (
                ErrorCode::KmsAccessDenied,
                "KmsAccessDenied",
                "KMS.AccessDeniedException",
            ),
            (
                ErrorCode::PurgeQueueInProgress,
                "PurgeQueueInProgress",
                "AWS.SimpleQueueService.PurgeQueueInProgress",
            ),
        ];
        for (code, shape, query) in modelled {
            assert_eq!(code.shape(), shape);
            assert_eq!(code.query_code(), query);
        }
    }

    #[test]
    fn every_code_has_distinct_shape() {
        let mut shapes: Vec<_> = ErrorCode::ALL.iter().map(|c| c.shape()).collect();
        shapes.sort_unstable();
        let n = shapes.len();
        shapes.dedup();
        assert_eq!(n, shapes.len());
    }
}
