//! Remedies of "in use" errors, which list the steps that clear what blocks a delete,
//! each with an example command.

/// Steps that clear what blocks a delete, for [`crate::ControllerError::InUse`].
#[derive(Debug, Default)]
pub(crate) struct Remedy {
    steps: Vec<String>,
}

impl Remedy {
    /// Adds a step, such as "detach those endpoints", with the command for the first user.
    pub(crate) fn step(&mut self, action: &str, example: String) {
        self.steps.push(format!("{action} (for example `{example}`)"));
    }

    /// Adds a step whose example command has a variant, described by `alternative`.
    pub(crate) fn step_or(&mut self, action: &str, example: String, alternative: &str) {
        self.steps.push(format!("{action} (for example `{example}`, or {alternative})"));
    }

    /// Returns the steps as one clause, such as
    /// "detach those endpoints (for example `cloison detach web-1 --tenant blue`) first".
    pub(crate) fn text(&self) -> String {
        format!("{} first", self.steps.join(" and "))
    }
}
