//! Parsers of numeric flags: values that make no sense are usage errors (exit code 2) naming
//! the flag, instead of a panic or a silent no-op deep inside a command; and what `--loss-scale`
//! resolves to with `--precision`.

use vidcls_training::loss_scale::DEFAULT_INITIAL_SCALE;

use vidcls_model::kernels::MatmulPrecision;

/// A count that must be at least 1 (batch sizes, frame slots, epochs, iterations).
pub fn positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(count) => Ok(count),
        Err(e) => Err(e.to_string()),
    }
}

/// A probability or share usable as a rate: `0 <= p < 1`.
pub fn rate(value: &str) -> Result<f64, String> {
    let parsed = finite(value)?;
    if !(0.0..1.0).contains(&parsed) {
        return Err("must be at least 0 and below 1".into());
    }
    Ok(parsed)
}

/// A probability strictly between 0 and 1.
pub fn open_unit(value: &str) -> Result<f64, String> {
    let parsed = finite(value)?;
    if !(parsed > 0.0 && parsed < 1.0) {
        return Err("must be above 0 and below 1".into());
    }
    Ok(parsed)
}

/// A finite number that is not negative (learning rates, sizes of perturbations, loss
/// weights, decay).
pub fn non_negative(value: &str) -> Result<f64, String> {
    let parsed = finite(value)?;
    if parsed < 0.0 {
        return Err("must not be negative".into());
    }
    Ok(parsed)
}

/// A loss scale: `off`, or a finite number above 0 (the initial scale), as f32 holds it.
pub fn loss_scale(value: &str) -> Result<LossScale, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(LossScale::Off);
    }
    let parsed = finite(value)? as f32;
    if !(parsed > 0.0 && parsed.is_finite()) {
        return Err("must be `off` or a number above 0 that f32 holds".into());
    }
    Ok(LossScale::Initial(parsed))
}

/// The initial scale of dynamic loss scaling from `--loss-scale` (`flag`) and `--precision`:
/// the flag's, else GradScaler's 65536 with f16; none with `off`, or by default otherwise.
pub fn initial_loss_scale(flag: Option<LossScale>, precision: MatmulPrecision) -> Option<f32> {
    match flag {
        Some(LossScale::Off) => None,
        Some(LossScale::Initial(scale)) => Some(scale),
        None => (precision == MatmulPrecision::F16).then_some(DEFAULT_INITIAL_SCALE),
    }
}

/// The `--loss-scale` of a training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossScale {
    /// No loss scaling.
    Off,
    /// Dynamic loss scaling from this scale.
    Initial(f32),
}

fn finite(value: &str) -> Result<f64, String> {
    let parsed: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if !parsed.is_finite() {
        return Err("must be a finite number".into());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonsense_values_are_refused() {
        assert_eq!(positive("3"), Ok(3));
        assert!(positive("0").is_err() && positive("-1").is_err());
        assert_eq!(rate("0"), Ok(0.0));
        assert!(rate("1").is_err() && rate("NaN").is_err() && rate("-0.1").is_err());
        assert!(open_unit("0").is_err() && open_unit("0.15").is_ok());
        assert!(non_negative("inf").is_err() && non_negative("0").is_ok());
        assert_eq!(loss_scale("OFF"), Ok(LossScale::Off));
        assert_eq!(loss_scale("1024"), Ok(LossScale::Initial(1024.0)));
        assert!(
            loss_scale("0").is_err() && loss_scale("1e39").is_err() && loss_scale("x").is_err()
        );
    }
}
