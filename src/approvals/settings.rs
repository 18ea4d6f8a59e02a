//! Which actions need approvals, how many, and for how long a request waits.

use crate::policy::Action;
use std::time::Duration;

/// An action configured critical, for every environment or for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Critical {
    pub action: Action,
    /// `None`: every environment.
    pub environment: Option<String>,
}

impl std::str::FromStr for Critical {
    type Err = String;
    /// `ScheduleKeyDestruction`, or `DisableKey@prod` for one environment's keys.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (action, environment) = match s.split_once('@') {
            Some((action, env)) if !env.is_empty() => (action, Some(env.to_string())),
            Some(_) => return Err(format!("'{s}': name an environment after '@'")),
            None => (s, None),
        };
        let action: Action = action.parse()?;
        if !APPROVABLE.contains(&action) {
            return Err(format!(
                "{action} cannot wait for approvals (approvable: {})",
                APPROVABLE
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Critical {
            action,
            environment,
        })
    }
}

/// The actions a pending request can hold and later carry out. DestroyKey is not among them:
/// only the scheduler destroys, at the end of a pending window whose scheduling was itself
/// approved. AdoptKey is: bringing a stray key under management can be made to need a
/// second pair of eyes (`AdoptKey@prod`), and the key enters the catalog only once approved.
pub const APPROVABLE: &[Action] = &[
    Action::ScheduleKeyDestruction,
    Action::DisableKey,
    Action::SetKeyOwner,
    Action::AdoptKey,
];

/// The default critical actions, as configured.
pub const DEFAULT_CRITICAL: &[&str] = &["ScheduleKeyDestruction", "SetKeyOwner", "DisableKey@prod"];

/// Critical in every environment whatever the configuration says: destruction is deliberate
/// (rule 5: approvals by someone other than the requester) and a key's owner is who answers
/// for it (rule 2), so neither can be configured away. `[approvals] critical` adds to these.
pub const ALWAYS_CRITICAL: &[Action] = &[Action::ScheduleKeyDestruction, Action::SetKeyOwner];

#[derive(Debug, Clone)]
pub struct ApprovalSettings {
    pub critical: Vec<Critical>,
    /// Distinct approvers a critical action needs, none of them its requester.
    pub quorum: u32,
    /// How long a request waits for its quorum.
    pub expiry: Duration,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            critical: DEFAULT_CRITICAL
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
            quorum: 2,
            expiry: Duration::from_secs(24 * 3600),
        }
    }
}

impl ApprovalSettings {
    /// Whether `action` on a key of `environment` needs approvals.
    pub fn is_critical(&self, action: Action, environment: &str) -> bool {
        ALWAYS_CRITICAL.contains(&action)
            || self.critical.iter().any(|c| {
                c.action == action && c.environment.as_deref().is_none_or(|e| e == environment)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_actions_parse_with_an_optional_environment() {
        let c: Critical = "DisableKey@prod".parse().unwrap();
        assert_eq!(c.environment.as_deref(), Some("prod"));
        assert!(
            "Encrypt"
                .parse::<Critical>()
                .unwrap_err()
                .contains("cannot wait")
        );
        assert!("DisableKey@".parse::<Critical>().is_err());
        assert!("Nonsense".parse::<Critical>().is_err());
        let settings = ApprovalSettings::default();
        assert_eq!(settings.critical.len(), DEFAULT_CRITICAL.len());
        assert!(settings.is_critical(Action::DisableKey, "prod"));
        assert!(!settings.is_critical(Action::DisableKey, "dev"));
        assert!(settings.is_critical(Action::ScheduleKeyDestruction, "dev"));
        assert!(settings.is_critical(Action::SetKeyOwner, "staging"));
        assert!(!settings.is_critical(Action::AdoptKey, "prod"));
        let adopt: Critical = "AdoptKey@prod".parse().unwrap();
        assert_eq!(adopt.action, Action::AdoptKey);
    }

    #[test]
    fn destruction_and_owner_changes_stay_critical_when_configured_away() {
        let settings = ApprovalSettings {
            critical: Vec::new(),
            ..ApprovalSettings::default()
        };
        assert!(settings.is_critical(Action::ScheduleKeyDestruction, "dev"));
        assert!(settings.is_critical(Action::SetKeyOwner, "prod"));
        assert!(!settings.is_critical(Action::DisableKey, "prod"));
    }
}
