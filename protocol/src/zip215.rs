//! Ed25519 verification by the ZIP 215 rules, one by one and in batches, on
//! curve25519-dalek 4.
//!
//! The rules (PROTOCOL.md §1): `A` and `R` are any encodings of curve points (non-canonical
//! `y` accepted, as `CompressedEdwardsY::decompress` does), `s` must be canonical (`s < ℓ`),
//! `k = SHA-512(R ‖ A ‖ M) mod ℓ`, and the equation is the cofactored one,
//! `[8][s]B = [8]R + [8][k]A`. Under these rules a batch accepts exactly what one-by-one
//! checks accept, which is what lets the gateway batch and the wallet check singly.
//!
//! Why not `ed25519-consensus`, which implements the same rules: it is built on
//! curve25519-dalek-ng, whose serial field arithmetic verified 16k signatures a second here,
//! where curve25519-dalek 4 picks its AVX2 backend at run time. The tests below check this
//! module against `ed25519-consensus` on valid, tampered and small-order inputs.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};

/// `k = SHA-512(R ‖ A ‖ M) mod ℓ`.
fn challenge(r: &[u8], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(msg);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// `s`, if canonical.
fn canonical_s(sig: &[u8; 64]) -> Option<Scalar> {
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..]);
    Option::from(Scalar::from_canonical_bytes(s))
}

fn point(bytes: &[u8]) -> Option<EdwardsPoint> {
    CompressedEdwardsY::from_slice(bytes).ok()?.decompress()
}

/// One signature.
pub fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    verify_with(key, msg, sig, |k| point(k))
}

/// One signature, `A` from `a_point` (which must return what `point(key)` would, as
/// [`KeyCache`](crate::KeyCache) does).
pub(crate) fn verify_with(
    key: &[u8; 32],
    msg: &[u8],
    sig: &[u8; 64],
    a_point: impl FnOnce(&[u8; 32]) -> Option<EdwardsPoint>,
) -> bool {
    let Some(s) = canonical_s(sig) else {
        return false;
    };
    let (Some(a), Some(r)) = (a_point(key), point(&sig[..32])) else {
        return false;
    };
    let k = challenge(&sig[..32], key, msg);
    // [8](R - ([s]B - [k]A)) = 0
    let r_prime = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-a, &s);
    (r - r_prime).mul_by_cofactor().is_identity()
}

/// Many signatures: `true` only if every one would pass [`verify`]. With random 128-bit
/// `z_i`: `[8]([-Σ z_i s_i]B + Σ [z_i]R_i + Σ [z_i k_i]A_i) = 0`, the `A` terms of one key
/// merged into one.
pub fn verify_batch<'a>(
    items: impl IntoIterator<Item = (&'a [u8; 32], &'a [u8], &'a [u8; 64])>,
) -> bool {
    verify_batch_with(items, |k| point(k))
}

/// [`verify_batch`] with the `A` points already decompressed: `a_point` gives the point of
/// each distinct key (asked once per key per batch), and must return what `point(key)`
/// would, as [`KeyCache`](crate::KeyCache) does; `None` refuses the batch.
pub(crate) fn verify_batch_with<'a>(
    items: impl IntoIterator<Item = (&'a [u8; 32], &'a [u8], &'a [u8; 64])>,
    mut a_point: impl FnMut(&[u8; 32]) -> Option<EdwardsPoint>,
) -> bool {
    let items: Vec<_> = items.into_iter().collect();
    if items.is_empty() {
        return true;
    }
    let mut z_bytes = vec![0u8; 16 * items.len()];
    OsRng.fill_bytes(&mut z_bytes);
    let mut b_coeff = Scalar::ZERO;
    let mut key_index: HashMap<&[u8; 32], usize> = HashMap::with_capacity(items.len());
    let mut a_coeffs: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut a_points: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    let mut r_coeffs: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut r_points: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    for (i, (key, msg, sig)) in items.iter().enumerate() {
        let Some(s) = canonical_s(sig) else {
            return false;
        };
        let Some(r) = point(&sig[..32]) else {
            return false;
        };
        let at = match key_index.get(key) {
            Some(&at) => at,
            None => {
                let Some(a) = a_point(key) else {
                    return false;
                };
                a_points.push(a);
                a_coeffs.push(Scalar::ZERO);
                key_index.insert(key, a_points.len() - 1);
                a_points.len() - 1
            }
        };
        let mut z16 = [0u8; 16];
        z16.copy_from_slice(&z_bytes[16 * i..16 * (i + 1)]);
        let z = Scalar::from(u128::from_le_bytes(z16));
        let k = challenge(&sig[..32], key, msg);
        b_coeff -= z * s;
        a_coeffs[at] += z * k;
        r_coeffs.push(z);
        r_points.push(r);
    }
    let check = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&b_coeff)
            .chain(a_coeffs.iter())
            .chain(r_coeffs.iter()),
        std::iter::once(&ED25519_BASEPOINT_POINT)
            .chain(a_points.iter())
            .chain(r_points.iter()),
    );
    check.mul_by_cofactor().is_identity()
}

#[cfg(test)]
mod tests {
    //! Differential tests against `ed25519-consensus` (the ZIP 215 reference in Rust).
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::{Signer, SigningKey};

    fn reference(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        match ed25519_consensus::VerificationKey::try_from(*key) {
            Ok(vk) => vk
                .verify(&ed25519_consensus::Signature::from(*sig), msg)
                .is_ok(),
            Err(_) => false,
        }
    }

    fn reference_batch(items: &[([u8; 32], Vec<u8>, [u8; 64])]) -> bool {
        let mut b = ed25519_consensus::batch::Verifier::new();
        for (k, m, s) in items {
            b.queue((
                ed25519_consensus::VerificationKeyBytes::from(*k),
                ed25519_consensus::Signature::from(*s),
                &m[..],
            ));
        }
        b.verify(OsRng).is_ok()
    }

    fn ours_batch(items: &[([u8; 32], Vec<u8>, [u8; 64])]) -> bool {
        let plain = verify_batch(items.iter().map(|(k, m, s)| (k, &m[..], s)));
        // Through a key cache: the same verdict with the keys not seen yet (misses) and seen
        // (hits), with a cache shared across the test's calls as well as a fresh one.
        let fresh = crate::KeyCache::new(16);
        for cache in [&fresh, &fresh, shared_cache(), shared_cache()] {
            let cached = verify_batch_with(items.iter().map(|(k, m, s)| (k, &m[..], s)), |k| {
                cache.point(k)
            });
            assert_eq!(cached, plain, "the key cache changed a batch verdict");
        }
        plain
    }

    /// One signature, checked to give the same verdict through a key cache (miss and hit).
    fn ours_single(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        let plain = verify(key, msg, sig);
        let fresh = crate::KeyCache::new(16);
        for cache in [&fresh, &fresh, shared_cache(), shared_cache()] {
            let cached = verify_with(key, msg, sig, |k| cache.point(k));
            assert_eq!(cached, plain, "the key cache changed a verdict");
        }
        plain
    }

    /// A small cache shared by all the tests (so that evictions happen too).
    fn shared_cache() -> &'static crate::KeyCache {
        static CACHE: std::sync::OnceLock<crate::KeyCache> = std::sync::OnceLock::new();
        CACHE.get_or_init(|| crate::KeyCache::new(64))
    }

    /// A deterministic stream of bytes for the tests.
    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        let mut i = 0u64;
        while out.len() < n {
            let mut h = Sha512::new();
            h.update(seed.to_le_bytes());
            h.update(i.to_le_bytes());
            out.extend_from_slice(&h.finalize());
            i += 1;
        }
        out.truncate(n);
        out
    }

    fn signed(seed: u64) -> ([u8; 32], Vec<u8>, [u8; 64]) {
        let sk: [u8; 32] = bytes(seed, 32).try_into().unwrap();
        let sk = SigningKey::from_bytes(&sk);
        let msg = bytes(seed ^ 0xabcd, (seed % 70) as usize);
        let sig = sk.sign(&msg).to_bytes();
        (sk.verifying_key().to_bytes(), msg, sig)
    }

    #[test]
    fn valid_signatures_verify_singly_and_in_batches() {
        let items: Vec<_> = (0..64).map(signed).collect();
        for (k, m, s) in &items {
            assert!(ours_single(k, m, s));
            assert!(reference(k, m, s));
        }
        assert!(ours_batch(&items));
        assert!(ours_batch(&items[..1]));
        assert!(verify_batch(std::iter::empty()));
        // Several signatures by one key (their A terms are merged).
        let sk = SigningKey::from_bytes(&[9; 32]);
        let same: Vec<_> = (0..5u8)
            .map(|i| {
                let m = vec![i; 10];
                (
                    sk.verifying_key().to_bytes(),
                    m.clone(),
                    sk.sign(&m).to_bytes(),
                )
            })
            .collect();
        assert!(ours_batch(&same));
    }

    #[test]
    fn any_changed_byte_fails_as_in_the_reference() {
        for seed in 0..24u64 {
            let (k, m, s) = signed(seed);
            for flip in 0..(32 + 64 + m.len()) {
                let (mut k2, mut m2, mut s2) = (k, m.clone(), s);
                let bit = 1u8 << (flip % 8);
                match flip {
                    f if f < 32 => k2[f] ^= bit,
                    f if f < 96 => s2[f - 32] ^= bit,
                    f => m2[f - 96] ^= bit,
                }
                let ours = ours_single(&k2, &m2, &s2);
                assert_eq!(ours, reference(&k2, &m2, &s2), "seed {seed} flip {flip}");
                assert!(!ours, "seed {seed} flip {flip} still verifies");
                let mut batch: Vec<_> = (100..104).map(signed).collect();
                batch.insert(2, (k2, m2, s2));
                assert!(
                    !ours_batch(&batch),
                    "seed {seed} flip {flip}: batch accepted"
                );
            }
        }
    }

    #[test]
    fn non_canonical_s_is_refused() {
        let (k, m, s) = signed(7);
        // s + ℓ (still below 2^256 for a typical s): the same point equation, not canonical.
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut bumped = s;
        let mut carry = 0u16;
        for i in 0..32 {
            let v = bumped[32 + i] as u16 + l[i] as u16 + carry;
            bumped[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        assert!(!ours_single(&k, &m, &bumped));
        assert!(!reference(&k, &m, &bumped));
        assert!(!ours_batch(&[(k, m, bumped)]));
    }

    /// Every encoding of a small-order point, canonical or not (ZIP 215's test set): the
    /// eight torsion points with either sign bit (for `x = 0` the set bit is non-canonical),
    /// and `y + p` with either sign where it fits in 255 bits (`y < 19`).
    fn small_order_encodings() -> Vec<[u8; 32]> {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut out = Vec::new();
        for t in EIGHT_TORSION.iter() {
            let enc = t.compress().to_bytes();
            let mut y = enc;
            y[31] &= 0x7f;
            let mut forms = vec![y];
            if y[1..].iter().all(|&b| b == 0) && y[0] < 19 {
                let mut sum = [0u8; 32];
                let mut carry = 0u16;
                for i in 0..32 {
                    let v = y[i] as u16 + p[i] as u16 + carry;
                    sum[i] = v as u8;
                    carry = v >> 8;
                }
                forms.push(sum);
            }
            for f in forms {
                out.push(f);
                let mut signed = f;
                signed[31] |= 0x80;
                out.push(signed);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn small_order_and_non_canonical_points_agree_with_the_reference() {
        let encodings = small_order_encodings();
        assert!(encodings.len() >= 12, "{} encodings", encodings.len());
        let msg = b"Zcash".to_vec();
        let mut agreed = 0;
        for a in &encodings {
            for r in &encodings {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(r);
                let ours = ours_single(a, &msg, &sig);
                assert_eq!(ours, reference(a, &msg, &sig), "A {a:02x?} R {r:02x?}");
                // ZIP 215: with s = 0 every one of these holds ([8]R = [8][k]A = 0).
                assert!(ours, "A {a:02x?} R {r:02x?}");
                assert_eq!(ours_batch(&[(*a, msg.clone(), sig)]), ours);
                assert_eq!(
                    ours_batch(&[(*a, msg.clone(), sig), signed(1), signed(2)]),
                    reference_batch(&[(*a, msg.clone(), sig), signed(1), signed(2)])
                );
                agreed += 1;
            }
        }
        assert_eq!(agreed, encodings.len() * encodings.len());
    }

    #[test]
    fn batches_of_random_validity_agree_with_the_reference() {
        for round in 0..40u64 {
            let mut items: Vec<_> = (0..(1 + round % 9))
                .map(|i| signed(round * 100 + i))
                .collect();
            if round % 3 == 0 {
                let at = (round as usize / 3) % items.len();
                items[at].2[5] ^= 1;
            }
            assert_eq!(ours_batch(&items), reference_batch(&items), "round {round}");
        }
    }
}
