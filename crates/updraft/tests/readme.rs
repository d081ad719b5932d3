//! The README's quick walk-through, command by command, as a user types it: each `updraft …`
//! line of the block runs as the real binary against a real server, in order, and its output
//! is checked. Editing the walk-through changes what this test runs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use updraft::testing::{ADMIN_TOKEN, Backend, TestServer};

/// The `updraft` command lines of the README's quick walk-through (continuations joined).
fn walk_through() -> Vec<Vec<String>> {
    let readme = include_str!("../../../README.md");
    let start = readme.find("## Quick walk-through").expect("the README has a quick walk-through");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").expect("a shell block") + 6..];
    let block = &block[..block.find("```").expect("the block ends")];
    let joined = block.replace("\\\n", " ");
    joined.lines().map(words).filter(|w| w.first().is_some_and(|c| c == "updraft")).map(|w| w[1..].to_vec()).collect()
}

/// A line split as a POSIX shell splits it: quotes, backslashes, and `#` comments.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                w.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '#' if word.is_none() => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

fn updraft(server: &TestServer, cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_updraft"));
    cmd.env("UPDRAFT_SERVER", format!("http://{}", server.addr)).env("UPDRAFT_TOKEN", ADMIN_TOKEN).current_dir(cwd);
    cmd
}

#[track_caller]
fn ok(args: &[String], out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "`updraft {}` failed:\n{stderr}\n{stdout}", args.join(" "));
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_walk_through_works_as_written() {
    let commands = walk_through();
    assert!(commands.len() >= 20, "the walk-through was found: {commands:?}");
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // The files the walk-through names.
    let image: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(cwd.join("fw-2.0.0.bin"), &image).unwrap();
    let fleet: String = std::iter::once("id,product,firmware.host,prop.region\n".to_owned())
        .chain((2..=40).map(|i| format!("dev-{i:04},thermo-x,1.0.0,{}\n", if i % 2 == 0 { "eu" } else { "us" })))
        .collect();
    std::fs::write(cwd.join("fleet.csv"), fleet).unwrap();

    let mut ran = Vec::new();
    for args in &commands {
        let line = args.join(" ");
        if args[..2] == ["job", "watch"] {
            // Runs until the job ends: off a terminal it prints a plain line per change.
            let mut child = updraft(&server, cwd).args(args).stdout(Stdio::piped()).spawn().unwrap();
            let mut first = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(first.contains("first running") && !first.contains('\x1b'), "{line}: {first:?}");
            ran.push(line);
            continue;
        }
        let out = updraft(&server, cwd).args(args).output().unwrap();
        let stdout = ok(args, &out);
        let expect = |what: &str| assert!(stdout.contains(what), "`updraft {line}` printed no `{what}`:\n{stdout}");
        match (args[0].as_str(), args[1].as_str()) {
            ("product", "create") => expect("thermo-x"),
            ("firmware", "upload") | ("firmware", "list") => expect("293 KiB"),
            ("device", "add") => expect("token (shown once): upd_d_"),
            ("device", "import") => expect("39 devices imported; their tokens are in fleet.csv.tokens.csv"),
            ("group", "add") => expect("39 added"),
            ("group", "members") => expect("dev-0040"),
            ("firmware", "download") => assert_eq!(std::fs::read(cwd.join("back.bin")).unwrap(), image),
            ("key", "create") => expect("token (shown once): upd_k_"),
            ("tenant", "create") => expect("tenant globex created"),
            ("filter", "estimate") => expect("devices match"),
            ("job", "create") => expect("thermo-x"),
            ("job", "estimate") => expect("count"),
            ("job", "show") => {
                expect("state      running");
                expect("eta        unknown");
            }
            ("job", "device") => expect("first"),
            _ => {}
        }
        ran.push(line);
    }
    let tokens = std::fs::read_to_string(cwd.join("fleet.csv.tokens.csv")).unwrap();
    assert_eq!(tokens.lines().count(), 40, "a header and 39 devices");
    assert!(ran.iter().any(|l| l.starts_with("job watch")), "{ran:?}");
}

#[test]
fn walk_through_lines_split_as_a_shell_splits_them() {
    assert_eq!(
        words(r#"updraft filter estimate 'prop.region == "eu"' --name "Thermo X" # a comment"#),
        ["updraft", "filter", "estimate", r#"prop.region == "eu""#, "--name", "Thermo X"]
    );
}
