//! Node path rules, as C xenstored (4.17) applies them.
//!
//! A path is absolute (`/a/b`) or relative (`a/b`, resolved under `/local/domain/<caller>`).
//! Components use `[A-Za-z0-9_@-]`; no empty component, no trailing `/` except for the
//! root itself. The part after a `/local/domain/<n>/` prefix (or the whole path outside
//! one) may be at most [`REL_PATH_MAX`] bytes, the whole path at most [`ABS_PATH_MAX`].

use crate::wire::{ABS_PATH_MAX, REL_PATH_MAX};

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Empty path.
    Empty,
    /// A character outside `[A-Za-z0-9/_@-]`.
    BadChar,
    /// `//` or a trailing `/`.
    EmptyComponent,
    /// Over the length limit.
    TooLong,
    /// A special `@` path where a node is needed.
    Special,
}

/// The home of domain `domid`: `/local/domain/<domid>`.
pub fn domain_path(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

/// Resolves `path` for a connection of domain `caller` into a canonical absolute path.
pub fn canonicalize(path: &str, caller: u32) -> Result<String, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.starts_with('@') {
        return Err(PathError::Special);
    }
    let abs = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", domain_path(caller))
    };
    validate(&abs)?;
    Ok(abs)
}

/// Checks an absolute path.
pub fn validate(abs: &str) -> Result<(), PathError> {
    if !abs.starts_with('/') {
        return Err(PathError::Empty);
    }
    if !abs
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_@-".contains(&b))
    {
        return Err(PathError::BadChar);
    }
    if abs != "/" && (abs.ends_with('/') || abs.contains("//")) {
        return Err(PathError::EmptyComponent);
    }
    let home = domain_prefix_len(abs);
    if abs.len() > ABS_PATH_MAX || abs.len() - home > REL_PATH_MAX {
        return Err(PathError::TooLong);
    }
    Ok(())
}

/// Length of a leading `/local/domain/<digits>/`, or 0.
fn domain_prefix_len(abs: &str) -> usize {
    const PREFIX: &str = "/local/domain/";
    let Some(rest) = abs.strip_prefix(PREFIX) else {
        return 0;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && rest.as_bytes().get(digits) == Some(&b'/') {
        PREFIX.len() + digits + 1
    } else {
        0
    }
}

/// The parent of a canonical path (`None` for the root).
pub fn parent(abs: &str) -> Option<&str> {
    if abs == "/" {
        return None;
    }
    match abs.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&abs[..i]),
        None => None,
    }
}

/// The last component of a canonical path.
pub fn basename(abs: &str) -> &str {
    abs.rsplit('/').next().unwrap_or(abs)
}

/// Whether `child` lies strictly below `ancestor`.
pub fn is_below(child: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return child != "/";
    }
    child.len() > ancestor.len()
        && child.starts_with(ancestor)
        && child.as_bytes()[ancestor.len()] == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_under_the_callers_home() {
        assert_eq!(canonicalize("a/b", 0).unwrap(), "/local/domain/0/a/b");
        assert_eq!(canonicalize("x", 7).unwrap(), "/local/domain/7/x");
        assert_eq!(canonicalize("/a", 7).unwrap(), "/a");
    }

    #[test]
    fn bad_paths_are_refused_like_c_xenstored() {
        for (p, e) in [
            ("", PathError::Empty),
            ("/a//b", PathError::EmptyComponent),
            ("/a/", PathError::EmptyComponent),
            ("/a b", PathError::BadChar),
            ("/a.b", PathError::BadChar),
            ("/a:b", PathError::BadChar),
            ("@introduceDomain", PathError::Special),
        ] {
            assert_eq!(canonicalize(p, 0), Err(e), "{p:?}");
        }
        assert!(canonicalize("/", 0).is_ok());
        assert!(canonicalize("/a-_@b/C9", 0).is_ok());
    }

    #[test]
    fn length_limits_match_the_measured_daemon() {
        // Measured against C xenstored 4.17: "/" + 2047 is fine, "/" + 2048 is not;
        // under a domain home the part after "/local/domain/N/" may be 2048 bytes.
        let x = |n| "x".repeat(n);
        assert!(canonicalize(&format!("/{}", x(2047)), 0).is_ok());
        assert_eq!(
            canonicalize(&format!("/{}", x(2048)), 0),
            Err(PathError::TooLong)
        );
        assert!(canonicalize(&format!("/local/domain/7/{}", x(2048)), 0).is_ok());
        assert!(canonicalize(&format!("/local/domain/7/{}", x(2049)), 0).is_err());
        assert!(canonicalize(&x(2048), 0).is_ok());
        assert!(canonicalize(&x(2049), 0).is_err());
    }

    #[test]
    fn parents_and_ancestry() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(basename("/a/b"), "b");
        assert!(is_below("/a/b", "/a"));
        assert!(!is_below("/ab", "/a"));
        assert!(is_below("/a", "/"));
        assert!(!is_below("/", "/"));
    }
}
