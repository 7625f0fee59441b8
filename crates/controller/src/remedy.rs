//! Remedies of "in use" errors, which list the steps that clear what blocks a delete,
//! each with an example command.

/// Maximum number of users an "in use" message names. It counts the others.
const NAMED_USERS_MAX: usize = 5;

/// Joins the first [`NAMED_USERS_MAX`] names with commas and counts the rest, as in
/// "a, b, c, d, e (and 2 more)", so that a message never hides users it leaves out.
pub(crate) fn name_users<S: AsRef<str>>(names: &[S]) -> String {
    let named: Vec<&str> = names.iter().take(NAMED_USERS_MAX).map(AsRef::as_ref).collect();
    let rest = names.len().saturating_sub(NAMED_USERS_MAX);
    if rest == 0 {
        named.join(", ")
    } else {
        format!("{} (and {rest} more)", named.join(", "))
    }
}

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
