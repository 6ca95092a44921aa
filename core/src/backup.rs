//! The backup check on create: before a new wallet is made, the person
//! proves they wrote the recovery phrase down by giving back a few of its
//! words, chosen at random. Every shell (app, phone) asks the same way:
//! [`BackupCheck::new`] picks the positions, [`BackupCheck::verify`] checks
//! the answers and says which positions are wrong.

use zeroize::Zeroizing;

use crate::keys::RecoveryPhrase;

/// How many words a shell asks back unless it has a reason to ask more.
pub const DEFAULT_CHECK_WORDS: usize = 3;

/// Why a backup check could not be set up or did not pass. No variant
/// carries a word of the phrase or of an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("the operating system could not provide random bytes: {0}")]
    NoRandomness(String),
    #[error("a backup check asks between 1 and {words} words of this phrase, not {count}")]
    BadCount { count: usize, words: usize },
    #[error("position {position} is not a word of a {words}-word phrase")]
    BadPosition { position: usize, words: usize },
    #[error("{expected} words were asked, {got} were given")]
    WrongAnswerCount { expected: usize, got: usize },
    #[error("{} not match the recovery phrase; check what you wrote down", describe(.positions))]
    Mismatch {
        /// The wrong ones, 1-based (as a person counts), ascending.
        positions: Vec<usize>,
    },
}

fn describe(positions: &[usize]) -> String {
    let names: Vec<String> = positions.iter().map(|p| format!("#{p}")).collect();
    match names.as_slice() {
        [one] => format!("word {one} does"),
        [init @ .., last] => format!("words {} and {last} do", init.join(", ")),
        [] => "the words do".to_owned(),
    }
}

/// Which words of a phrase the person must give back. Holds positions
/// only, never words: keep the phrase itself next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupCheck {
    /// 0-based, distinct, ascending.
    positions: Vec<usize>,
}

impl BackupCheck {
    /// `count` distinct positions of `phrase`, chosen uniformly at random
    /// from the operating system's generator.
    pub fn new(phrase: &RecoveryPhrase, count: usize) -> Result<Self, BackupError> {
        let words = phrase.word_count();
        if count == 0 || count > words {
            return Err(BackupError::BadCount { count, words });
        }
        let mut positions: Vec<usize> = Vec::with_capacity(count);
        while positions.len() < count {
            let p = random_below(words)?;
            if !positions.contains(&p) {
                positions.push(p);
            }
        }
        positions.sort_unstable();
        Ok(Self { positions })
    }

    /// A check of the given 0-based positions (a shell that kept them, a
    /// test); duplicates are dropped, the order is made ascending.
    pub fn with_positions(
        phrase: &RecoveryPhrase,
        positions: &[usize],
    ) -> Result<Self, BackupError> {
        let words = phrase.word_count();
        if let Some(&position) = positions.iter().find(|&&p| p >= words) {
            return Err(BackupError::BadPosition { position, words });
        }
        let mut positions = positions.to_vec();
        positions.sort_unstable();
        positions.dedup();
        if positions.is_empty() {
            return Err(BackupError::BadCount { count: 0, words });
        }
        Ok(Self { positions })
    }

    /// The positions to ask, 0-based, ascending (show them 1-based).
    pub fn positions(&self) -> &[usize] {
        &self.positions
    }

    /// Checks `answers` (the words at [`positions`](Self::positions), in
    /// that order) against `phrase`. Letter case and white space do not
    /// matter ("  Abandon " is "abandon"); every wrong position is named.
    pub fn verify<S: AsRef<str>>(
        &self,
        phrase: &RecoveryPhrase,
        answers: &[S],
    ) -> Result<(), BackupError> {
        if answers.len() != self.positions.len() {
            return Err(BackupError::WrongAnswerCount {
                expected: self.positions.len(),
                got: answers.len(),
            });
        }
        let words: Vec<&str> = phrase.words().collect();
        let wrong: Vec<usize> = self
            .positions
            .iter()
            .zip(answers)
            .filter(|(p, answer)| {
                let given = normalize(answer.as_ref());
                words.get(**p).is_none_or(|w| *w != given.as_str())
            })
            .map(|(p, _)| p + 1)
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(BackupError::Mismatch { positions: wrong })
        }
    }
}

/// Lower case, without any white space (inside or around), wiped after use.
fn normalize(answer: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(answer.len()));
    for c in answer.chars().filter(|c| !c.is_whitespace()) {
        out.extend(c.to_lowercase());
    }
    out
}

/// A uniform random number below `n` (`n` > 0), without modulo bias.
fn random_below(n: usize) -> Result<usize, BackupError> {
    let n = u32::try_from(n).unwrap_or(u32::MAX).max(1);
    // The largest multiple of n that fits: values at or above it are
    // drawn again.
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(|e| BackupError::NoRandomness(e.to_string()))?;
        let v = u32::from_le_bytes(b);
        if v < zone {
            return Ok((v % n) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keys::WordCount;

    fn phrase() -> RecoveryPhrase {
        // abandon ×11 + about
        RecoveryPhrase::from_entropy(&[0u8; 16]).unwrap()
    }

    #[test]
    fn positions_are_distinct_sorted_and_in_range() {
        for count in [WordCount::Twelve, WordCount::TwentyFour] {
            let p = RecoveryPhrase::generate(count).unwrap();
            for _ in 0..50 {
                let check = BackupCheck::new(&p, 3).unwrap();
                let pos = check.positions();
                assert_eq!(pos.len(), 3);
                assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
                assert!(pos.iter().all(|&x| x < count.words()), "{pos:?}");
            }
            // All of them, too.
            let all = BackupCheck::new(&p, count.words()).unwrap();
            assert_eq!(
                all.positions(),
                (0..count.words()).collect::<Vec<_>>().as_slice()
            );
        }
        assert_eq!(
            BackupCheck::new(&phrase(), 0),
            Err(BackupError::BadCount {
                count: 0,
                words: 12
            })
        );
        assert!(matches!(
            BackupCheck::new(&phrase(), 13),
            Err(BackupError::BadCount { .. })
        ));
    }

    #[test]
    fn every_position_gets_chosen_sometimes() {
        let p = phrase();
        let mut seen = [false; 12];
        for _ in 0..400 {
            for &x in BackupCheck::new(&p, 3).unwrap().positions() {
                seen[x] = true;
            }
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
    }

    #[test]
    fn answers_ignore_case_and_white_space() {
        let p = phrase();
        let check = BackupCheck::with_positions(&p, &[11, 0, 4]).unwrap();
        assert_eq!(check.positions(), &[0, 4, 11]);
        check
            .verify(&p, &["  ABANDON", "aban don\t", "About\n"])
            .unwrap();
    }

    #[test]
    fn wrong_answers_are_named_by_position() {
        let p = phrase();
        let check = BackupCheck::with_positions(&p, &[0, 4, 11]).unwrap();
        let e = check
            .verify(&p, &["abandon", "ability", "able"])
            .unwrap_err();
        assert_eq!(
            e,
            BackupError::Mismatch {
                positions: vec![5, 12]
            }
        );
        assert_eq!(
            e.to_string(),
            "words #5 and #12 do not match the recovery phrase; check what you wrote down"
        );
        let e = check.verify(&p, &["x", "abandon", "about"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "word #1 does not match the recovery phrase; check what you wrote down"
        );
        let e = check.verify(&p, &["", "", ""]).unwrap_err();
        assert!(e.to_string().starts_with("words #1, #5 and #12 do"), "{e}");
        // The message never repeats what was typed.
        let e = check
            .verify(&p, &["secretword", "abandon", "about"])
            .unwrap_err();
        assert!(!e.to_string().contains("secretword"));
    }

    #[test]
    fn the_number_of_answers_must_match() {
        let p = phrase();
        let check = BackupCheck::with_positions(&p, &[1, 2, 3]).unwrap();
        assert_eq!(
            check.verify::<&str>(&p, &[]),
            Err(BackupError::WrongAnswerCount {
                expected: 3,
                got: 0
            })
        );
        assert!(matches!(
            check.verify(&p, &["abandon"; 4]),
            Err(BackupError::WrongAnswerCount { .. })
        ));
        assert_eq!(
            BackupCheck::with_positions(&p, &[12]),
            Err(BackupError::BadPosition {
                position: 12,
                words: 12
            })
        );
    }

    #[test]
    fn random_below_stays_below() {
        for n in [1usize, 2, 12, 24, 1000] {
            for _ in 0..200 {
                assert!(random_below(n).unwrap() < n);
            }
        }
    }
}
