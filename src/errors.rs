//! Errors as people read them: the error and each of its sources.

use std::error::Error;

/// `error: source: source's source`. spreadguard's errors name only their own part (a path,
/// a field) and leave their cause to `source()`, so nothing is said twice.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}
