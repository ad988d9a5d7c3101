//! How ids are shown: in full (logs, the HTTP API, the state file) and
//! abbreviated (debug output).

use super::*;

#[test]
fn display_is_the_full_hex_that_parses_back_and_debug_its_first_twelve_digits() {
    let id = NodeId::digest(b"display");
    let shown = id.to_string();
    assert_eq!(shown.len(), 40);
    assert_eq!(shown, id.to_hex());
    assert_eq!(NodeId::from_hex(&shown), Ok(id));
    assert_eq!(format!("{id:?}"), shown[..12]);
    assert_eq!(id.as_bytes(), &id.0);
}
