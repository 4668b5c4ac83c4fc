//! ISO-8601 durations (`P90D`, `PT1H`, `P1Y2M`, `P2W`...) and rotation-policy validation.

use chrono::{DateTime, Duration, Months, Utc};

use crate::error::{Result, VaultError};
use crate::model::{KeyRotationPolicy, LifetimeAction, LifetimeActionTrigger, LifetimeActionType};

/// A parsed ISO-8601 duration (calendar years and months kept separate from fixed units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IsoDuration {
    pub years: u32,
    pub months: u32,
    pub weeks: u32,
    pub days: u32,
    pub hours: u32,
    pub minutes: u32,
    pub seconds: u32,
}

impl IsoDuration {
    /// Parse `PnYnMnWnDTnHnMnS` (each part optional, at least one present, integers only).
    pub fn parse(s: &str) -> Result<IsoDuration> {
        let bad = |why: &str| {
            VaultError::bad(format!(
                "invalid ISO-8601 duration '{}': {why} (expected e.g. P90D, PT1H, P1Y2M)",
                crate::keys::material::truncate(s)
            ))
        };
        let rest = s
            .strip_prefix('P')
            .ok_or_else(|| bad("must start with 'P'"))?;
        let mut d = IsoDuration::default();
        let mut in_time = false;
        let mut num = String::new();
        let mut any = false;
        let mut time_any = false;
        // Order of designators enforced: Y M W D T H M S.
        let mut last_rank = 0u8;
        for c in rest.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                if num.len() > 9 {
                    return Err(bad("number too large"));
                }
                continue;
            }
            if c == 'T' {
                if in_time || !num.is_empty() {
                    return Err(bad("misplaced 'T'"));
                }
                in_time = true;
                last_rank = 4;
                continue;
            }
            if num.is_empty() {
                return Err(bad("designator without a number"));
            }
            let n: u32 = num.parse().map_err(|_| bad("invalid number"))?;
            num.clear();
            let (rank, slot) = match (in_time, c) {
                (false, 'Y') => (1, &mut d.years),
                (false, 'M') => (2, &mut d.months),
                (false, 'W') => (3, &mut d.weeks),
                (false, 'D') => (4, &mut d.days),
                (true, 'H') => (5, &mut d.hours),
                (true, 'M') => (6, &mut d.minutes),
                (true, 'S') => (7, &mut d.seconds),
                _ => return Err(bad("unknown or misplaced designator")),
            };
            if rank <= last_rank {
                return Err(bad("designators out of order or repeated"));
            }
            last_rank = rank;
            *slot = n;
            any = true;
            time_any |= in_time;
        }
        if !num.is_empty() {
            return Err(bad("number without a designator"));
        }
        if !any {
            return Err(bad("no duration parts"));
        }
        if in_time && !time_any {
            return Err(bad("'T' without hours, minutes or seconds"));
        }
        Ok(d)
    }

    fn fixed(&self) -> Duration {
        Duration::weeks(self.weeks as i64)
            + Duration::days(self.days as i64)
            + Duration::hours(self.hours as i64)
            + Duration::minutes(self.minutes as i64)
            + Duration::seconds(self.seconds as i64)
    }

    fn total_months(&self) -> u32 {
        self.years.saturating_mul(12).saturating_add(self.months)
    }

    /// `t + self`; `None` on overflow.
    pub fn add_to(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        t.checked_add_months(Months::new(self.total_months()))?
            .checked_add_signed(self.fixed())
    }

    /// `t - self`; `None` on overflow.
    pub fn sub_from(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        t.checked_sub_months(Months::new(self.total_months()))?
            .checked_sub_signed(self.fixed())
    }
}

/// The normalized action kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActionKind {
    Rotate,
    Notify,
}

/// One validated lifetime action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Action {
    pub(crate) kind: ActionKind,
    pub(crate) after_create: Option<IsoDuration>,
    pub(crate) before_expiry: Option<IsoDuration>,
}

/// Validate a policy and return it normalized (action types spelled `Rotate` / `Notify`) together
/// with its parsed actions and expiry.
pub(crate) fn validate(
    policy: &KeyRotationPolicy,
) -> Result<(KeyRotationPolicy, Vec<Action>, Option<IsoDuration>)> {
    let mut actions = Vec::new();
    let mut normalized = Vec::new();
    for (i, la) in policy.lifetime_actions.iter().flatten().enumerate() {
        let kind = match la.action.action_type.to_ascii_lowercase().as_str() {
            "rotate" => ActionKind::Rotate,
            "notify" => ActionKind::Notify,
            _ => {
                return Err(VaultError::bad(format!(
                    "invalid lifetimeActions[{i}].action.type: expected Rotate or Notify, found '{}'",
                    crate::keys::material::truncate(&la.action.action_type)
                )));
            }
        };
        let after_create = la
            .trigger
            .time_after_create
            .as_deref()
            .map(IsoDuration::parse)
            .transpose()?;
        let before_expiry = la
            .trigger
            .time_before_expiry
            .as_deref()
            .map(IsoDuration::parse)
            .transpose()?;
        match (after_create.is_some(), before_expiry.is_some()) {
            (true, true) | (false, false) => {
                return Err(VaultError::bad(format!(
                    "invalid lifetimeActions[{i}].trigger: expected exactly one of timeAfterCreate or timeBeforeExpiry"
                )));
            }
            _ => {}
        }
        if kind == ActionKind::Notify && after_create.is_some() {
            return Err(VaultError::bad(format!(
                "invalid lifetimeActions[{i}]: a Notify action must use timeBeforeExpiry"
            )));
        }
        if actions.iter().any(|a: &Action| a.kind == kind) {
            return Err(VaultError::bad(format!(
                "invalid lifetimeActions[{i}]: expected at most one {} action",
                if kind == ActionKind::Rotate {
                    "Rotate"
                } else {
                    "Notify"
                }
            )));
        }
        actions.push(Action {
            kind,
            after_create,
            before_expiry,
        });
        normalized.push(LifetimeAction {
            trigger: LifetimeActionTrigger {
                time_after_create: la.trigger.time_after_create.clone(),
                time_before_expiry: la.trigger.time_before_expiry.clone(),
            },
            action: LifetimeActionType {
                action_type: if kind == ActionKind::Rotate {
                    "Rotate"
                } else {
                    "Notify"
                }
                .to_string(),
            },
        });
    }
    let expiry = policy
        .attributes
        .as_ref()
        .and_then(|a| a.expiry_time.as_deref())
        .map(IsoDuration::parse)
        .transpose()?;
    let out = KeyRotationPolicy {
        id: None,
        lifetime_actions: Some(normalized),
        attributes: Some(crate::model::KeyRotationPolicyAttributes {
            expiry_time: policy
                .attributes
                .as_ref()
                .and_then(|a| a.expiry_time.clone()),
            created: None,
            updated: None,
        }),
    };
    Ok((out, actions, expiry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parse_durations() {
        assert_eq!(
            IsoDuration::parse("P90D").unwrap(),
            IsoDuration {
                days: 90,
                ..Default::default()
            }
        );
        assert_eq!(
            IsoDuration::parse("PT1H").unwrap(),
            IsoDuration {
                hours: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            IsoDuration::parse("P1Y2M").unwrap(),
            IsoDuration {
                years: 1,
                months: 2,
                ..Default::default()
            }
        );
        assert_eq!(
            IsoDuration::parse("P1DT2H3M4S").unwrap(),
            IsoDuration {
                days: 1,
                hours: 2,
                minutes: 3,
                seconds: 4,
                ..Default::default()
            }
        );
        assert_eq!(
            IsoDuration::parse("P2W").unwrap(),
            IsoDuration {
                weeks: 2,
                ..Default::default()
            }
        );
        for bad in [
            "",
            "P",
            "90D",
            "PT",
            "P1H",
            "PD",
            "P1DT",
            "P1M1Y",
            "P1D1D",
            "P1.5D",
            "PT1D",
            "P99999999999D",
            "P1",
        ] {
            assert!(IsoDuration::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn arithmetic() {
        let t = Utc.with_ymd_and_hms(2024, 1, 31, 12, 0, 0).unwrap();
        let d = IsoDuration::parse("P1M").unwrap();
        assert_eq!(
            d.add_to(t).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap()
        );
        let d = IsoDuration::parse("P1DT1H").unwrap();
        assert_eq!(
            d.add_to(t).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 1, 13, 0, 0).unwrap()
        );
        assert_eq!(
            d.sub_from(t).unwrap(),
            Utc.with_ymd_and_hms(2024, 1, 30, 11, 0, 0).unwrap()
        );
    }
}
