//! `report.html` in a real browser: headless Chromium (Debian's `chromium`,
//! installed by `just setup`) loads the report of a synthetic run and every
//! image must decode (`naturalWidth > 0`) with no error event.
//!
//! Ignored by a plain `cargo test` (it needs the browser); `just test` runs
//! it with `--ignored`. `PRISM_CHROMIUM` names another binary.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wcet_reports::report::Options;
use wcet_reports::source::{synthetic_layout, SyntheticSource};
use wcet_reports::wcet::{self, Plan};

/// Appended to a copy of the report: records in the DOM whether every image
/// decoded and whether any error event fired (resource errors included).
const CHECK: &str = r#"<script>
window.addEventListener('error', function (e) {
  document.body.setAttribute('data-error', String(e.message || (e.target && e.target.tagName) || e));
}, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0); });
  document.body.setAttribute('data-check', (imgs.length > 0 && bad.length === 0) ? 'ok ' + imgs.length : 'bad ' + bad.length + '/' + imgs.length);
});
</script>
"#;

#[test]
#[ignore = "needs chromium (just setup installs it); just test runs it"]
fn report_html_renders_its_plots_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let src = SyntheticSource { jobs: 300, seed: 3, line_delay: Duration::ZERO };
    let plan = Plan {
        description_file: PathBuf::from("default.toml"),
        description_text: String::new(),
        scenarios: wcet::default_scenarios(Duration::from_secs(60), |s| Some(synthetic_layout(s))),
        out_root: tmp.path().to_path_buf(),
        options: Options::default(),
    };
    let dir = wcet::run(&src, &plan).unwrap().dir;
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let images = html.matches("<img ").count();
    assert!(images >= 7, "{images} images");
    let page = tmp.path().join("check.html");
    std::fs::write(&page, html.replace("</body>", &format!("{CHECK}</body>"))).unwrap();

    let browser = std::env::var("PRISM_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tmp.path().join("profile");
    // The DOM is larger than a pipe holds: chromium writes it to a file.
    let dump = tmp.path().join("dom.html");
    let mut child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::from(std::fs::File::create(&dump).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(tmp.path().join("stderr.txt")).unwrap()))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {browser} ({e}); run `just setup`"));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{browser} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let dom = std::fs::read_to_string(&dump).unwrap();
    let stderr = std::fs::read_to_string(tmp.path().join("stderr.txt")).unwrap_or_default();
    assert!(!dom.contains("data-error=\""), "error in the page: {dom:.2000}");
    let want = format!("data-check=\"ok {images}\"");
    assert!(dom.contains(&want), "want {want}; browser stderr: {}\nDOM head: {:.1500}", stderr, dom);
}
