//! Bad host input through the `prism` command line: each malformed
//! description in `tests/bad-descriptions/` gives exactly its own error
//! (file, line, column, key, problem) and no panic, and no subcommand
//! (`wcet`, `report`, `capture`, `compare`) writes into, over or away an
//! existing report folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::tree;

fn prism(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prism")).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn each_bad_description_gives_its_error_with_file_line_and_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-descriptions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 28, "the files of {}", dir.display());
    for f in &files {
        // Line 1: `# expect: LINE:COL: error: KEY: PROBLEM`, the one error
        // `prism validate` must print for the file.
        let bytes = std::fs::read(f).unwrap();
        let first = String::from_utf8_lossy(bytes.split(|b| *b == b'\n').next().unwrap()).into_owned();
        let want = format!("{}:{}", f.display(), first.strip_prefix("# expect: ").expect("an expect line"));
        let o = prism(&["validate".as_ref(), f.as_os_str()]);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{}: {out}{err}", f.display());
        assert!(!err.contains("panicked"), "{}: {err}", f.display());
        // An error that stops the reading comes out through anyhow (`Error: ...`).
        let errors: Vec<&str> = out
            .lines()
            .chain(err.lines())
            .filter(|l| l.contains(": error: "))
            .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
            .collect();
        assert_eq!(errors, [want.as_str()], "{}", f.display());
    }
}

/// The report folders under `root/<name>/` (not `latest`).
fn reports(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.is_symlink() && p.join("summary.json").is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn no_subcommand_overwrites_or_deletes_an_existing_report() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("wcet");
    let desc = tmp.path().join("iso.toml");
    std::fs::write(&desc, "# a description file for the report's name\n").unwrap();
    // Three runs started at once, in the same second: three folders.
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let (desc, root) = (desc.clone(), root.clone());
            std::thread::spawn(move || {
                prism(&[
                    "wcet".as_ref(),
                    desc.as_os_str(),
                    "--synthetic".as_ref(),
                    "120".as_ref(),
                    "--out-root".as_ref(),
                    root.as_os_str(),
                ])
            })
        })
        .collect();
    for r in runs {
        let o = r.join().unwrap();
        assert!(o.status.success(), "{:?}", text(&o));
    }
    let made = reports(&root, "iso");
    assert_eq!(made.len(), 3, "{made:?}");
    let before = tree(tmp.path());

    // `report --out` an existing report, or a folder with a file in it: refused, untouched.
    let keep = tmp.path().join("keep");
    std::fs::create_dir(&keep).unwrap();
    std::fs::write(keep.join("notes.txt"), "mine").unwrap();
    let before_keep = tree(tmp.path());
    for out in [&made[0], &made[1].join("capture"), &keep] {
        let o = prism(&["report".as_ref(), made[2].as_os_str(), "--out".as_ref(), out.as_os_str()]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", out.display());
        assert!(err.contains(&format!("{}: exists", out.display())), "{}: {err}", out.display());
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(tree(tmp.path()), before_keep);

    // `report` twice without --out: two new folders beside it, in the same second too.
    for _ in 0..2 {
        let o = prism(&["report".as_ref(), made[0].as_os_str()]);
        assert!(o.status.success(), "{:?}", text(&o));
    }
    let rebuilt: Vec<_> = std::fs::read_dir(root.join("iso"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("-rebuilt-"))
        .collect();
    assert_eq!(rebuilt.len(), 2, "{rebuilt:?}");

    // `capture` twice from one serial file: two folders, the first kept.
    let serial = tmp.path().join("serial.log");
    std::fs::write(&serial, std::fs::read(made[0].join("capture/alone.console.log")).unwrap()).unwrap();
    let hw = tmp.path().join("hw");
    for _ in 0..2 {
        let o = prism(&[
            "capture".as_ref(),
            "--serial".as_ref(),
            serial.as_os_str(),
            "--out-root".as_ref(),
            hw.as_os_str(),
        ]);
        assert!(o.status.success(), "{:?}", text(&o));
    }
    assert_eq!(reports(&hw, "capture").len(), 2);

    // `compare` only reads; a damaged summary is an error naming it.
    let o = prism(&["compare".as_ref(), made[0].as_os_str(), made[1].as_os_str()]);
    assert!(o.status.success(), "{:?}", text(&o));
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("summary.json"), "{\"schema\": ").unwrap();
    let o = prism(&["compare".as_ref(), made[0].as_os_str(), bad.as_os_str()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{}: invalid JSON", bad.join("summary.json").display())), "{err}");

    // Every file that was there before is still there, byte for byte.
    let after = tree(tmp.path());
    for (k, v) in &before {
        assert!(after.get(k) == Some(v), "{} changed or went away", k.display());
    }
}

/// Three short runs (one per scenario) as a serial console would show them.
fn three_runs() -> Vec<String> {
    use record::{Header, Job, PmcSet, Writer};
    let mut s = String::from("GRUB loading\n");
    for scenario in ["alone", "shared", "partitioned"] {
        let h = Header { scenario, mode: "bare", tsc_hz: 1_000_000_000, pmc: PmcSet::NONE, tasks: 1 };
        let mut w = Writer::begin(&mut s, &h).unwrap();
        w.task(&mut s, "matmul", 4).unwrap();
        for job in 0..4 {
            let t = 1000 * u64::from(job);
            w.job(&mut s, &Job { job, release: t, start: t + 5, end: t + 50, ..Job::default() }).unwrap();
        }
        w.finish(&mut s).unwrap();
        s.push_str("reboot\n");
    }
    s.lines().map(String::from).collect()
}

proptest::proptest! {
    /// `prism capture --serial` cuts a stream into its runs: whatever the
    /// damage (lines lost, repeated, cut or mixed with noise), it never
    /// panics, and every console it keeps holds a run of its scenario.
    #[test]
    fn a_damaged_serial_stream_splits_into_runs_of_their_scenario(
        damage in proptest::collection::vec((0u8..4, 0usize..10_000), 0..30)
    ) {
        let mut lines = three_runs();
        for (kind, at) in damage {
            let i = at % lines.len().max(1);
            match (kind, lines.is_empty()) {
                (_, true) => lines.push("noise".into()),
                (0, _) => drop(lines.remove(i)),
                (1, _) => lines.insert(i, lines[i].clone()),
                (2, _) => {
                    let cut = at % (lines[i].len() + 1);
                    lines[i] = lines[i].get(..cut).unwrap_or("").to_string();
                }
                _ => lines.insert(i, format!("noise @prism-rec {at}")),
            }
        }
        let (runs, _notes) = wcet_reports::capture::split_serial(&(lines.join("\n") + "\n"));
        for (name, text) in &runs {
            let st = record::read::read(text);
            proptest::prop_assert!(st.runs.iter().any(|r| r.scenario() == Some(name.as_str())), "{name}: {text}");
        }
    }
}
