//! Check-digit and format algorithms for German identifiers.
//!
//! Pure functions, no I/O, no regex and no allocation on the success path
//! except the normalized IBAN. They back the field checks of an application:
//! IBAN (ISO 13616), Steuer-Identifikationsnummer (ISO 7064 MOD 11,10),
//! Rentenversicherungsnummer and the unchangeable part of the
//! Krankenversichertennummer.
//!
//! Errors are short German phrases for the caseworker, meant to be embedded
//! in a sentence such as "Die IBAN der Bankverbindung ist ungültig: {detail}.".
//! They start in lower case, carry no trailing period and never repeat the
//! input (it is personal data).

/// Longest IBAN allowed by ISO 13616.
const IBAN_MAX_LEN: usize = 34;

/// IBAN length and BBAN structure per country code, from the SWIFT IBAN
/// Registry (ISO 13616) as published in schwifty 2026.10.1
/// (`iban_registry/generated.json`): all 89 countries of the registry. The
/// structure is the registry's notation: `8!n` = exactly 8 digits, `4!a` =
/// 4 upper-case letters, `12!c` = 12 letters or digits. Territories that the
/// registry lists under a parent country (e.g. Åland under FI, the French
/// overseas territories under FR, Jersey/Guernsey/Isle of Man under GB) use
/// the parent's country code in the IBAN and therefore need no own entry.
const IBAN_REGISTRY: [(&[u8; 2], u8, &str); 89] = [
    (b"AD", 24, "4!n4!n12!c"),
    (b"AE", 23, "3!n16!n"),
    (b"AL", 28, "8!n16!c"),
    (b"AT", 20, "5!n11!n"),
    (b"AZ", 28, "4!a20!c"),
    (b"BA", 20, "3!n3!n8!n2!n"),
    (b"BE", 16, "3!n7!n2!n"),
    (b"BG", 22, "4!a4!n2!n8!c"),
    (b"BH", 22, "4!a14!c"),
    (b"BI", 27, "5!n5!n11!n2!n"),
    (b"BR", 29, "8!c5!n10!n1!c1!c"),
    (b"BY", 28, "4!c4!n16!c"),
    (b"CH", 21, "5!n12!c"),
    (b"CR", 22, "4!n14!n"),
    (b"CY", 28, "3!n5!n16!c"),
    (b"CZ", 24, "4!n16!n"),
    (b"DE", 22, "8!n10!n"),
    (b"DJ", 27, "5!n5!n11!n2!n"),
    (b"DK", 18, "4!n9!n1!n"),
    (b"DO", 28, "4!c20!n"),
    (b"EE", 20, "2!n14!n"),
    (b"EG", 29, "4!n4!n17!n"),
    (b"ES", 24, "4!n4!n1!n1!n10!n"),
    (b"FI", 18, "3!n11!n"),
    (b"FK", 18, "2!a12!n"),
    (b"FO", 18, "4!n9!n1!n"),
    (b"FR", 27, "5!n5!n11!c2!n"),
    (b"GB", 22, "4!a6!n8!n"),
    (b"GE", 22, "2!a16!n"),
    (b"GI", 23, "4!a15!c"),
    (b"GL", 18, "4!n9!n1!n"),
    (b"GR", 27, "3!n4!n16!c"),
    (b"GT", 28, "4!c20!c"),
    (b"HN", 28, "4!a20!n"),
    (b"HR", 21, "7!n10!n"),
    (b"HU", 28, "3!n4!n1!n15!n1!n"),
    (b"IE", 22, "4!a6!n8!n"),
    (b"IL", 23, "3!n3!n13!n"),
    (b"IQ", 23, "4!a3!n12!n"),
    (b"IS", 26, "4!n2!n6!n10!n"),
    (b"IT", 27, "1!a5!n5!n12!c"),
    (b"JO", 30, "4!a4!n18!c"),
    (b"KW", 30, "4!a22!c"),
    (b"KZ", 20, "3!n13!c"),
    (b"LB", 28, "4!n20!c"),
    (b"LC", 32, "4!a24!c"),
    (b"LI", 21, "5!n12!c"),
    (b"LT", 20, "5!n11!n"),
    (b"LU", 20, "3!n13!c"),
    (b"LV", 21, "4!a13!c"),
    (b"LY", 25, "3!n3!n15!n"),
    (b"MC", 27, "5!n5!n11!c2!n"),
    (b"MD", 24, "2!c18!c"),
    (b"ME", 22, "3!n13!n2!n"),
    (b"MK", 19, "3!n10!c2!n"),
    (b"MN", 20, "4!n12!n"),
    (b"MR", 27, "5!n5!n11!n2!n"),
    (b"MT", 31, "4!a5!n18!c"),
    (b"MU", 30, "4!a2!n2!n12!n3!n3!a"),
    (b"NI", 28, "4!a20!n"),
    (b"NL", 18, "4!a10!n"),
    (b"NO", 15, "4!n6!n1!n"),
    (b"OM", 23, "3!n16!c"),
    (b"PK", 24, "4!a16!c"),
    (b"PL", 28, "8!n16!n"),
    (b"PS", 29, "4!a21!c"),
    (b"PT", 25, "4!n4!n11!n2!n"),
    (b"QA", 29, "4!a21!c"),
    (b"RO", 24, "4!a16!c"),
    (b"RS", 22, "3!n13!n2!n"),
    (b"RU", 33, "9!n5!n15!c"),
    (b"SA", 24, "2!n18!c"),
    (b"SC", 31, "4!a2!n2!n16!n3!a"),
    (b"SD", 18, "2!n12!n"),
    (b"SE", 24, "3!n16!n1!n"),
    (b"SI", 19, "5!n8!n2!n"),
    (b"SK", 24, "4!n6!n10!n"),
    (b"SM", 27, "1!a5!n5!n12!c"),
    (b"SO", 23, "4!n3!n12!n"),
    (b"ST", 25, "4!n4!n11!n2!n"),
    (b"SV", 28, "4!a20!n"),
    (b"TL", 23, "3!n14!n2!n"),
    (b"TN", 24, "2!n3!n13!n2!n"),
    (b"TR", 26, "5!n1!n16!c"),
    (b"UA", 29, "6!n19!c"),
    (b"VA", 22, "3!n15!n"),
    (b"VG", 24, "4!a16!n"),
    (b"XK", 20, "4!n10!n2!n"),
    (b"YE", 30, "4!a4!n18!c"),
];

/// The registry's IBAN lengths as a 26 × 26 lookup table indexed by the two letters
/// (0 = no IBAN country), built at compile time for O(1) lookup.
const IBAN_LENGTH_TABLE: [u8; 26 * 26] = {
    let mut table = [0u8; 26 * 26];
    let mut i = 0;
    while i < IBAN_REGISTRY.len() {
        let (cc, len, _) = IBAN_REGISTRY[i];
        table[(cc[0] - b'A') as usize * 26 + (cc[1] - b'A') as usize] = len;
        i += 1;
    }
    table
};

/// Registered IBAN length for an upper-case two-letter country code.
fn iban_length(c0: u8, c1: u8) -> Option<usize> {
    if !c0.is_ascii_uppercase() || !c1.is_ascii_uppercase() {
        return None;
    }
    match IBAN_LENGTH_TABLE[(c0 - b'A') as usize * 26 + (c1 - b'A') as usize] {
        0 => None,
        n => Some(n as usize),
    }
}

/// The registry's BBAN structure for a known upper-case country code.
fn bban_structure(cc: &[u8]) -> Option<&'static str> {
    IBAN_REGISTRY
        .binary_search_by(|(c, _, _)| c.as_slice().cmp(cc))
        .ok()
        .map(|i| IBAN_REGISTRY[i].2)
}

/// The character classes of the registry's notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CharClass {
    /// `n`: digits.
    Digit,
    /// `a`: upper-case letters.
    Letter,
    /// `c`: letters or digits.
    Alphanumeric,
}

impl CharClass {
    fn admits(self, b: u8) -> bool {
        match self {
            CharClass::Digit => b.is_ascii_digit(),
            CharClass::Letter => b.is_ascii_uppercase(),
            CharClass::Alphanumeric => b.is_ascii_alphanumeric(),
        }
    }

    /// "nur Ziffern" etc., for the message.
    fn german(self) -> &'static str {
        match self {
            CharClass::Digit => "nur Ziffern",
            CharClass::Letter => "nur Buchstaben",
            CharClass::Alphanumeric => "nur Buchstaben und Ziffern",
        }
    }
}

/// The class of each BBAN position, from a structure such as `4!a6!n8!n`.
fn bban_classes(structure: &str) -> impl Iterator<Item = CharClass> + '_ {
    structure.split_inclusive(['n', 'a', 'c']).flat_map(|part| {
        let (count, class) = part.split_at(part.len() - 1);
        let count: usize = count.trim_end_matches('!').parse().unwrap_or(0);
        let class = match class {
            "n" => CharClass::Digit,
            "a" => CharClass::Letter,
            _ => CharClass::Alphanumeric,
        };
        std::iter::repeat_n(class, count)
    })
}

/// Checks the BBAN (everything after the check digits) against its
/// country's structure; the error names the first position (1-based, in
/// the IBAN without spaces) that breaks it.
fn check_bban(normalized: &[u8]) -> Result<(), String> {
    let Some(structure) = bban_structure(&normalized[..2]) else {
        return Ok(());
    };
    for (i, (class, &b)) in bban_classes(structure).zip(&normalized[4..]).enumerate() {
        if !class.admits(b) {
            let found = if b.is_ascii_digit() {
                "eine Ziffer"
            } else {
                "ein Buchstabe"
            };
            return Err(format!(
                "an Stelle {} steht {found}, erlaubt sind hier {}",
                i + 5,
                class.german()
            ));
        }
    }
    Ok(())
}

/// ISO 7064 MOD 97-10 remainder of an upper-case alphanumeric byte string,
/// letters counting as two digits (A = 10 .. Z = 35).
fn mod97(acc: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(acc, |r, &b| {
        if b.is_ascii_digit() {
            (r * 10 + u32::from(b - b'0')) % 97
        } else {
            (r * 100 + u32::from(b - b'A') + 10) % 97
        }
    })
}

/// Normalizes (remove all spaces, upper-case) and validates an IBAN against
/// ISO 13616: the length and the BBAN structure registered for its country,
/// check digits that are ever issued (02..=98) and mod 97. Returns the
/// normalized IBAN.
pub fn iban(input: &str) -> Result<String, String> {
    // Collect the normalized characters on the stack; only the count is kept
    // beyond the longest possible IBAN.
    let mut buf = [0u8; IBAN_MAX_LEN];
    let mut n = 0usize;
    for &b in input.as_bytes() {
        if b == b' ' {
            continue;
        }
        if !b.is_ascii_alphanumeric() {
            return Err("sie enthält unzulässige Zeichen".to_owned());
        }
        if n < IBAN_MAX_LEN {
            buf[n] = b.to_ascii_uppercase();
        }
        n += 1;
    }
    if n == 0 {
        return Err("sie ist leer".to_owned());
    }
    if n < 2 || !buf[0].is_ascii_uppercase() || !buf[1].is_ascii_uppercase() {
        return Err("sie muss mit dem zweistelligen Länderkennzeichen beginnen".to_owned());
    }
    let Some(expected) = iban_length(buf[0], buf[1]) else {
        return Err("das Länderkennzeichen ist unbekannt".to_owned());
    };
    if n != expected {
        return Err(format!(
            "für dieses Land muss sie {expected} Zeichen lang sein"
        ));
    }
    let normalized = &buf[..n];
    if !normalized[2].is_ascii_digit() || !normalized[3].is_ascii_digit() {
        return Err("an der dritten und vierten Stelle müssen Ziffern stehen".to_owned());
    }
    check_bban(normalized)?;
    // ISO 13616 check digits lie in 02..=98; "00", "01" and "99" can still
    // satisfy mod 97 (01 ≡ 98, 99 ≡ 02) but are never issued.
    if let cd @ (b"00" | b"01" | b"99") = &normalized[2..4] {
        let cd = std::str::from_utf8(cd).unwrap_or("");
        return Err(format!(
            "die Prüfziffern {cd} an Stelle 3 und 4 werden nie vergeben"
        ));
    }
    // Move the first four characters to the end, then mod 97 must be 1.
    if mod97(mod97(0, &normalized[4..]), &normalized[..4]) != 1 {
        return Err("die Prüfsumme stimmt nicht".to_owned());
    }
    let mut out = String::with_capacity(n);
    out.extend(normalized.iter().map(|&b| char::from(b)));
    Ok(out)
}

/// ISO 7064 MOD 11,10 check digit of the first ten digits (values 0..=9).
fn steuer_id_check_digit(digits: &[u8]) -> u8 {
    let mut product = 10u8;
    for &d in digits {
        let mut sum = (d + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    match 11 - product {
        10 => 0,
        c => c,
    }
}

/// The repetition rule for the first ten digits (values 0..=9): exactly one
/// digit occurs twice or three times, every other digit at most once, and a
/// digit occurring three times never stands three times in a row.
fn steuer_id_digits_allowed(digits: &[u8]) -> bool {
    let mut counts = [0u8; 10];
    for &d in digits {
        counts[usize::from(d)] += 1;
    }
    let mut repeated = None;
    for (digit, &count) in counts.iter().enumerate() {
        match count {
            0 | 1 => {}
            2 | 3 if repeated.is_none() => repeated = Some((digit as u8, count)),
            _ => return false,
        }
    }
    match repeated {
        None => false,
        Some((_, 2)) => true,
        Some((digit, _)) => !digits
            .windows(3)
            .any(|w| w[0] == digit && w[1] == digit && w[2] == digit),
    }
}

/// Steuer-Identifikationsnummer: 11 digits, first not 0; among the first 10 digits exactly one digit occurs two or three times (if three times, never all three next to each other) and the others at most once; check digit (11th) by ISO 7064 MOD 11,10.
pub fn steuer_id(input: &str) -> Result<(), String> {
    let bytes = input.as_bytes();
    if bytes.len() != 11 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err("sie muss aus 11 Ziffern bestehen".to_owned());
    }
    let mut digits = [0u8; 11];
    for (d, &b) in digits.iter_mut().zip(bytes) {
        *d = b - b'0';
    }
    if digits[0] == 0 {
        return Err("sie darf nicht mit 0 beginnen".to_owned());
    }
    if !steuer_id_digits_allowed(&digits[..10]) {
        return Err("die Ziffernfolge ist nicht zulässig".to_owned());
    }
    if steuer_id_check_digit(&digits[..10]) != digits[10] {
        return Err("die Prüfziffer stimmt nicht".to_owned());
    }
    Ok(())
}

/// Digit sum (Quersumme) of a number below 100.
fn quersumme(n: u8) -> u8 {
    n / 10 + n % 10
}

/// Position of an upper-case ASCII letter in the alphabet (A = 1 .. Z = 26).
fn letter_position(b: u8) -> u8 {
    b - b'A' + 1
}

/// RVNR weights for the 12 digits before the check digit.
const RVNR_WEIGHTS: [u8; 12] = [2, 1, 2, 5, 7, 1, 2, 1, 2, 1, 2, 1];

/// Check digit of an RVNR whose format is already verified (12 bytes before
/// the check digit: 8 digits, upper-case letter, 2 digits).
fn rvnr_check_digit(bytes: &[u8]) -> u8 {
    let letter = letter_position(bytes[8]);
    let digits = bytes[..8]
        .iter()
        .map(|&b| b - b'0')
        .chain([letter / 10, letter % 10])
        .chain(bytes[9..11].iter().map(|&b| b - b'0'));
    let sum: u32 = digits
        .zip(RVNR_WEIGHTS)
        .map(|(d, w)| u32::from(quersumme(d * w)))
        .sum();
    (sum % 10) as u8
}

/// Checks the RVNR format (8 digits, upper-case letter, 3 digits) and the
/// plausibility of the birth date; returns (day, month, two-digit year).
fn rvnr_syntax(input: &str) -> Result<(u32, u32, u32), &'static str> {
    let b = input.as_bytes();
    if b.len() != 12
        || !b[..8].iter().all(u8::is_ascii_digit)
        || !b[8].is_ascii_uppercase()
        || !b[9..].iter().all(u8::is_ascii_digit)
    {
        return Err("sie muss aus 8 Ziffern, einem Großbuchstaben und 3 Ziffern bestehen");
    }
    let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let (day, month, year) = (two(2), two(4), two(6));
    // Kept simple on purpose: only day 01-31 and month 01-12 are accepted.
    // Numbers issued for special cases (e.g. the day raised by 50, or an
    // unknown birth date) are rejected and left to the caseworker. Whether
    // the day exists in that month is not checked.
    if !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return Err("das darin enthaltene Geburtsdatum ist nicht möglich");
    }
    Ok((day, month, year))
}

/// Rentenversicherungsnummer: 2 digits area, 6 digits birth date DDMMYY, capital letter (first letter of birth name), 2 digits serial, 1 check digit. The letter becomes its two-digit position in the alphabet (A=01 .. Z=26), giving 12 digits before the check digit, weighted 2,1,2,5,7,1,2,1,2,1,2,1; the digit sums (Quersumme) of the products are added; the sum mod 10 is the check digit. Also validates that DDMMYY is a plausible day/month (day 01-31, month 01-12 only; special-case numbers with other day values are rejected).
pub fn rvnr(input: &str) -> Result<(), String> {
    rvnr_syntax(input).map_err(str::to_owned)?;
    let b = input.as_bytes();
    if rvnr_check_digit(&b[..11]) != b[11] - b'0' {
        return Err("die Prüfziffer stimmt nicht".to_owned());
    }
    Ok(())
}

/// The birth date part of a syntactically valid RVNR as (day, month, two-digit year), or None.
///
/// "Syntactically valid" means the format of [`rvnr`] and the plausible
/// day/month; the check digit is not verified here, call [`rvnr`] for that.
pub fn rvnr_birth_part(input: &str) -> Option<(u32, u32, u32)> {
    rvnr_syntax(input).ok()
}

/// Check digit of a KVNR whose format is already verified (letter followed
/// by at least 8 digits).
fn kvnr_check_digit(bytes: &[u8]) -> u8 {
    let letter = letter_position(bytes[0]);
    let digits = [letter / 10, letter % 10]
        .into_iter()
        .chain(bytes[1..9].iter().map(|&b| b - b'0'));
    let sum: u32 = digits
        .zip([1u8, 2].into_iter().cycle())
        .map(|(d, w)| u32::from(quersumme(d * w)))
        .sum();
    (sum % 10) as u8
}

/// Krankenversichertennummer (unchangeable part, 10 chars): capital letter + 9 digits; the letter becomes its two-digit position (A=01..Z=26), the resulting 10 digits before the check digit (2 from the letter + the first 8 digits) are weighted 1,2,1,2,...; digit sums of the products added; mod 10 is the check digit (the last of the 9 digits).
pub fn kvnr(input: &str) -> Result<(), String> {
    let b = input.as_bytes();
    if b.len() != 10 || !b[0].is_ascii_uppercase() || !b[1..].iter().all(u8::is_ascii_digit) {
        return Err("sie muss aus einem Großbuchstaben und 9 Ziffern bestehen".to_owned());
    }
    if kvnr_check_digit(b) != b[9] - b'0' {
        return Err("die Prüfziffer stimmt nicht".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID_IBANS: [&str; 4] = [
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        // From the project's example applications.
        "DE46692859320639324688",
        "DE31403393580701543876",
    ];
    const VALID_STEUER_IDS: [&str; 9] = [
        // BZSt sample.
        "86095742719",
        // Published samples with one digit three times (not all adjacent).
        "65929970489",
        "57549285017",
        "25768131411",
        // From the project's example applications.
        "92316087555",
        "25184203796",
        "33416270586",
        "97382215047",
        "56074918307",
    ];
    const VALID_RVNRS: [&str; 5] = [
        // Widely published sample numbers.
        "65170839J003",
        "15070649C103",
        // From the project's example applications.
        "38041298I318",
        "24140111I631",
        "24090272X754",
    ];
    const VALID_KVNRS: [&str; 10] = [
        // Widely published sample number.
        "A123456780",
        // From the project's example applications.
        "U124906524",
        "Z037486250",
        "B292961117",
        "J578246467",
        "O522766829",
        "I347962792",
        "V218378010",
        "Z715098409",
        "K642290608",
    ];

    /// Builds a valid IBAN from country and BBAN by computing the check digits.
    fn make_iban(country: &str, bban: &str) -> String {
        let r = mod97(mod97(mod97(0, bban.as_bytes()), country.as_bytes()), b"00");
        format!("{country}{:02}{bban}", 98 - r)
    }

    fn replace_at(s: &str, i: usize, c: u8) -> String {
        let mut b = s.as_bytes().to_vec();
        b[i] = c;
        String::from_utf8(b).unwrap()
    }

    // ---- IBAN ----

    #[test]
    fn iban_valid_samples() {
        for s in VALID_IBANS {
            assert_eq!(iban(s).as_deref(), Ok(s), "{s}");
        }
    }

    #[test]
    fn iban_example_application_number_with_wrong_checksum() {
        // From the project's example applications; the check digits for this
        // BBAN would be 19, so this one is invalid.
        assert_eq!(
            iban("DE78595567370598319781").unwrap_err(),
            "die Prüfsumme stimmt nicht"
        );
        assert!(iban("DE19595567370598319781").is_ok());
    }

    #[test]
    fn iban_normalizes_spaces_and_case() {
        assert_eq!(
            iban(" de89 3704 0044 0532 0130 00 ").as_deref(),
            Ok("DE89370400440532013000")
        );
        assert_eq!(
            iban("gb82 west 1234 5698 7654 32").as_deref(),
            Ok("GB82WEST12345698765432")
        );
    }

    #[test]
    fn iban_errors() {
        let err = |s: &str| iban(s).unwrap_err();
        assert_eq!(err(""), "sie ist leer");
        assert_eq!(err("   "), "sie ist leer");
        assert_eq!(
            err("DE89-3704-0044-0532-0130-00"),
            "sie enthält unzulässige Zeichen"
        );
        assert_eq!(
            err("DE89\t370400440532013000"),
            "sie enthält unzulässige Zeichen"
        );
        assert_eq!(
            err("DÉ89370400440532013000"),
            "sie enthält unzulässige Zeichen"
        );
        assert_eq!(
            err("8937040044053201300"),
            "sie muss mit dem zweistelligen Länderkennzeichen beginnen"
        );
        assert_eq!(
            err("D"),
            "sie muss mit dem zweistelligen Länderkennzeichen beginnen"
        );
        assert_eq!(
            err("XX89370400440532013000"),
            "das Länderkennzeichen ist unbekannt"
        );
        assert_eq!(
            err("DE8937040044053201300"),
            "für dieses Land muss sie 22 Zeichen lang sein"
        );
        assert_eq!(
            err("DE893704004405320130000"),
            "für dieses Land muss sie 22 Zeichen lang sein"
        );
        assert_eq!(err("DE"), "für dieses Land muss sie 22 Zeichen lang sein");
        assert_eq!(
            err("DE89370400440532013000123456789012345678901234567890"),
            "für dieses Land muss sie 22 Zeichen lang sein"
        );
        assert_eq!(err("NO12"), "für dieses Land muss sie 15 Zeichen lang sein");
        assert_eq!(
            err("DEX9370400440532013000"),
            "an der dritten und vierten Stelle müssen Ziffern stehen"
        );
        assert_eq!(err("DE88370400440532013000"), "die Prüfsumme stimmt nicht");
    }

    /// The examples: mod 97 and length hold, the structure does not.
    #[test]
    fn iban_structure_of_the_country() {
        let err = |s: &str| iban(s).unwrap_err();
        assert_eq!(
            err("DE583704004405320130AB"),
            "an Stelle 21 steht ein Buchstabe, erlaubt sind hier nur Ziffern"
        );
        assert_eq!(
            err("GB25123412345698765432"),
            "an Stelle 5 steht eine Ziffer, erlaubt sind hier nur Buchstaben"
        );
        assert_eq!(
            err("NL7112345678901234"),
            "an Stelle 5 steht eine Ziffer, erlaubt sind hier nur Buchstaben"
        );
        // Letters where the structure allows them (GB: 4!a6!n8!n).
        assert!(iban("GB82WEST12345698765432").is_ok());
        assert_eq!(
            err("GB82WEST1234569876543X"),
            "an Stelle 22 steht ein Buchstabe, erlaubt sind hier nur Ziffern"
        );
    }

    #[test]
    fn iban_error_details_never_contain_the_input() {
        for s in [
            "DE88370400440532013000",
            "DE8937040044053201300",
            "XX89370400440532013000",
            "DE89-370400440532013000",
            "DEX9370400440532013000",
        ] {
            let e = iban(s).unwrap_err();
            assert!(!e.contains("3704"), "{e}");
            assert!(!e.ends_with('.'), "{e}");
            assert!(e.starts_with(|c: char| c.is_lowercase()), "{e}");
        }
    }

    #[test]
    fn iban_rejects_unissued_check_digits() {
        // Find BBANs whose real check digits are 98 and 02; "01" and "99"
        // then satisfy mod 97 as well but must still be rejected.
        let mut seen = [false; 2];
        for k in 0..100_000u32 {
            let good = make_iban("DE", &format!("3704004405320{k:05}"));
            let alt = match &good[2..4] {
                "98" => "01",
                "02" => "99",
                _ => continue,
            };
            assert!(iban(&good).is_ok());
            let bad = format!("DE{alt}{}", &good[4..]);
            let bad_bytes = bad.as_bytes();
            assert_eq!(mod97(mod97(0, &bad_bytes[4..]), &bad_bytes[..4]), 1);
            assert_eq!(
                iban(&bad).unwrap_err(),
                format!("die Prüfziffern {alt} an Stelle 3 und 4 werden nie vergeben")
            );
            seen[usize::from(alt == "99")] = true;
            if seen == [true, true] {
                return;
            }
        }
        panic!("no BBAN with check digits 98 and 02 found");
    }

    #[test]
    fn iban_registry_is_consistent() {
        for (i, (cc, len, structure)) in IBAN_REGISTRY.iter().enumerate() {
            assert!((15..=34).contains(len));
            assert_eq!(iban_length(cc[0], cc[1]), Some(usize::from(*len)));
            assert_eq!(
                bban_classes(structure).count() + 4,
                usize::from(*len),
                "{structure}"
            );
            assert_eq!(bban_structure(cc.as_slice()), Some(*structure));
            if i > 0 {
                assert!(IBAN_REGISTRY[i - 1].0 < *cc, "table must be sorted, unique");
            }
        }
        let known = IBAN_LENGTH_TABLE.iter().filter(|&&l| l != 0).count();
        assert_eq!(known, IBAN_REGISTRY.len());
        assert_eq!(iban_length(b'D', b'E'), Some(22));
        assert_eq!(iban_length(b'U', b'S'), None);
        assert_eq!(iban_length(b'd', b'e'), None);
    }

    /// Mod 97 detects every substitution of one digit by another digit and
    /// of one letter by another letter: the expanded number changes by
    /// (a - b) · 10^k with 0 < |a - b| < 97, and 97 is prime. A digit
    /// replaced by a letter (or vice versa) changes the length of the
    /// expanded number and is not guaranteed to be caught, so it is not
    /// tested here.
    #[test]
    fn iban_every_single_substitution_is_rejected() {
        for s in VALID_IBANS {
            for i in 0..s.len() {
                let orig = s.as_bytes()[i];
                let alphabet: Vec<u8> = if orig.is_ascii_digit() {
                    (b'0'..=b'9').collect()
                } else {
                    (b'A'..=b'Z').collect()
                };
                for c in alphabet.into_iter().filter(|&c| c != orig) {
                    let m = replace_at(s, i, c);
                    assert!(iban(&m).is_err(), "{s} position {i} -> {}", c as char);
                }
            }
        }
    }

    /// Mod 97 detects every swap of two different adjacent digits (the
    /// number changes by 9 · (a - b) · 10^k, also when the swap straddles
    /// the moved first four characters) and of two different adjacent
    /// letters (99 · (a - b) · 10^k). A letter swapped with a digit is not
    /// guaranteed: "B1" and "1B" both expand to "111".
    #[test]
    fn iban_every_adjacent_transposition_is_rejected() {
        for s in VALID_IBANS {
            let b = s.as_bytes();
            for i in 0..b.len() - 1 {
                let (x, y) = (b[i], b[i + 1]);
                if x == y || x.is_ascii_digit() != y.is_ascii_digit() {
                    continue;
                }
                let mut m = b.to_vec();
                m.swap(i, i + 1);
                let m = String::from_utf8(m).unwrap();
                assert!(iban(&m).is_err(), "{s} swap at {i}");
            }
        }
    }

    // ---- Steuer-ID ----

    #[test]
    fn steuer_id_valid_samples() {
        for s in VALID_STEUER_IDS {
            assert_eq!(steuer_id(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn steuer_id_errors() {
        let err = |s: &str| steuer_id(s).unwrap_err();
        let format = "sie muss aus 11 Ziffern bestehen";
        assert_eq!(err(""), format);
        assert_eq!(err("8609574271"), format);
        assert_eq!(err("860957427190"), format);
        assert_eq!(err("86095742 719"), format);
        assert_eq!(err(" 86095742719"), format);
        assert_eq!(err("86095742719 "), format);
        assert_eq!(err("8609574271X"), format);
        assert_eq!(err("8609574271٩"), format);
        assert_eq!(err("06095742719"), "sie darf nicht mit 0 beginnen");
        // All ten digits different.
        assert_eq!(err("12345678903"), "die Ziffernfolge ist nicht zulässig");
        // Two digits repeated.
        assert_eq!(err("11223456783"), "die Ziffernfolge ist nicht zulässig");
        // One digit four times.
        assert_eq!(err("11112345673"), "die Ziffernfolge ist nicht zulässig");
        // Three times, all adjacent.
        assert_eq!(err("12223456783"), "die Ziffernfolge ist nicht zulässig");
        assert_eq!(err("86095742718"), "die Prüfziffer stimmt nicht");
    }

    #[test]
    fn steuer_id_repetition_rule() {
        let ok = |s: &[u8]| steuer_id_digits_allowed(s);
        assert!(ok(&[1, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
        assert!(ok(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 1]));
        // Three times, two adjacent: allowed.
        assert!(ok(&[1, 1, 2, 1, 3, 4, 5, 6, 7, 8]));
        assert!(ok(&[1, 2, 1, 3, 1, 4, 5, 6, 7, 8]));
        // Three times, all adjacent: not allowed, also at the end.
        assert!(!ok(&[1, 1, 1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(!ok(&[2, 3, 4, 5, 6, 7, 8, 1, 1, 1]));
        assert!(!ok(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
        assert!(!ok(&[1, 1, 2, 2, 3, 4, 5, 6, 7, 8]));
        assert!(!ok(&[1, 1, 1, 1, 2, 3, 4, 5, 6, 7]));
        assert!(!ok(&[1, 1, 2, 2, 2, 3, 4, 5, 6, 7]));
    }

    /// ISO 7064 MOD 11,10 detects every single-digit substitution; a change
    /// may also be caught earlier by the leading-zero or repetition rule.
    #[test]
    fn steuer_id_every_single_substitution_is_rejected() {
        for s in VALID_STEUER_IDS {
            for i in 0..s.len() {
                for c in (b'0'..=b'9').filter(|&c| c != s.as_bytes()[i]) {
                    let m = replace_at(s, i, c);
                    assert!(steuer_id(&m).is_err(), "{s} position {i} -> {}", c as char);
                }
            }
        }
    }

    // ---- RVNR ----

    #[test]
    fn rvnr_valid_samples() {
        for s in VALID_RVNRS {
            assert_eq!(rvnr(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn rvnr_birth_parts_of_example_applications() {
        assert_eq!(rvnr_birth_part("38041298I318"), Some((4, 12, 98)));
        assert_eq!(rvnr_birth_part("24140111I631"), Some((14, 1, 11)));
        assert_eq!(rvnr_birth_part("24090272X754"), Some((9, 2, 72)));
        // The check digit is not part of the syntax.
        assert_eq!(rvnr_birth_part("24090272X755"), Some((9, 2, 72)));
        assert_eq!(rvnr_birth_part("24320272X754"), None);
        assert_eq!(rvnr_birth_part("24091372X754"), None);
        assert_eq!(rvnr_birth_part("24090272x754"), None);
        assert_eq!(rvnr_birth_part(""), None);
    }

    #[test]
    fn rvnr_errors() {
        let err = |s: &str| rvnr(s).unwrap_err();
        let format = "sie muss aus 8 Ziffern, einem Großbuchstaben und 3 Ziffern bestehen";
        assert_eq!(err(""), format);
        assert_eq!(err("38041298I31"), format);
        assert_eq!(err("38041298I3188"), format);
        assert_eq!(err("38041298i318"), format);
        assert_eq!(err("380412981318"), format);
        assert_eq!(err("38 041298 I 318"), format);
        assert_eq!(err("38041298I318 "), format);
        assert_eq!(err("3804129AI318"), format);
        assert_eq!(err("38041298I31A"), format);
        assert_eq!(err("38041298Ä18"), format);
        let date = "das darin enthaltene Geburtsdatum ist nicht möglich";
        assert_eq!(err("38001298I318"), date);
        assert_eq!(err("38321298I318"), date);
        // Special-case day + 50 is deliberately not accepted.
        assert_eq!(err("38541298I318"), date);
        assert_eq!(err("38040098I318"), date);
        assert_eq!(err("38041398I318"), date);
        assert_eq!(err("38041298I317"), "die Prüfziffer stimmt nicht");
    }

    /// The digit sum of d · w, mod 10, is a permutation of 0..=9 for the
    /// weights 1, 2 and 5, so any change of a digit under these weights
    /// changes the check digit. Under weight 7 the digits 0/4 and 3/7
    /// collide.
    #[test]
    fn digit_sum_weights_that_detect_substitutions() {
        let image = |w: u8| {
            let mut seen = [false; 10];
            for d in 0..10 {
                seen[usize::from(quersumme(d * w) % 10)] = true;
            }
            seen.iter().all(|&s| s)
        };
        assert!(image(1) && image(2) && image(5));
        assert!(!image(7));
        assert_eq!(quersumme(7 * 4) % 10, 0);
        assert_eq!(quersumme(7 * 3) % 10, quersumme(7 * 7) % 10);
    }

    /// Every digit except the tens of the month carries weight 1, 2 or 5
    /// (see `digit_sum_weights_that_detect_substitutions`), so changes there
    /// are caught by the check digit. The tens of the month carries weight 7,
    /// whose undetected swaps are 0<->4 and 3<->7; a valid month has 0 or 1
    /// there, and 0 -> 4 gives a month of 40 or more, which the date check
    /// rejects. So every single-digit change is rejected. A change of the
    /// letter is not guaranteed (e.g. A = 01 and S = 19 give the same sum),
    /// so letters are not mutated here.
    #[test]
    fn rvnr_every_single_digit_substitution_is_rejected() {
        for s in VALID_RVNRS {
            for i in (0..s.len()).filter(|&i| i != 8) {
                for c in (b'0'..=b'9').filter(|&c| c != s.as_bytes()[i]) {
                    let m = replace_at(s, i, c);
                    assert!(rvnr(&m).is_err(), "{s} position {i} -> {}", c as char);
                }
            }
        }
        // The letter collision mentioned above.
        assert_eq!(
            rvnr_check_digit(b"65170839A00"),
            rvnr_check_digit(b"65170839S00")
        );
    }

    // ---- KVNR ----

    #[test]
    fn kvnr_valid_samples() {
        for s in VALID_KVNRS {
            assert_eq!(kvnr(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn kvnr_errors() {
        let err = |s: &str| kvnr(s).unwrap_err();
        let format = "sie muss aus einem Großbuchstaben und 9 Ziffern bestehen";
        assert_eq!(err(""), format);
        assert_eq!(err("A12345678"), format);
        assert_eq!(err("A1234567801"), format);
        assert_eq!(err("a123456780"), format);
        assert_eq!(err("1123456780"), format);
        assert_eq!(err("A12345678O"), format);
        assert_eq!(err(" A123456780"), format);
        assert_eq!(err("A123456780 "), format);
        assert_eq!(err("Ä12345678"), format);
        assert_eq!(err("A123456781"), "die Prüfziffer stimmt nicht");
    }

    /// Every digit before the check digit carries weight 1 or 2, both of
    /// which detect any substitution (see
    /// `digit_sum_weights_that_detect_substitutions`); the check digit is
    /// compared directly. A change of the letter is not guaranteed (A = 01
    /// and O = 15 give the same sum), so letters are not mutated here.
    #[test]
    fn kvnr_every_single_digit_substitution_is_rejected() {
        for s in VALID_KVNRS {
            for i in 1..s.len() {
                for c in (b'0'..=b'9').filter(|&c| c != s.as_bytes()[i]) {
                    let m = replace_at(s, i, c);
                    assert!(kvnr(&m).is_err(), "{s} position {i} -> {}", c as char);
                }
            }
        }
        // The letter collision mentioned above.
        assert_eq!(kvnr("A123456780"), Ok(()));
        assert_eq!(kvnr("O123456780"), Ok(()));
    }

    // ---- properties ----

    /// A BBAN that follows `structure`, character by character.
    fn bban_of(structure: &'static str) -> impl Strategy<Value = String> {
        let chars: Vec<BoxedStrategy<char>> = bban_classes(structure)
            .map(|class| match class {
                CharClass::Digit => (b'0'..=b'9').prop_map(char::from).boxed(),
                CharClass::Letter => (b'A'..=b'Z').prop_map(char::from).boxed(),
                CharClass::Alphanumeric => prop_oneof![b'0'..=b'9', b'A'..=b'Z']
                    .prop_map(char::from)
                    .boxed(),
            })
            .collect();
        chars.prop_map(|v| v.into_iter().collect())
    }

    /// A registry country and a BBAN that follows its structure.
    fn any_country_and_bban() -> impl Strategy<Value = (String, String)> {
        proptest::sample::select(&IBAN_REGISTRY[..]).prop_flat_map(|(cc, _, structure)| {
            let country = String::from_utf8(cc.to_vec()).unwrap();
            bban_of(structure).prop_map(move |bban| (country.clone(), bban))
        })
    }

    /// Ten digits obeying the repetition rule, first digit not 0: a
    /// permutation of 0..=9 with one position overwritten by another's digit
    /// (and, in half of the cases, one more, making it three times).
    fn steuer_id_prefix() -> impl Strategy<Value = [u8; 10]> {
        (
            Just((0u8..10).collect::<Vec<_>>()).prop_shuffle(),
            0usize..10,
            0usize..10,
            proptest::option::of(0usize..10),
        )
            .prop_filter_map("needs a valid prefix", |(perm, from, to, third)| {
                let mut d = [0u8; 10];
                d.copy_from_slice(&perm);
                if from == to {
                    return None;
                }
                d[to] = d[from];
                if let Some(t) = third {
                    if t != from && t != to {
                        d[t] = d[from];
                    }
                }
                (d[0] != 0 && steuer_id_digits_allowed(&d)).then_some(d)
            })
    }

    proptest! {
        #[test]
        fn iban_never_panics(s in any::<String>()) {
            let _ = iban(&s);
        }

        #[test]
        fn iban_never_panics_on_plausible_input(s in "[A-Za-z]{0,3}[0-9A-Za-z ]{0,40}") {
            if let Ok(n) = iban(&s) {
                prop_assert!(n.len() <= IBAN_MAX_LEN);
            }
        }

        #[test]
        fn checkers_never_panic(s in any::<String>()) {
            let _ = steuer_id(&s);
            let _ = rvnr(&s);
            let _ = rvnr_birth_part(&s);
            let _ = kvnr(&s);
        }

        #[test]
        fn iban_with_computed_check_digits_validates((country, bban) in any_country_and_bban()) {
            let s = make_iban(&country, &bban);
            prop_assert_eq!(iban(&s), Ok(s.clone()));
            let spaced = s.as_bytes().chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap().to_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            prop_assert_eq!(iban(&spaced), Ok(s));
        }

        /// Every single-character change that breaks the country's
        /// structure is rejected, with the position named (a digit where
        /// only letters may stand, or the other way round), whatever the
        /// check digits say.
        #[test]
        fn iban_breaking_the_structure_is_rejected(
            (country, bban) in any_country_and_bban(),
            at in any::<proptest::sample::Index>(),
            letter in b'A'..=b'Z',
            digit in b'0'..=b'9',
        ) {
            let structure = bban_structure(country.as_bytes()).unwrap();
            let classes: Vec<CharClass> = bban_classes(structure).collect();
            let fixed: Vec<usize> = (0..classes.len())
                .filter(|&i| classes[i] != CharClass::Alphanumeric)
                .collect();
            prop_assume!(!fixed.is_empty());
            let i = fixed[at.index(fixed.len())];
            let mut b = bban.into_bytes();
            b[i] = if classes[i] == CharClass::Digit { letter } else { digit };
            let broken = make_iban(&country, std::str::from_utf8(&b).unwrap());
            let err = iban(&broken).unwrap_err();
            prop_assert!(err.starts_with(&format!("an Stelle {} ", i + 5)), "{}: {}", broken, err);
        }

        #[test]
        fn steuer_id_with_computed_check_digit_validates(d in steuer_id_prefix()) {
            let c = steuer_id_check_digit(&d);
            let s: String = d.iter().chain([&c]).map(|&x| char::from(b'0' + x)).collect();
            prop_assert_eq!(steuer_id(&s), Ok(()), "{}", s);
        }

        #[test]
        fn rvnr_with_computed_check_digit_validates(
            area in 0u32..100, day in 1u32..=31, month in 1u32..=12, year in 0u32..100,
            letter in b'A'..=b'Z', serial in 0u32..100,
        ) {
            let head = format!("{area:02}{day:02}{month:02}{year:02}{}{serial:02}", char::from(letter));
            let c = rvnr_check_digit(head.as_bytes());
            let s = format!("{head}{c}");
            prop_assert_eq!(rvnr(&s), Ok(()), "{}", s);
            prop_assert_eq!(rvnr_birth_part(&s), Some((day, month, year)));
        }

        #[test]
        fn kvnr_with_computed_check_digit_validates(letter in b'A'..=b'Z', body in 0u32..100_000_000) {
            let head = format!("{}{body:08}", char::from(letter));
            let c = kvnr_check_digit(head.as_bytes());
            let s = format!("{head}{c}");
            prop_assert_eq!(kvnr(&s), Ok(()), "{}", s);
        }
    }
}
