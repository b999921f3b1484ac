//! Text helpers shared by every stage: values cut to a length fit for an error message.

/// A value cut to a length fit for an error message (64 bytes, at a character
/// boundary), with its full length. Scrub secrets before, never after: a cut can hide
/// a secret's start from the scrubber.
pub fn shorten(value: &str) -> String {
    const MAX: usize = 64;
    if value.len() <= MAX {
        return value.to_string();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &value[..end], value.len())
}
