//! Installing one verified artifact: run a command, or copy the file to a path.
//!
//! **Invariants:** the installer only ever sees files whose size and SHA-256 were checked; a
//! command is split into words here and run directly, never through a shell we add, with
//! `{file}` replaced in every word and the artifact described in `UPDRAFT_*` variables; it is
//! killed when it outlives its timeout or when the agent stops waiting for it. Installers
//! must be idempotent: after a restart in the `installing` phase the agent runs them again.
//! Copies are atomic (temporary file, fsync, rename).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the agent installs an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installer {
    /// A command line, split into words like a shell would (quotes and backslashes), with
    /// `{file}` replaced by the artifact's path; exit status 0 means installed. It also gets
    /// `UPDRAFT_FILE`, `UPDRAFT_FILENAME`, `UPDRAFT_COMPONENT`, `UPDRAFT_VERSION` and
    /// `UPDRAFT_ACTION_ID` in its environment.
    Command(String),
    /// Copy the artifact to this path; into it, under the artifact's file name, when it is an
    /// existing directory.
    CopyTo(PathBuf),
}

/// What is being installed, for the installer's arguments and environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    pub file: &'a Path,
    pub filename: &'a str,
    pub component: &'a str,
    pub version: &'a str,
    pub action_id: &'a str,
}

impl Installer {
    /// Checks the installer can be used at all (the command parses and is not empty).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Installer::Command(cmd) => match split_words(cmd)? {
                w if w.is_empty() => Err("the install command is empty".into()),
                _ => Ok(()),
            },
            Installer::CopyTo(p) if p.as_os_str().is_empty() => Err("the install path is empty".into()),
            Installer::CopyTo(_) => Ok(()),
        }
    }

    /// Installs one artifact; `Err` carries a one-line reason for the server.
    pub(crate) async fn install(&self, item: Item<'_>, timeout: Duration) -> Result<(), String> {
        match self {
            Installer::Command(cmd) => run_command(cmd, item, timeout).await,
            Installer::CopyTo(dest) => copy_to(dest, item).await,
        }
    }
}

async fn run_command(cmd: &str, item: Item<'_>, timeout: Duration) -> Result<(), String> {
    let file = item.file.to_str().ok_or("the artifact's path is not UTF-8")?;
    let words: Vec<String> = split_words(cmd)?.into_iter().map(|w| w.replace("{file}", file)).collect();
    let (program, args) = words.split_first().ok_or("the install command is empty")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("UPDRAFT_FILE", file)
        .env("UPDRAFT_FILENAME", item.filename)
        .env("UPDRAFT_COMPONENT", item.component)
        .env("UPDRAFT_VERSION", item.version)
        .env("UPDRAFT_ACTION_ID", item.action_id)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(match status.code() {
            Some(code) => format!("the installer exited with status {code}"),
            None => "the installer was killed by a signal".to_owned(),
        }),
        Ok(Err(e)) => Err(format!("waiting for the installer failed: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("the installer did not finish within {timeout:?} and was killed"))
        }
    }
}

async fn copy_to(dest: &Path, item: Item<'_>) -> Result<(), String> {
    let target = if tokio::fs::metadata(dest).await.is_ok_and(|m| m.is_dir()) {
        dest.join(item.filename)
    } else {
        dest.to_owned()
    };
    let source = item.file.to_owned();
    let shown = target.display().to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(target.file_name().unwrap_or_default());
        tmp_name.push(".updraft-tmp");
        let tmp = target.with_file_name(tmp_name);
        let result = (|| {
            std::fs::copy(&source, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &target)?;
            match target.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(p) => crate::state::sync_dir(p),
                None => Ok(()),
            }
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    })
    .await
    .map_err(|e| format!("the copy task failed: {e}"))?
    .map_err(|e| format!("copying to {shown} failed: {e}"))
}

/// Splits a command line into words as a POSIX shell would for quoting: whitespace separates
/// words, `'…'` is literal, `"…"` allows `\"`, `\\`, `\$` and `` \` ``, and a backslash outside
/// quotes escapes the next character. No expansion of any kind happens.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated ' in the command".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated \" in the command".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated \" in the command".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("the command ends with a lone \\".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(split_words("sh -c 'cp {file} /tmp/x && sync'").unwrap(), ["sh", "-c", "cp {file} /tmp/x && sync"]);
        assert_eq!(split_words(r#"a "b \"c\" d" e\ f ''"#).unwrap(), ["a", "b \"c\" d", "e f", ""]);
        assert!(split_words("a 'b").is_err());
        assert!(split_words("").unwrap().is_empty());
        assert!(Installer::Command("  ".into()).validate().is_err());
    }

    #[tokio::test]
    async fn commands_and_copies_install() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, b"payload").unwrap();
        let item = Item { file: &file, filename: "a.bin", component: "host", version: "2", action_id: "1" };
        let out = dir.path().join("out");
        let cmd = format!("sh -c 'cp {{file}} {} && test \"$UPDRAFT_COMPONENT\" = host'", out.display());
        Installer::Command(cmd).install(item, Duration::from_secs(10)).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"payload");
        let err = Installer::Command("sh -c 'exit 3'".into()).install(item, Duration::from_secs(10)).await;
        assert_eq!(err.unwrap_err(), "the installer exited with status 3");
        let err = Installer::Command("sleep 5".into()).install(item, Duration::from_millis(50)).await;
        assert!(err.unwrap_err().contains("killed"));

        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        Installer::CopyTo(sub.clone()).install(item, Duration::from_secs(1)).await.unwrap();
        assert_eq!(std::fs::read(sub.join("a.bin")).unwrap(), b"payload");
        Installer::CopyTo(dir.path().join("new/x.img")).install(item, Duration::from_secs(1)).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("new/x.img")).unwrap(), b"payload");
    }
}
