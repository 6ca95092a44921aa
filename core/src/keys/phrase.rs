//! BIP-39 recovery phrases (English), the seed they give, and the one secret
//! a wallet keeps in its [`SecretStore`](crate::secrets::SecretStore).

use std::fmt;

use bip39::{Language, Mnemonic};
use zeroize::Zeroizing;

use super::KeyError;

/// How long a new recovery phrase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WordCount {
    /// 12 words, 128 bits of entropy.
    #[default]
    Twelve,
    /// 24 words, 256 bits of entropy.
    TwentyFour,
}

impl WordCount {
    /// Number of words.
    pub fn words(self) -> usize {
        match self {
            WordCount::Twelve => 12,
            WordCount::TwentyFour => 24,
        }
    }

    /// The length for a number of words: 12 or 24, else `None`. Shells
    /// turn a person's choice (`--words 24`, a toggle) into this.
    pub fn from_words(words: usize) -> Option<WordCount> {
        match words {
            12 => Some(WordCount::Twelve),
            24 => Some(WordCount::TwentyFour),
            _ => None,
        }
    }

    fn entropy_bytes(self) -> usize {
        match self {
            WordCount::Twelve => 16,
            WordCount::TwentyFour => 32,
        }
    }
}

/// A BIP-39 recovery phrase in English: 12 or 24 words. Wiped from memory
/// when dropped; its `Debug` shows only the number of words.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryPhrase {
    mnemonic: Mnemonic,
}

impl RecoveryPhrase {
    /// A new phrase from the operating system's random number generator.
    pub fn generate(count: WordCount) -> Result<Self, KeyError> {
        let mut entropy = Zeroizing::new([0u8; 32]);
        let entropy = &mut entropy[..count.entropy_bytes()];
        getrandom::fill(entropy).map_err(|e| KeyError::NoRandomness(e.to_string()))?;
        Self::from_entropy(entropy)
    }

    /// The phrase for 16 or 32 bytes of entropy.
    pub fn from_entropy(entropy: &[u8]) -> Result<Self, KeyError> {
        if entropy.len() != 16 && entropy.len() != 32 {
            return Err(KeyError::BadPhrase(format!(
                "a recovery phrase is made from 16 or 32 bytes of entropy, not {}",
                entropy.len()
            )));
        }
        let mnemonic = Mnemonic::from_entropy_in(Language::English, entropy)
            .map_err(|e| KeyError::BadPhrase(e.to_string()))?;
        Ok(Self { mnemonic })
    }

    /// Reads a phrase a person typed: words separated by any white space,
    /// in any letter case. Only 12- and 24-word English phrases are accepted.
    pub fn parse(phrase: &str) -> Result<Self, KeyError> {
        let found = phrase.split_whitespace().count();
        if found != 12 && found != 24 {
            return Err(KeyError::WrongWordCount { found });
        }
        let mut normalized = Zeroizing::new(String::with_capacity(phrase.len()));
        for (i, word) in phrase.split_whitespace().enumerate() {
            if i > 0 {
                normalized.push(' ');
            }
            for c in word.chars() {
                normalized.extend(c.to_lowercase());
            }
        }
        let mnemonic =
            Mnemonic::parse_in(Language::English, normalized.as_str()).map_err(|e| match e {
                bip39::Error::BadWordCount(found) => KeyError::WrongWordCount { found },
                bip39::Error::UnknownWord(i) => KeyError::UnknownWord { position: i + 1 },
                bip39::Error::InvalidChecksum => KeyError::BadChecksum,
                other => KeyError::BadPhrase(other.to_string()),
            })?;
        Ok(Self { mnemonic })
    }

    /// Number of words (12 or 24).
    pub fn word_count(&self) -> usize {
        self.mnemonic.word_count()
    }

    /// The words, in order, to show the person for their backup.
    pub fn words(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.mnemonic.words()
    }

    /// The phrase as one string, words separated by single spaces.
    pub fn phrase(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(24 * 9));
        for (i, word) in self.words().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(word);
        }
        out
    }

    /// The entropy the phrase encodes (16 or 32 bytes).
    pub fn entropy(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.mnemonic.to_entropy())
    }

    /// The BIP-39 seed (PBKDF2-HMAC-SHA512, 2048 rounds) for an optional
    /// passphrase (`""` for none).
    pub fn to_seed(&self, passphrase: &str) -> Seed {
        Seed(Zeroizing::new(self.mnemonic.to_seed(passphrase).to_vec()))
    }
}

impl fmt::Debug for RecoveryPhrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryPhrase({} words, hidden)", self.word_count())
    }
}

/// A seed for SLIP-10 derivation (64 bytes from BIP-39; 16 to 64 bytes
/// accepted). Wiped when dropped; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed(Zeroizing<Vec<u8>>);

impl Seed {
    /// A seed from raw bytes (for test vectors and imports).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if !(16..=64).contains(&bytes.len()) {
            return Err(KeyError::BadSeedLength { len: bytes.len() });
        }
        Ok(Seed(Zeroizing::new(bytes.to_vec())))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seed({} bytes, hidden)", self.0.len())
    }
}

/// Everything secret about one wallet: its recovery phrase and the optional
/// BIP-39 passphrase. This is the one value a wallet keeps in its
/// [`SecretStore`](crate::secrets::SecretStore) (under its wallet id); every
/// key is derived from it.
#[derive(Clone, PartialEq, Eq)]
pub struct WalletSecret {
    phrase: RecoveryPhrase,
    passphrase: Zeroizing<String>,
}

/// Format version of [`WalletSecret::to_bytes`].
const SECRET_FORMAT: u8 = 1;

impl WalletSecret {
    pub fn new(phrase: RecoveryPhrase, passphrase: &str) -> Self {
        Self {
            phrase,
            passphrase: Zeroizing::new(passphrase.to_owned()),
        }
    }

    pub fn phrase(&self) -> &RecoveryPhrase {
        &self.phrase
    }

    pub fn has_passphrase(&self) -> bool {
        !self.passphrase.is_empty()
    }

    /// The BIP-39 seed of phrase and passphrase.
    pub fn seed(&self) -> Seed {
        self.phrase.to_seed(&self.passphrase)
    }

    /// Serializes for the secret store: `[1, entropy length, entropy…,
    /// passphrase as UTF-8…]`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let entropy = self.phrase.entropy();
        let mut out = Zeroizing::new(Vec::with_capacity(
            2 + entropy.len() + self.passphrase.len(),
        ));
        out.push(SECRET_FORMAT);
        // 16 or 32: always fits a byte.
        out.push(entropy.len() as u8);
        out.extend_from_slice(&entropy);
        out.extend_from_slice(self.passphrase.as_bytes());
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let bad = |why: &str| KeyError::BadStoredSecret(why.to_owned());
        let (&format, rest) = bytes.split_first().ok_or_else(|| bad("it is empty"))?;
        if format != SECRET_FORMAT {
            return Err(KeyError::BadStoredSecret(format!(
                "format {format} is not known to this version of Notch (it knows format {SECRET_FORMAT})"
            )));
        }
        let (&len, rest) = rest.split_first().ok_or_else(|| bad("it is cut short"))?;
        let len = usize::from(len);
        if len != 16 && len != 32 {
            return Err(bad("the recovery phrase's entropy has a wrong length"));
        }
        if rest.len() < len {
            return Err(bad("it is cut short"));
        }
        let (entropy, passphrase) = rest.split_at(len);
        let phrase = RecoveryPhrase::from_entropy(entropy)?;
        let passphrase =
            std::str::from_utf8(passphrase).map_err(|_| bad("the passphrase is not UTF-8"))?;
        Ok(Self::new(phrase, passphrase))
    }
}

impl fmt::Debug for WalletSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletSecret")
            .field("phrase", &self.phrase)
            .field(
                "passphrase",
                &if self.has_passphrase() {
                    "hidden"
                } else {
                    "none"
                },
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABANDON_12: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn bip39_vectors_with_passphrase_trezor() {
        // From the BIP-39 reference vectors (passphrase "TREZOR").
        let phrase = RecoveryPhrase::parse(ABANDON_12).expect("valid phrase");
        assert_eq!(
            hex(phrase.to_seed("TREZOR").as_bytes()),
            "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
        );
        let phrase = RecoveryPhrase::from_entropy(&[0x7f; 16]).expect("16 bytes");
        assert_eq!(
            phrase.phrase().as_str(),
            "legal winner thank year wave sausage worth useful legal winner thank yellow"
        );
        assert_eq!(
            hex(phrase.to_seed("TREZOR").as_bytes()),
            "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607"
        );
        let phrase = RecoveryPhrase::from_entropy(&[0; 32]).expect("32 bytes");
        assert_eq!(phrase.word_count(), 24);
        assert_eq!(
            hex(phrase.to_seed("TREZOR").as_bytes()),
            "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8"
        );
    }

    #[test]
    fn generates_12_and_24_words_that_parse_back() {
        for count in [WordCount::Twelve, WordCount::TwentyFour] {
            let phrase = RecoveryPhrase::generate(count).expect("OS randomness");
            assert_eq!(phrase.word_count(), count.words());
            let again = RecoveryPhrase::parse(&phrase.phrase()).expect("parses back");
            assert_eq!(again, phrase);
        }
        let a = RecoveryPhrase::generate(WordCount::Twelve).expect("OS randomness");
        let b = RecoveryPhrase::generate(WordCount::Twelve).expect("OS randomness");
        assert_ne!(a, b, "two new phrases must differ");
    }

    #[test]
    fn parse_is_forgiving_about_case_and_spaces() {
        let messy = format!("  {}\n", ABANDON_12.to_uppercase().replace(' ', " \t "));
        let phrase = RecoveryPhrase::parse(&messy).expect("valid phrase");
        assert_eq!(phrase.phrase().as_str(), ABANDON_12);
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let eleven = ABANDON_12
            .rsplit_once(' ')
            .map(|(head, _)| head)
            .unwrap_or_default();
        assert_eq!(
            RecoveryPhrase::parse(eleven),
            Err(KeyError::WrongWordCount { found: 11 })
        );
        // 15 words is valid BIP-39, but Notch only uses 12 or 24.
        let fifteen = "abandon ".repeat(14) + "address";
        assert_eq!(
            RecoveryPhrase::parse(&fifteen),
            Err(KeyError::WrongWordCount { found: 15 })
        );
        let typo = ABANDON_12.replacen("abandon", "abandn", 1);
        let err = RecoveryPhrase::parse(&typo).expect_err("unknown word");
        assert_eq!(err, KeyError::UnknownWord { position: 1 });
        assert!(err.to_string().contains("word 1 "), "{err}");
        assert!(
            !err.to_string().contains("abandn"),
            "the error must not echo the secret word"
        );
        let swapped = ABANDON_12.replace("about", "abandon");
        assert_eq!(RecoveryPhrase::parse(&swapped), Err(KeyError::BadChecksum));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let phrase = RecoveryPhrase::parse(ABANDON_12).expect("valid phrase");
        let secret = WalletSecret::new(phrase.clone(), "correct horse");
        let all = format!("{phrase:?} {secret:?} {:?}", secret.seed());
        assert!(!all.contains("abandon") && !all.contains("about"), "{all}");
        assert!(!all.contains("horse"), "{all}");
        assert!(all.contains("12 words"), "{all}");
    }

    #[test]
    fn wallet_secret_round_trips_and_rejects_damage() {
        let phrase = RecoveryPhrase::generate(WordCount::TwentyFour).expect("OS randomness");
        let secret = WalletSecret::new(phrase, "pässphrase");
        let bytes = secret.to_bytes();
        let back = WalletSecret::from_bytes(&bytes).expect("round trip");
        assert_eq!(back, secret);
        assert_eq!(back.seed(), secret.seed());
        assert!(back.has_passphrase());
        // The passphrase changes the seed.
        let no_pass = WalletSecret::new(secret.phrase().clone(), "");
        assert_ne!(no_pass.seed(), secret.seed());

        assert!(matches!(
            WalletSecret::from_bytes(&[]),
            Err(KeyError::BadStoredSecret(_))
        ));
        assert!(matches!(
            WalletSecret::from_bytes(&[9, 16]),
            Err(KeyError::BadStoredSecret(_))
        ));
        assert!(matches!(
            WalletSecret::from_bytes(&bytes[..10]),
            Err(KeyError::BadStoredSecret(_))
        ));
        let mut bad_utf8 = bytes.to_vec();
        bad_utf8.push(0xff);
        assert!(matches!(
            WalletSecret::from_bytes(&bad_utf8),
            Err(KeyError::BadStoredSecret(_))
        ));
    }

    #[test]
    fn seed_length_is_checked() {
        assert_eq!(
            Seed::from_bytes(&[0; 15]),
            Err(KeyError::BadSeedLength { len: 15 })
        );
        assert_eq!(
            Seed::from_bytes(&[0; 65]),
            Err(KeyError::BadSeedLength { len: 65 })
        );
        assert!(Seed::from_bytes(&[0; 16]).is_ok());
    }
}
