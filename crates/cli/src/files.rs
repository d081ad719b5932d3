//! Files the CLI writes: never overwritten unless asked (`--force`), and the tokens CSV
//! (`id,token`) that `device import` and `sim --tokens-out` write and `group add --from`,
//! `job create --from` and `sim --tokens` read back.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Fails, naming the file, when `path` exists and `force` is not set.
pub fn check_writable(path: &Path, force: bool) -> anyhow::Result<()> {
    if !force && path.exists() {
        anyhow::bail!("{} exists already; pass --force to overwrite it, or choose another file", path.display());
    }
    Ok(())
}

/// Opens `path` for writing: a new file, or (with `force`) one truncated.
pub fn create(path: &Path, force: bool) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} exists already; pass --force to overwrite it, or choose another file", path.display())
        }
        _ => anyhow::Error::new(e).context(format!("creating {}", path.display())),
    })
}

/// Where the tokens of devices imported from `input` go by default: next to it, named after
/// the whole file name (`fleet.csv` → `fleet.csv.tokens.csv`), so two inputs never share one.
pub fn tokens_path(input: &Path) -> PathBuf {
    let name = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "devices".into());
    input.with_file_name(format!("{name}.tokens.csv"))
}

/// Writes `id,token` lines under a header, readable only by the owner (the tokens are secrets).
pub fn write_tokens<'a>(
    path: &Path,
    force: bool,
    tokens: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> anyhow::Result<()> {
    let mut csv = String::from("id,token\n");
    for (id, token) in tokens {
        csv.push_str(&format!("{id},{token}\n"));
    }
    let mut file = create(path, force)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    file.write_all(csv.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Device ids from a file: one per line, or a CSV whose first column is the id (the tokens CSV
/// this CLI writes, or an import's CSV), its `id…` header skipped. Only the first column is
/// ever read, so a token in the file is never echoed.
pub fn read_ids(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let first = line.split(',').next().unwrap_or("").trim().trim_matches('"');
        if first.is_empty() || (n == 0 && first.eq_ignore_ascii_case("id") && line.contains(',')) {
            continue;
        }
        ids.push(first.to_owned());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_files_are_named_after_the_whole_input_and_never_overwritten() {
        assert_eq!(tokens_path(Path::new("dir/fleet.csv")), Path::new("dir/fleet.csv.tokens.csv"));
        assert_eq!(tokens_path(Path::new("fleet.ndjson")), Path::new("fleet.ndjson.tokens.csv"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        write_tokens(&path, false, [("d1", "upd_d_secret")]).unwrap();
        let err = write_tokens(&path, false, [("d2", "upd_d_other")]).unwrap_err().to_string();
        assert!(err.contains("t.csv exists already") && err.contains("--force"), "{err}");
        write_tokens(&path, true, [("d2", "upd_d_other")]).unwrap();
        assert_eq!(read_ids(&path).unwrap(), ["d2"]);
    }

    #[test]
    fn ids_come_from_plain_lists_and_from_the_first_column_of_a_csv() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("ids.txt");
        std::fs::write(&plain, "a\n\n b \n").unwrap();
        assert_eq!(read_ids(&plain).unwrap(), ["a", "b"]);
        let csv = dir.path().join("fleet.csv");
        std::fs::write(&csv, "id,product,prop.region\n\"x-1\",thermo,eu\nx-2,thermo,us\n").unwrap();
        assert_eq!(read_ids(&csv).unwrap(), ["x-1", "x-2"]);
    }
}
