//! Kubernetes resource quantities (`500m`, `2Gi`, `1e3`) as exact numbers, for adding up the requests of
//! a job's pods (a PodGroup's `minResources`). Parsed as the API server's `resource.Quantity` reads them,
//! kept in nano-units, written back in the canonical form of the first quantity's format (binary suffixes
//! stay binary), as the API server's own addition does.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

const NANO: i128 = 1_000_000_000;

/// An exact quantity, in billionths of the unit, and whether it was written with a binary suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount {
    pub nanos: i128,
    pub binary: bool,
}

/// Reads a quantity; the error says what is wrong with it.
pub fn parse(text: &str) -> Result<Amount, String> {
    let bad = || format!("{text:?} is not a quantity (a number with an optional suffix: 500m, 2, 1.5Gi, 128M, 1e3)");
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (negative, digits) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(bad());
    }
    // Scale: the value is (whole.fraction) × 10^decimal × 2^binary.
    let (decimal, binary): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        exponent if exponent.starts_with(['e', 'E']) => (exponent[1..].parse::<i32>().map_err(|_| bad())?, 0),
        _ => return Err(bad()),
    };
    // The digits as one integer, then shifted into nano-units; a fraction finer than a nano-unit rounds up.
    let mantissa: i128 = format!("{whole}{fraction}").parse().map_err(|_| bad())?;
    let shift = decimal + 9 - fraction.len() as i32;
    let too_big = || format!("{text:?} is too large a quantity");
    let scaled = if shift >= 0 {
        10i128.checked_pow(shift as u32).and_then(|p| mantissa.checked_mul(p)).ok_or_else(too_big)?
    } else {
        let divisor = 10i128.checked_pow(shift.unsigned_abs()).unwrap_or(i128::MAX);
        mantissa / divisor + i128::from(mantissa % divisor != 0)
    };
    let nanos = scaled.checked_mul(1i128 << binary).ok_or_else(too_big)?;
    Ok(Amount { nanos: if negative { -nanos } else { nanos }, binary: binary > 0 })
}

/// The quantity's canonical text: whole units with the largest suffix that divides them exactly
/// (binary or decimal, as the amount's format), else milli-, micro- or nano-units.
pub fn format(amount: Amount) -> String {
    let nanos = amount.nanos;
    if nanos % NANO != 0 {
        for (suffix, per) in [("m", 1_000_000), ("u", 1_000), ("n", 1)] {
            if nanos % per == 0 {
                return format!("{}{suffix}", nanos / per);
            }
        }
    }
    let units = nanos / NANO;
    let suffixes: &[(&str, i128)] = if amount.binary {
        &[("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
    } else {
        &[("E", 10i128.pow(18)), ("P", 10i128.pow(15)), ("T", 10i128.pow(12)), ("G", 10i128.pow(9)), ("M", 10i128.pow(6)), ("k", 1000)]
    };
    match suffixes.iter().find(|(_, per)| units != 0 && units % per == 0) {
        Some((suffix, per)) => format!("{}{suffix}", units / per),
        None => units.to_string(),
    }
}

/// `quantity × times`, added to `sum` (which keeps its own format once it has one).
pub fn add(sum: Option<Amount>, quantity: &Quantity, times: u32) -> Result<Amount, String> {
    let amount = parse(&quantity.0)?;
    let product = amount.nanos.checked_mul(i128::from(times)).ok_or_else(|| format!("{:?} × {times} is too large", quantity.0))?;
    Ok(match sum {
        None => Amount { nanos: product, binary: amount.binary },
        Some(sum) => Amount { nanos: sum.nanos.saturating_add(product), binary: sum.binary },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        format(parse(text).unwrap())
    }

    #[test]
    fn quantities_read_as_the_api_server_reads_them() {
        assert_eq!(parse("500m").unwrap().nanos, 500_000_000);
        assert_eq!(parse("2").unwrap().nanos, 2 * NANO);
        assert_eq!(parse("1.5Gi").unwrap(), Amount { nanos: 1_610_612_736 * NANO, binary: true });
        assert_eq!(parse("128M").unwrap().nanos, 128_000_000 * NANO);
        assert_eq!(parse("1e3").unwrap().nanos, 1000 * NANO);
        assert_eq!(parse(".5").unwrap().nanos, NANO / 2);
        assert_eq!(parse("1n").unwrap().nanos, 1);
        assert_eq!(parse("0.1n").unwrap().nanos, 1, "finer than a nano-unit rounds up");
        for bad in ["", "lots", "1x", "1.2.3", "m", "--1", "1Ki5", "1e", "99999999999999999999999999999E"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn canonical_forms_keep_the_format() {
        for (given, written) in
            [("1000m", "1"), ("1500m", "1500m"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("3000", "3k"), ("0", "0"), ("2e3", "2k"), ("1.5", "1500m")]
        {
            assert_eq!(canonical(given), written, "{given}");
        }
    }

    #[test]
    fn sums_keep_the_first_format() {
        let q = |s: &str| Quantity(s.into());
        let memory = add(Some(add(None, &q("512Mi"), 2).unwrap()), &q("1Gi"), 1).unwrap();
        assert_eq!(format(memory), "2Gi");
        let cpu = add(Some(add(None, &q("250m"), 3).unwrap()), &q("1"), 1).unwrap();
        assert_eq!(format(cpu), "1750m");
        assert!(add(None, &q("many"), 1).is_err());
    }
}
