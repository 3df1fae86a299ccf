//! The report pipeline end to end on synthetic runs: rebuilds, damaged
//! captures, self-contained HTML, no overwrites.

use std::path::{Path, PathBuf};
use std::time::Duration;

use record::{Header, PmcSet, Writer};
use wcet_reports::capture::{self, Capture};
use wcet_reports::report::{self, Options};
use wcet_reports::source::{synthetic_layout, SyntheticSource};
use wcet_reports::wcet::{self, Plan};

mod common;
use common::tree;

const DESCRIPTION: &str = "# synthetic test description\n[[partition]]\nname = \"rt\"\ncolors = \"0-7\"\n";

/// A synthetic run of `jobs` jobs per scenario under `root`; its folder.
fn synthetic_run(root: &Path, jobs: u32) -> PathBuf {
    let src = SyntheticSource { jobs, seed: 7, line_delay: Duration::ZERO };
    let plan = Plan {
        description_file: PathBuf::from("workloads/configs/test.toml"),
        description_text: DESCRIPTION.into(),
        scenarios: wcet::default_scenarios(Duration::from_secs(60), |s| Some(synthetic_layout(s))),
        out_root: root.to_path_buf(),
        options: Options::default(),
    };
    wcet::run(&src, &plan).unwrap().dir
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// A copy of `run`'s capture with the console of `scenario` replaced by `f(text)`.
fn damaged<T: AsRef<[u8]>>(run: &Path, into: &Path, scenario: &str, f: impl Fn(&str) -> T) -> Capture {
    let src = run.join("capture");
    std::fs::create_dir_all(into).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, into.join(p.file_name().unwrap())).unwrap();
    }
    let console = into.join(format!("{scenario}.console.log"));
    let text = std::fs::read_to_string(&console).unwrap();
    std::fs::write(&console, f(&text)).unwrap();
    capture::load(into).unwrap()
}

#[test]
fn a_run_writes_every_file_and_report_dir_rebuilds_it_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(tmp.path(), 300);
    for f in ["jobs.csv", "summary.json", "histogram.txt", "report.html", "report.md", "capture/run.json"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    for p in [
        "histogram-alone",
        "histogram-shared",
        "histogram-partitioned",
        "overlay",
        "exceedance",
        "timeseries",
        "colormap",
    ] {
        for ext in ["svg", "png"] {
            assert!(run.join(format!("plots/{p}.{ext}")).is_file(), "{p}.{ext} missing");
        }
    }
    let latest = std::fs::read_link(tmp.path().join("test/latest")).unwrap();
    assert_eq!(latest, PathBuf::from(run.file_name().unwrap()));
    let s = summary(&run);
    assert_eq!(s["schema"], "prism-wcet-summary/1");
    assert_eq!(s["complete"], true);
    assert_eq!(s["metric"]["name"], "model_cycles");
    assert_eq!(s["scenarios"]["shared"]["tasks"][0]["jobs"], 300);
    assert_eq!(s["config"]["text"], DESCRIPTION);
    assert!(s["isolation"]["matmul"]["shared_over_alone"].as_f64().unwrap() > 1.3);
    // jobs.csv: header + 3 x 300 rows, joined with the model's rows.
    let csv = std::fs::read_to_string(run.join("jobs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 901);
    assert!(csv.lines().next().unwrap().contains(",model_job,model_complete,instructions,"));

    let rebuilt = tmp.path().join("rebuilt");
    report::build(&capture::load(&run).unwrap(), &rebuilt, &Options::default()).unwrap();
    let (a, b) = (tree(&run), tree(&rebuilt));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{} differs after the rebuild", k.display());
    }
}

#[test]
fn two_runs_agree_apart_from_timestamps() {
    let tmp = tempfile::tempdir().unwrap();
    let a = synthetic_run(tmp.path(), 250);
    let b = synthetic_run(tmp.path(), 250);
    assert_ne!(a, b, "a second run must get a folder of its own");
    assert_eq!(std::fs::read(a.join("jobs.csv")).unwrap(), std::fs::read(b.join("jobs.csv")).unwrap());
    let strip = |mut v: serde_json::Value| {
        v["started"] = serde_json::Value::Null;
        for s in ["alone", "shared", "partitioned"] {
            v["scenarios"][s]["elapsed_s"] = serde_json::Value::Null;
        }
        v
    };
    assert_eq!(strip(summary(&a)), strip(summary(&b)));
}

#[test]
fn report_html_parses_embeds_every_image_and_references_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(tmp.path(), 300);
    let text = std::fs::read_to_string(run.join("report.html")).unwrap();
    let doc = scraper::Html::parse_document(&text);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    let sel = |s: &str| scraper::Selector::parse(s).unwrap();
    let imgs: Vec<_> = doc.select(&sel("img")).collect();
    let pngs: Vec<PathBuf> = std::fs::read_dir(run.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert_eq!(imgs.len(), pngs.len());
    use base64::Engine;
    let mut embedded = Vec::new();
    for i in &imgs {
        let src = i.value().attr("src").unwrap();
        let b64 = src.strip_prefix("data:image/png;base64,").expect("image not embedded");
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        embedded.push(bytes);
    }
    for p in &pngs {
        assert!(embedded.contains(&std::fs::read(p).unwrap()), "{} is not embedded", p.display());
    }
    // Nothing outside the file: no element loads or links anything.
    assert_eq!(doc.select(&sel("script, link, iframe, object, embed, base, video, audio, source")).count(), 0);
    for e in doc.select(&sel("*")) {
        for (name, value) in e.value().attrs() {
            if matches!(name, "src" | "href" | "srcset" | "poster" | "data" | "action" | "background") {
                assert!(
                    value.starts_with("data:") || value.starts_with('#'),
                    "<{}> {name}={value:.60}",
                    e.value().name()
                );
            }
        }
    }
    for s in doc.select(&sel("style")) {
        let css: String = s.text().collect();
        assert!(!css.contains("url(") && !css.contains("@import"), "{css}");
    }
    let title: String = doc.select(&sel("h1")).next().unwrap().text().collect();
    assert_eq!(title, "WCET report: test");
}

#[test]
fn a_truncated_capture_gives_a_partial_report_marked_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(tmp.path(), 300);
    let cap = damaged(&run, &tmp.path().join("cut"), "partitioned", |t| {
        let lines: Vec<&str> = t.lines().collect();
        lines[..lines.len() * 3 / 5].join("\n")
    });
    let out = tmp.path().join("cut-report");
    let s = report::build(&cap, &out, &Options::default()).unwrap();
    assert!(!s.complete);
    let p = s.scenarios.partitioned.as_ref().unwrap();
    assert_eq!(p.status, "incomplete");
    assert!(p.jobs_received > 50 && p.jobs_received < 300, "{}", p.jobs_received);
    assert!(p.problems.iter().any(|x| x.contains("stream truncated")), "{:?}", p.problems);
    assert!(p.problems.iter().any(|x| x.contains("job(s) missing")), "{:?}", p.problems);
    // What arrived is still reported, joined with its model rows.
    assert_eq!(p.tasks[0].jobs, p.jobs_received);
    assert_eq!(s.metric.name, "model_cycles");
    assert_eq!(s.scenarios.alone.as_ref().unwrap().status, "complete");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**INCOMPLETE RUN**") && md.contains("stream truncated"));
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("INCOMPLETE RUN"));
    assert!(report::table(&s).contains("INCOMPLETE"));
    let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 600 + p.jobs_received);
}

#[test]
fn a_run_of_chosen_scenarios_is_complete_and_reports_only_those() {
    let tmp = tempfile::tempdir().unwrap();
    let src = SyntheticSource { jobs: 40, seed: 7, line_delay: Duration::ZERO };
    let mut scenarios = wcet::default_scenarios(Duration::from_secs(60), |s| Some(synthetic_layout(s)));
    scenarios.retain(|p| p.name != "shared");
    let plan = Plan {
        description_file: PathBuf::from("workloads/configs/test.toml"),
        description_text: DESCRIPTION.into(),
        scenarios,
        out_root: tmp.path().to_path_buf(),
        options: Options::default(),
    };
    let done = wcet::run(&src, &plan).unwrap();
    assert!(done.summary.complete);
    assert!(done.summary.scenarios.shared.is_none());
    assert_eq!(done.summary.scenarios.alone.as_ref().unwrap().jobs_received, 40);
    assert_eq!(done.summary.scenarios.partitioned.as_ref().unwrap().status, "complete");
    // Dropping a planned scenario's console from the capture makes it incomplete.
    let cap = damaged(&done.dir, &tmp.path().join("cut"), "alone", |_| String::new());
    let s = report::build(&cap, &tmp.path().join("cut-report"), &Options::default()).unwrap();
    assert!(!s.complete);
}

/// A record line with a valid checksum for a header of another scenario.
fn header_line(scenario: &str) -> String {
    let mut s = String::new();
    let h = Header { scenario, mode: "tcg", tsc_hz: 2_000_000_000, pmc: PmcSet::NONE, tasks: 1 };
    Writer::begin(&mut s, &h).unwrap();
    s.trim_end().to_string()
}

/// `body` (a record line up to its checksum) with its checksum: a line
/// that passes the line check but says something wrong.
fn signed(body: &str) -> String {
    format!("{body} *{:08x}", crc32fast::hash(body.as_bytes()))
}

/// Record line `l` with field `i` (after the prefix and kind) set to `v`, signed again.
fn with_field(l: &str, i: usize, v: &str) -> String {
    let body = l.rsplit_once(" *").unwrap().0;
    let mut f: Vec<&str> = body.split(' ').collect();
    f[i + 2] = v;
    signed(&f.join(" "))
}

#[test]
fn corrupted_capture_streams_each_give_their_specific_error() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(tmp.path(), 200);
    let console = std::fs::read_to_string(run.join("capture/alone.console.log")).unwrap();
    let index = |kind: &str| -> Vec<usize> {
        console
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with(&format!("@prism-rec {kind} ")))
            .map(|(i, _)| i)
            .collect()
    };
    let (j, h, e) = (index("J"), index("H")[0], index("E")[0]);
    // The problem names the console file and, for a line, its number.
    let at = |i: usize, what: &str| format!("alone.console.log: line {}: {what}", i + 1);
    type Mutation = Box<dyn Fn(&mut Vec<Vec<u8>>)>;
    let set = |i: usize, f: fn(&str) -> String| -> Mutation {
        Box::new(move |l: &mut Vec<Vec<u8>>| l[i] = f(std::str::from_utf8(&l[i]).unwrap()).into_bytes())
    };
    // (what, mutation, words of the problem, jobs the report still holds)
    let cases: Vec<(&str, Mutation, String, usize)> = vec![
        (
            "flipped digit",
            set(j[10], |l| {
                let at = l.find(" 0 0 ").unwrap_or(20);
                let mut l = l.to_string();
                l.replace_range(at..at + 3, " 9 ");
                l
            }),
            at(j[10], "record fails its checksum (dropped)"),
            199,
        ),
        (
            "console text inside a record line",
            set(j[7], |l| format!("{}kernel: tick{}", &l[..40], &l[40..])),
            at(j[7], "record fails its checksum (dropped)"),
            199,
        ),
        (
            "bytes that are not UTF-8 in a record line",
            {
                let i = j[8];
                Box::new(move |l: &mut Vec<Vec<u8>>| l[i][30] = 0xff)
            },
            at(j[8], "record fails its checksum (dropped)"),
            199,
        ),
        (
            "wrong magic",
            set(j[9], |l| l.replacen("@prism-rec", "@prism-rek", 1)),
            "alone.console.log: task matmul: 1 job(s) missing: 9".into(),
            199,
        ),
        (
            "lost line",
            {
                let i = j[42];
                Box::new(move |l: &mut Vec<Vec<u8>>| drop(l.remove(i)))
            },
            "1 job(s) missing: 42".into(),
            199,
        ),
        (
            "repeated line",
            {
                let i = j[5];
                Box::new(move |l: &mut Vec<Vec<u8>>| l.insert(i + 1, l[i].clone()))
            },
            at(j[5] + 1, "duplicate of job 5 of task matmul"),
            200,
        ),
        (
            "job of a task no task line names",
            set(j[11], |l| with_field(l, 0, "9")),
            at(j[11], "job of unknown task 9 (dropped)"),
            199,
        ),
        (
            "job number beyond the task's count",
            set(j[12], |l| with_field(l, 1, "500")),
            at(j[12], "job 500 of task matmul, which has jobs 0..200 (dropped)"),
            199,
        ),
        (
            "TSC going backwards",
            set(j[13], |l| with_field(l, 4, "1")),
            at(j[13], "job 13 of task matmul: TSC not monotone"),
            200,
        ),
        (
            "cut before trailer",
            {
                let i = j[150];
                Box::new(move |l: &mut Vec<Vec<u8>>| l.truncate(i))
            },
            format!("stream truncated: no trailer after the last record (line {})", j[149] + 1),
            150,
        ),
        (
            "trailer counts another number of jobs",
            set(e, |l| with_field(l, 0, "201")),
            at(e, "trailer counts 201 job record(s), 200 arrived"),
            200,
        ),
        (
            "wrong format version",
            set(h, |l| with_field(l, 0, "2")),
            at(h, "record format version 2, this reader knows 1 (run skipped)"),
            0,
        ),
        (
            "wrong scenario header",
            Box::new(move |l: &mut Vec<Vec<u8>>| l[h] = header_line("shared").into_bytes()),
            "header mismatch: run of scenario \"shared\", expected \"alone\"".into(),
            200,
        ),
        (
            "reordered lines",
            {
                let (a, b) = (j[3], j[4]);
                Box::new(move |l: &mut Vec<Vec<u8>>| l.swap(a, b))
            },
            at(e, "trailer checksum does not match the records"),
            200,
        ),
        (
            "lost header",
            Box::new(move |l: &mut Vec<Vec<u8>>| drop(l.remove(h))),
            "records without a run header".into(),
            200,
        ),
        (
            "no records at all",
            Box::new(|l: &mut Vec<Vec<u8>>| *l = vec![b"kernel panic".to_vec()]),
            "alone.console.log: no job records".into(),
            0,
        ),
        ("empty console", Box::new(|l: &mut Vec<Vec<u8>>| l.clear()), "alone.console.log: no job records".into(), 0),
    ];
    let csv_rows = |out: &Path, scenario: &str| {
        let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
        csv.lines().filter(|l| l.starts_with(&format!("{scenario},"))).count()
    };
    for (i, (name, f, want, kept)) in cases.iter().enumerate() {
        let cap = damaged(&run, &tmp.path().join(format!("case{i}")), "alone", |t| {
            let mut l: Vec<Vec<u8>> = t.lines().map(|x| x.as_bytes().to_vec()).collect();
            f(&mut l);
            l.join(&b'\n')
        });
        let out = tmp.path().join(format!("case{i}-report"));
        let s = report::build(&cap, &out, &Options::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let a = s.scenarios.alone.as_ref().unwrap();
        assert_ne!(a.status, "complete", "{name}");
        assert!(!s.complete, "{name}");
        assert!(a.problems.iter().any(|p| p.contains(want.as_str())), "{name}: want {want:?} in {:?}", a.problems);
        // What arrived is still in the report, and the other scenarios are whole.
        assert_eq!((a.jobs_received, csv_rows(&out, "alone")), (*kept, *kept), "{name}: {:?}", a.problems);
        assert_eq!(csv_rows(&out, "shared"), 200, "{name}");
        assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("**INCOMPLETE RUN**"), "{name}");
    }
    // Console output between the records (even bytes that are not UTF-8, and
    // text that almost looks like a record) is no error: the run is complete.
    let cap = damaged(&run, &tmp.path().join("noise"), "alone", |t| {
        let mut out = Vec::new();
        for l in t.lines() {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\nts-load: \xff\xfe spinning\n@prism-re J 0 0\n");
        }
        out
    });
    let s = report::build(&cap, &tmp.path().join("noise-report"), &Options::default()).unwrap();
    let a = s.scenarios.alone.as_ref().unwrap();
    assert_eq!((a.status.as_str(), a.jobs_received), ("complete", 200), "{:?}", a.problems);
}

#[test]
fn bad_capture_folders_name_the_file_and_the_place() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(tmp.path(), 50);
    let copy = |name: &str| {
        let d = tmp.path().join(name);
        damaged(&run, &d, "alone", str::to_string);
        d
    };
    let err = |d: &Path| format!("{:#}", capture::load(d).unwrap_err());
    let d = copy("badjson");
    std::fs::write(d.join("run.json"), "{\"schema\": \"prism-wcet-capture/1\",\n \"description\": 3}").unwrap();
    let e = err(&d);
    assert!(e.contains("run.json") && e.contains("line 2"), "{e}");

    let d = copy("traversal");
    let t = std::fs::read_to_string(d.join("run.json")).unwrap();
    std::fs::write(d.join("run.json"), t.replace("\"alone.console.log\"", "\"../../etc/passwd\"")).unwrap();
    assert!(err(&d).contains("must be a plain name"), "{}", err(&d));

    let d = copy("unknown");
    let t = std::fs::read_to_string(d.join("run.json")).unwrap();
    std::fs::write(d.join("run.json"), t.replacen("\"name\": \"alone\"", "\"name\": \"lonely\"", 1)).unwrap();
    assert!(err(&d).contains("unknown scenario \"lonely\""), "{}", err(&d));

    let d = copy("noconsole");
    std::fs::remove_file(d.join("shared.console.log")).unwrap();
    let cap = capture::load(&d).unwrap();
    let e =
        format!("{:#}", report::build(&cap, &tmp.path().join("noconsole-report"), &Options::default()).unwrap_err());
    assert!(e.contains("shared.console.log") && e.contains("cannot read"), "{e}");

    let d = copy("badcsv");
    let f = d.join("alone.cache-model.csv");
    let t = std::fs::read_to_string(&f).unwrap();
    let mut l: Vec<&str> = t.lines().collect();
    l[3] = "2,1,oops";
    std::fs::write(&f, l.join("\n")).unwrap();
    let s = report::build(&capture::load(&d).unwrap(), &tmp.path().join("badcsv-report"), &Options::default()).unwrap();
    let a = s.scenarios.alone.unwrap();
    assert!(a.problems.iter().any(|p| p.starts_with("alone.cache-model.csv:4: 3 fields")), "{:?}", a.problems);
    // One job lost its model row, so the report falls back to the TSC metric.
    assert_eq!(s.metric.name, "tsc_cycles");
}

#[test]
fn a_report_never_overwrites_or_writes_into_an_existing_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(tmp.path(), 50);
    let cap = capture::load(&run).unwrap();
    let before = tree(&run);
    let e = format!("{:#}", report::build(&cap, &run, &Options::default()).unwrap_err());
    assert!(e.contains("exists and holds files; a report is never written into a folder"), "{e}");
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    assert!(report::build(&cap, &other, &Options::default()).is_err());
    assert_eq!(std::fs::read_to_string(other.join("keep.txt")).unwrap(), "mine");
    assert_eq!(tree(&run), before);
    // An empty folder holds nothing to overwrite.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    report::build(&cap, &empty, &Options::default()).unwrap();
    assert!(empty.join("report.html").is_file() && empty.join("capture/run.json").is_file());
    // A taken timestamp gets a suffix; a real folder called `latest` is not replaced.
    let stamp = run.file_name().unwrap().to_str().unwrap();
    let taken = tmp.path().join("test");
    assert_eq!(report::new_folder(&taken, stamp).unwrap(), taken.join(format!("{stamp}-2")));
    assert_eq!(report::new_folder(&taken, stamp).unwrap(), taken.join(format!("{stamp}-3")));
    assert_eq!(tree(&run), before);
    let d = tmp.path().join("x/1");
    std::fs::create_dir_all(tmp.path().join("x/latest")).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    assert!(report::link_latest(&d).is_err());
}

#[test]
fn a_capture_from_a_serial_file_finds_the_three_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(tmp.path(), 60);
    let mut serial = String::from("GRUB\n");
    for s in ["partitioned", "alone", "shared"] {
        serial.push_str(&std::fs::read_to_string(run.join(format!("capture/{s}.console.log"))).unwrap());
        serial.push_str("reboot\n");
    }
    let (runs, notes) = capture::split_serial(&serial);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(runs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["alone", "shared", "partitioned"]);
    for (n, text) in &runs {
        let st = record::read::read(text);
        assert_eq!(st.runs.len(), 1, "{n}");
        assert!(st.runs[0].is_complete() && st.runs[0].scenario() == Some(n.as_str()));
    }
    let f = tmp.path().join("serial.log");
    std::fs::write(&f, &serial).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(["capture", "--serial"])
        .arg(&f)
        .arg("--out-root")
        .arg(tmp.path().join("hw"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&tmp.path().join("hw/capture/latest"));
    assert_eq!(s["platform"]["mode"], "hardware");
    assert_eq!(s["metric"]["name"], "tsc_cycles");
    assert_eq!(s["scenarios"]["alone"]["status"], "complete");
    assert!(tmp.path().join("hw/capture/latest/capture/serial.log").is_file());
}

#[test]
fn cli_subcommands_have_help_and_compare_reads_two_reports() {
    let prism = env!("CARGO_BIN_EXE_prism");
    for sub in ["report", "capture", "compare", "wcet"] {
        let o = std::process::Command::new(prism).args([sub, "--help"]).output().unwrap();
        assert!(o.status.success(), "{sub} --help");
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage: prism"), "{sub}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = synthetic_run(tmp.path(), 220);
    let b = synthetic_run(tmp.path(), 220);
    let t = report::compare(&a, &b).unwrap();
    assert!(t.contains("shared/matmul") && t.contains("1.000"), "{t}");
    let o = std::process::Command::new(prism).arg("report").arg(&a).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("isolation (matmul, max)"));
}
