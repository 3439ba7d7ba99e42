//! Fuzzes the `<ml>` document parser of `ADL`/`RML`/`FQY`
//! (`msnp::adl::MembershipList`).
//!
//! Checked besides "never panics":
//! * a parsed document renders (server and client attribute order) to
//!   documents that parse back to the same list: a document can name each
//!   domain once, so its entries are already grouped the way rendering
//!   groups them;
//! * rendered documents hold no whitespace between elements;
//! * every refusal maps to one of the documented replies (240, 241, 204).

#![no_main]

use libfuzzer_sys::fuzz_target;
use msnp::adl::{Limits, MembershipList};

fuzz_target!(|data: &[u8]| {
    // Small limits now and then, so the bounds are reached too.
    let limits = match data.first() {
        Some(&selector) if selector < 16 => Limits {
            max_bytes: 64,
            max_entries: 2,
            max_attribute: 8,
        },
        _ => Limits::default(),
    };
    match MembershipList::parse_with(data, &limits) {
        Ok(list) => {
            let _ = list.check_client_lists();
            for rendered in [list.to_xml(), list.to_client_xml()] {
                assert!(!rendered.contains(['\n', '\r', '\t']), "{rendered}");
                assert!(!rendered.contains("> "), "{rendered}");
                let again = MembershipList::parse(rendered.as_bytes());
                assert_eq!(again.as_ref(), Ok(&list), "{rendered}");
            }
        }
        Err(error) => {
            assert!(matches!(error.wire_code(), 240 | 241 | 204), "{error:?}");
            let _ = error.to_string();
        }
    }
});
