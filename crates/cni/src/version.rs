use crate::{CniError, ErrorCode};

/// A CNI specification version this plugin reads configurations of and writes
/// results in. Ordered, so `>=` shows which verbs a version has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpecVersion {
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// Every version VERSION reports, oldest first.
pub const SUPPORTED: [SpecVersion; 4] = [
    SpecVersion::V0_3_1,
    SpecVersion::V0_4_0,
    SpecVersion::V1_0_0,
    SpecVersion::V1_1_0,
];

impl SpecVersion {
    /// Parses a `cniVersion`; an unknown one is error code 1, as the specification requires.
    pub fn parse(text: &str) -> Result<Self, CniError> {
        SUPPORTED
            .into_iter()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| {
                CniError::new(
                    ErrorCode::IncompatibleVersion,
                    "incompatible CNI version",
                    format!("cniVersion {text:?} is not supported; supported versions are {}", supported_list()),
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_3_1 => "0.3.1",
            SpecVersion::V0_4_0 => "0.4.0",
            SpecVersion::V1_0_0 => "1.0.0",
            SpecVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Results before 1.0.0 tag each address with its IP version ("4" or "6").
    pub fn ips_carry_version(self) -> bool {
        self < SpecVersion::V1_0_0
    }

    /// Interface MTUs appeared in results in 1.1.0.
    pub fn interfaces_carry_mtu(self) -> bool {
        self >= SpecVersion::V1_1_0
    }
}

fn supported_list() -> String {
    SUPPORTED.map(SpecVersion::as_str).join(", ")
}

/// Rejects a verb the configuration's version does not have: CHECK came with 0.4.0,
/// GC and STATUS with 1.1.0.
pub(crate) fn require(version: SpecVersion, minimum: SpecVersion, verb: &str) -> Result<(), CniError> {
    if version >= minimum {
        return Ok(());
    }
    Err(CniError::new(
        ErrorCode::IncompatibleVersion,
        "incompatible CNI version",
        format!("{verb} needs cniVersion {} or later, the configuration has {}", minimum.as_str(), version.as_str()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_supported_versions() {
        for v in SUPPORTED {
            assert_eq!(SpecVersion::parse(v.as_str()).expect("supported"), v);
        }
    }

    #[test]
    fn parse_rejects_with_code_one() {
        let err = SpecVersion::parse("0.2.0").expect_err("too old");
        assert_eq!(err.code.number(), 1);
        assert!(err.details.contains("1.1.0"), "{}", err.details);
    }

    #[test]
    fn check_needs_040() {
        assert!(require(SpecVersion::V0_3_1, SpecVersion::V0_4_0, "CHECK").is_err());
        assert!(require(SpecVersion::V0_4_0, SpecVersion::V0_4_0, "CHECK").is_ok());
    }
}
