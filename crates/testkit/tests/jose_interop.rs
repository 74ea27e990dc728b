//! allegro-fitconnect's JOSE against an independent implementation: Python's
//! jwcrypto, pinned, installed by scripts/setup-jose-tools.sh into
//! `<target>/tools/jose-venv` and driven through tools/jose-peer.py
//! ([`JosePeer`]).
//!
//! jwcrypto encrypts (with and without `zip: DEF`), we decrypt; we sign a
//! SET, jwcrypto verifies it; jwcrypto signs, we verify; a tampered token
//! fails on the other side each way. The keys ([`TestKeys`]) are RSA-4096 as
//! FIT-Connect's, made by jwcrypto with FIT-Connect's `alg`, `use` and
//! `key_ops`. These tests fail, they do not skip, when the venv cannot be
//! set up.

use allegro_fitconnect::jose::{decrypt, sign_ps512, verify_ps512, JoseError, Jwks};
use allegro_testkit::zustelldienst::{public_jwk, JosePeer, TestKeys};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// The JWK set of one private JWK's public part.
fn jwks_of(private: &Value) -> Value {
    json!({ "keys": [public_jwk(private, "verify")] })
}

fn claims() -> Value {
    json!({
        "$schema": "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json",
        "jti": "8d2c5d6e-0c1a-4e8b-9f59-1d4f3f7c2b10",
        "iss": "allegro-bridge",
        "iat": 1_767_225_600,
        "sub": "submission:f65feab2-4883-4dff-85fb-169448545d9f",
        "txn": "case:f73d30c6-8894-4444-8687-00ae756fea90",
        "events": {
            "https://schema.fitko.de/fit-connect/events/accept-submission": {
                "authenticationTags": {"metadata": "abc", "data": "def", "attachments": {}}
            }
        }
    })
}

/// `compact` with the low bit of byte `at` of segment `index` flipped.
fn flip(compact: &str, index: usize, at: usize) -> String {
    let mut parts: Vec<String> = compact.split('.').map(str::to_owned).collect();
    let mut bytes = URL_SAFE_NO_PAD.decode(&parts[index]).unwrap();
    bytes[at] ^= 1;
    parts[index] = URL_SAFE_NO_PAD.encode(bytes);
    parts.join(".")
}

/// `compact` with its payload (segment 1) replaced by `claims`.
fn with_payload(compact: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = compact.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    parts.join(".")
}

fn header_of(compact: &str) -> Value {
    let segment = compact.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

#[test]
fn a_jwcrypto_jwe_decrypts_to_the_same_bytes_and_tag() {
    let keys = TestKeys::get();
    let key = TestKeys::private(&keys.destination_enc);
    let mut plaintext: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    plaintext.extend_from_slice("{\"name\": \"Jörg Müller\"}".as_bytes());

    let compact = JosePeer::get().encrypt(&keys.destination_enc_public(), &plaintext, false);
    let header = header_of(&compact);
    assert_eq!(header["alg"], "RSA-OAEP-256");
    assert_eq!(header["enc"], "A256GCM");
    assert!(header.get("zip").is_none(), "{header}");
    let decrypted = decrypt(&compact, &key).unwrap();
    assert_eq!(decrypted.plaintext, plaintext);
    assert_eq!(decrypted.header, header);
    assert_eq!(
        decrypted.authentication_tag,
        compact.split('.').nth(4).unwrap()
    );

    for (segment, at) in [(4, 0), (3, 17), (1, 5)] {
        let error = decrypt(&flip(&compact, segment, at), &key).unwrap_err();
        assert!(
            matches!(error, JoseError::DecryptionFailed),
            "segment {segment}: {error:?}"
        );
    }
}

#[test]
fn a_deflated_jwcrypto_jwe_decrypts_to_the_same_bytes() {
    let keys = TestKeys::get();
    let key = TestKeys::private(&keys.destination_enc);
    let plaintext = (0..4000)
        .map(|i| format!("{{\"zeile\": {i}, \"leistung\": \"Bürgergeld\"}}\n"))
        .collect::<String>()
        .into_bytes();

    let compact = JosePeer::get().encrypt(&keys.destination_enc_public(), &plaintext, true);
    assert_eq!(header_of(&compact)["zip"], "DEF");
    let ciphertext = URL_SAFE_NO_PAD
        .decode(compact.split('.').nth(3).unwrap())
        .unwrap();
    assert!(
        ciphertext.len() * 4 < plaintext.len(),
        "jwcrypto did not compress: {} of {} bytes",
        ciphertext.len(),
        plaintext.len()
    );
    let decrypted = decrypt(&compact, &key).unwrap();
    assert_eq!(decrypted.plaintext, plaintext);
    assert_eq!(
        decrypted.authentication_tag,
        compact.split('.').nth(4).unwrap()
    );

    let error = decrypt(&flip(&compact, 4, 15), &key).unwrap_err();
    assert!(matches!(error, JoseError::DecryptionFailed), "{error:?}");
}

#[test]
fn our_set_verifies_in_jwcrypto_and_a_tampered_one_does_not() {
    let keys = TestKeys::get();
    let key = TestKeys::private(&keys.destination_sig);
    let token = sign_ps512(None, &claims(), &key).unwrap();
    let jwks = jwks_of(&keys.destination_sig);
    let peer = JosePeer::get();

    let verified = peer
        .verify(&jwks, &token)
        .expect("jwcrypto verifies our SET");
    assert_eq!(verified, claims());

    let changed =
        json!({"events": {"https://schema.fitko.de/fit-connect/events/reject-submission": {}}});
    for tampered in [with_payload(&token, &changed), flip(&token, 2, 100)] {
        let error = peer
            .verify(&jwks, &tampered)
            .expect_err("jwcrypto must refuse a tampered SET");
        assert!(error.contains("InvalidJWSSignature"), "{error}");
    }
}

#[test]
fn a_jwcrypto_set_verifies_in_ours_and_a_tampered_one_does_not() {
    let keys = TestKeys::get();
    let token = JosePeer::get()
        .sign(&keys.zustelldienst, &claims())
        .expect("jwcrypto signs");
    let header = header_of(&token);
    assert_eq!(
        header,
        json!({"alg": "PS512", "typ": "secevent+jwt", "kid": "zustelldienst-sig"})
    );

    let jwks = Jwks::from_value(&jwks_of(&keys.zustelldienst)).unwrap();
    assert_eq!(verify_ps512(&token, &jwks).unwrap(), claims());

    let changed =
        json!({"events": {"https://schema.fitko.de/fit-connect/events/reject-submission": {}}});
    for tampered in [with_payload(&token, &changed), flip(&token, 2, 100)] {
        let error = verify_ps512(&tampered, &jwks).unwrap_err();
        assert!(matches!(error, JoseError::BadSignature), "{error:?}");
    }
    // Our own subscriber key set does not have jwcrypto's kid.
    let ours = Jwks::from_value(&jwks_of(&keys.destination_sig)).unwrap();
    let error = verify_ps512(&token, &ours).unwrap_err();
    assert!(matches!(error, JoseError::UnknownKid(_)), "{error:?}");
}
