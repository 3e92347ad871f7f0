//! Salted fingerprints of secret values: the one definition every module uses, so a value
//! harvested from a deployed `.env` and the same value read from Vault give the same fingerprint.

use sha2::{Digest, Sha256};

/// `hex(sha256(salt || value))`, lower-case, 64 characters. The salt is a per-run random string
/// chosen by the playbook; without it low-entropy values could be guessed from their hash.
pub fn fingerprint(salt: &str, value: &str) -> String {
    fingerprint_bytes(salt, value.as_bytes())
}

/// [`fingerprint`] of a value that is not text (a deployed file's bytes that are not UTF-8):
/// the same hash over the raw bytes, so text values give the same result either way.
pub fn fingerprint_bytes(salt: &str, value: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(value);
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    // A hash cannot reveal the value; it must reach the drift check unmasked (two equal
    // fingerprints must stay equal even when a secret's text happens to occur in the digits).
    crate::secret::register_computed(&hex);
    hex
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, fingerprint_bytes};

    #[test]
    fn known_vector() {
        // sha256("abc")
        assert_eq!(
            fingerprint("a", "bc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(fingerprint("s1", "v"), fingerprint("s2", "v"));
        assert_eq!(fingerprint_bytes("a", b"bc"), fingerprint("a", "bc"));
    }
}
