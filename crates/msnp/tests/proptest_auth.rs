//! Properties of the challenge functions over arbitrary input
//! (notification.md §14).

use msnp::auth::{self, PRODUCTS};
use proptest::prelude::*;

fn is_lower_hex_32(answer: &str) -> bool {
    answer.len() == 32
        && answer
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

proptest! {
    #[test]
    fn answers_are_32_lower_hex(challenge in any::<String>(), id in any::<String>(), key in any::<String>()) {
        prop_assert!(is_lower_hex_32(&auth::challenge_md5(&challenge, &key)));
        prop_assert!(is_lower_hex_32(&auth::challenge_msnp11(&challenge, &id, &key)));
        prop_assert!(is_lower_hex_32(&auth::md5_login_hash(&challenge, &key)));
    }

    #[test]
    fn every_product_verifies_its_own_answers(random in any::<u64>(), index in 0..PRODUCTS.len(), dialect in 6u8..=12) {
        let product = &PRODUCTS[index];
        let challenge = auth::new_challenge(random);
        prop_assert_eq!(challenge.len(), 20);
        prop_assert!(challenge.bytes().all(|b| b.is_ascii_digit()));
        let md5 = auth::challenge_md5(&challenge, product.key);
        let msnp11 = auth::challenge_msnp11(&challenge, product.id, product.key);
        prop_assert!(auth::verify_qry(&challenge, product.id, md5.as_bytes(), dialect));
        prop_assert!(auth::verify_qry(&challenge, product.id, msnp11.to_ascii_uppercase().as_bytes(), dialect));
    }

    #[test]
    fn flipping_one_hex_digit_fails(random in any::<u64>(), index in 0..PRODUCTS.len(), position in 0usize..32) {
        let product = &PRODUCTS[index];
        let challenge = auth::new_challenge(random);
        let md5 = auth::challenge_md5(&challenge, product.key);
        let msnp11 = auth::challenge_msnp11(&challenge, product.id, product.key);
        let mut answer = msnp11.clone().into_bytes();
        answer[position] = if answer[position] == b'0' { b'1' } else { b'0' };
        // The flipped answer could only pass by equalling the MD5-scheme answer.
        prop_assume!(answer != md5.as_bytes());
        prop_assert!(!auth::verify_qry(&challenge, product.id, &answer, 11));
    }

    #[test]
    fn verify_never_panics(challenge in any::<String>(), id in any::<String>(), answer in proptest::collection::vec(any::<u8>(), 0..64), dialect in any::<u8>()) {
        let _ = auth::verify_qry(&challenge, &id, &answer, dialect);
    }

    #[test]
    fn distinct_randoms_give_distinct_challenges(a in any::<u64>(), b in any::<u64>()) {
        prop_assume!(a != b);
        prop_assert_ne!(auth::new_challenge(a), auth::new_challenge(b));
    }
}
