//! Kubernetes resource quantities ("500m", "2", "1.5Gi"): the syntax check the API server applies, and
//! their value, which sets the default slots of a hostfile line.

/// The quantity's value as a number, `None` if it is not a Kubernetes quantity.
pub fn parse(q: &str) -> Option<f64> {
    let body = q.strip_prefix(['+', '-']).unwrap_or(q);
    let number_len = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_len);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp => {
            let digits = exp.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse::<i32>().ok()?)
        }
    };
    let sign = if q.starts_with('-') { -1.0 } else { 1.0 };
    Some(sign * value * scale)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn kubernetes_quantities() {
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("1.5"), Some(1.5));
        assert_eq!(parse("1Gi"), Some(1073741824.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse(".5"), Some(0.5));
        for bad in ["", "two", "1.2.3", "5x", "1e", "m", "1 Gi"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
