//! The parent process: runs the cases in a child (this program with
//! `--worker`), prints and judges what the child reports, and when the
//! child dies names the step or case that killed it, then goes on with the
//! remaining cases in a new child. Writes the summary and the JUnit report
//! whatever happened.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ExitCode, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use strata_conformance::{
    Case, CaseOutcome, ConformanceConfig, Expectations, Outcome, Report, RunError, Suite, Verdict,
};

use crate::{
    args::Args,
    protocol::{Loaded, Message},
    worker,
};

/// Lines of the child's stderr kept for a crash report.
const STDERR_TAIL: usize = 12;

/// The expectations of a run: the config's `[conformance]` table and every
/// `--expect` file, checked against the cases that exist.
fn expectations(args: &Args) -> Result<Expectations, RunError> {
    let error = |step: &str, e: &dyn std::fmt::Display| RunError {
        step: step.to_string(),
        message: e.to_string(),
    };
    let config = ConformanceConfig::read(&args.config).map_err(|e| error("config", &e))?;
    let mut all = config.expectations;
    for file in &args.expect {
        let more = Expectations::from_file(file).map_err(|e| error("expectations", &e))?;
        all = all.merge(more).map_err(|e| error("expectations", &e))?;
    }
    let ids: Vec<String> = strata_conformance::cases(&Suite::ALL)
        .iter()
        .map(Case::id)
        .collect();
    all.check_ids(ids.iter().map(String::as_str))
        .map_err(|e| error("expectations", &e))?;
    Ok(all)
}

/// Runs the suites as `args` say; the process's exit code.
pub(crate) fn run(args: Args) -> ExitCode {
    let mut report = Report::default();
    let mut loaded: Option<Loaded> = None;
    match expectations(&args) {
        Err(e) => report.error = Some(e),
        Ok(expectations) => {
            let cases = strata_conformance::select(&args.suites, args.filter.as_deref());
            if cases.is_empty() {
                report.error = Some(RunError {
                    step: "cases".into(),
                    message: format!(
                        "no case of the {} suite(s) matches --filter {:?}",
                        args.suites
                            .iter()
                            .map(|s| s.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                        args.filter.as_deref().unwrap_or("")
                    ),
                });
            } else {
                supervise(&args, &cases, &expectations, &mut report, &mut loaded);
            }
        }
    }
    finish(&args, &report, loaded.as_ref())
}

/// Runs `cases` in child processes until each has an outcome or the run
/// stops, filling `report`.
fn supervise(
    args: &Args,
    cases: &[Case],
    expectations: &Expectations,
    report: &mut Report,
    loaded: &mut Option<Loaded>,
) {
    let mut remaining: VecDeque<&Case> = cases.iter().collect();
    while !remaining.is_empty() {
        let ids: Vec<String> = remaining.iter().map(|c| c.id()).collect();
        let mut child = match spawn(args, &ids) {
            Ok(c) => c,
            Err(e) => {
                report.error = Some(RunError {
                    step: "start".into(),
                    message: format!("cannot start the child process: {e}"),
                });
                return;
            }
        };
        let end = watch(args, &mut child, |m| match m {
            Message::Loaded(l) if loaded.is_none() => {
                println!(
                    "strata-conformance {}: plugin {} {} (plugin-api {}), contracts [{}]",
                    env!("CARGO_PKG_VERSION"),
                    l.name,
                    l.version,
                    l.api_version,
                    l.contracts.join(", ")
                );
                *loaded = Some(l);
            }
            Message::Done { id, outcome, ms } => {
                let outcome: Outcome = outcome.into();
                let done = CaseOutcome {
                    verdict: expectations.verdict(&id, &outcome),
                    id,
                    outcome,
                    duration: Duration::from_millis(ms),
                };
                print_case(&done);
                remaining.retain(|c| c.id() != done.id);
                report.cases.push(done);
            }
            _ => {}
        });
        match end {
            End::Finished => {
                // Cases the child did not report (it should report all).
                for c in remaining.drain(..) {
                    let outcome = Outcome::Failed(
                        "the child process finished without running this case".into(),
                    );
                    report
                        .cases
                        .push(case_outcome(c, outcome, Duration::ZERO, expectations));
                }
                return;
            }
            End::Stopped(e) => {
                report.error = Some(e);
                return;
            }
            End::Died {
                how,
                during,
                stderr,
            } => match during {
                During::Case(id, started) => {
                    let message = format!(
                        "the plugin killed the process during this case ({how}){}",
                        last_words(&stderr)
                    );
                    if let Some(pos) = remaining.iter().position(|c| c.id() == id) {
                        let c = remaining.remove(pos).expect("found");
                        let done = case_outcome(
                            c,
                            Outcome::Failed(message),
                            started.elapsed(),
                            expectations,
                        );
                        print_case(&done);
                        report.cases.push(done);
                    }
                    // Go on with the rest in a new child.
                }
                During::Step(step) => {
                    report.error = Some(RunError {
                        message: format!(
                            "the plugin killed the process in `{step}` ({how}){}",
                            last_words(&stderr)
                        ),
                        step,
                    });
                    return;
                }
            },
        }
    }
}

fn case_outcome(c: &Case, outcome: Outcome, duration: Duration, e: &Expectations) -> CaseOutcome {
    CaseOutcome {
        id: c.id(),
        verdict: e.verdict(&c.id(), &outcome),
        outcome,
        duration,
    }
}

fn last_words(stderr: &[String]) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; its last lines on stderr:\n{}", stderr.join("\n"))
    }
}

fn spawn(args: &Args, ids: &[String]) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .arg(worker::FLAG)
        .arg(&args.plugin)
        .arg(&args.config)
        .arg(args.timeout_secs.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    for id in ids {
        writeln!(stdin, "{id}")?;
    }
    drop(stdin);
    Ok(child)
}

/// What the child was doing when it died.
enum During {
    /// Calling an entry point of the plugin (`load`, `manifest`, `open`, …).
    Step(String),
    /// Running a case (its id, and when it started).
    Case(String, Instant),
}

/// How a child's run ended.
enum End {
    /// Every case ran.
    Finished,
    /// The child reported a reason to stop (a plugin that cannot load).
    Stopped(RunError),
    /// The child died: how, doing what, its last words.
    Died {
        how: String,
        during: During,
        stderr: Vec<String>,
    },
}

/// Reads the child's messages until it exits, handing each to `on`;
/// forwards its stderr (and whatever the plugin printed) to ours; kills a
/// child that says nothing for longer than two case time limits.
fn watch(args: &Args, child: &mut Child, mut on: impl FnMut(Message)) -> End {
    let (tx, rx) = mpsc::channel::<Message>();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            match Message::parse(&line) {
                Some(m) => {
                    if tx.send(m).is_err() {
                        break;
                    }
                }
                // Something the plugin printed: keep it, out of the way.
                None => eprintln!("{line}"),
            }
        }
    });
    let tail2 = tail.clone();
    let errors = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if is_backtrace(&line) {
                continue;
            }
            let mut t = tail2.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() == STDERR_TAIL {
                t.pop_front();
            }
            t.push_back(line);
        }
    });
    let quiet_limit = Duration::from_secs(args.timeout_secs.saturating_mul(2).saturating_add(30));
    let mut step = String::from("start");
    let mut case: Option<(String, Instant)> = None;
    let mut last = Instant::now();
    let mut finished = false;
    let mut stopped = None;
    let mut killed = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => {
                last = Instant::now();
                match &m {
                    Message::Step(s) => step = s.clone(),
                    Message::Start(id) => case = Some((id.clone(), Instant::now())),
                    Message::Done { .. } => case = None,
                    Message::Finished => finished = true,
                    Message::Error { step, message } => {
                        stopped = Some(RunError {
                            step: step.clone(),
                            message: message.clone(),
                        })
                    }
                    _ => {}
                }
                on(m);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if last.elapsed() > quiet_limit && !killed {
                    // Ours to end: the child this run started.
                    let _ = child.kill();
                    killed = true;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait();
    let _ = reader.join();
    let _ = errors.join();
    let stderr: Vec<String> = tail
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();
    if finished {
        return End::Finished;
    }
    if let Some(e) = stopped {
        return End::Stopped(e);
    }
    let how = match (&status, killed) {
        (_, true) => format!(
            "it was stopped after {} s without a word from it",
            quiet_limit.as_secs()
        ),
        (Ok(s), false) => describe(s),
        (Err(e), false) => format!("its exit status is unknown: {e}"),
    };
    End::Died {
        how,
        during: match case {
            Some((id, t)) => During::Case(id, t),
            None => During::Step(step),
        },
        stderr,
    }
}

/// Whether a stderr line is part of a backtrace (kept out of the crash
/// report, which quotes the lines that say what happened).
fn is_backtrace(line: &str) -> bool {
    let t = line.trim_start();
    let frame = t
        .split_once(':')
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    frame
        || t.starts_with("at ")
        || t.starts_with("stack backtrace:")
        || t.starts_with("note: Some details are omitted")
        || t.starts_with("note: run with `RUST_BACKTRACE=1`")
}

/// "killed by signal 6 (SIGABRT)", "exit code 134".
fn describe(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                4 => " (SIGILL)",
                6 => {
                    " (SIGABRT: an abort, e.g. a panic that could not unwind or a failed allocation)"
                }
                7 => " (SIGBUS)",
                8 => " (SIGFPE)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV: invalid memory access)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("it exited with code {code}"),
        None => format!("it ended: {status}"),
    }
}

fn indent(s: &str) -> String {
    s.replace('\n', "\n    ")
}

fn print_case(c: &CaseOutcome) {
    let ms = c.duration.as_millis();
    let help = || {
        strata_conformance::find(&c.id)
            .map(|case| format!("\n    help: {}", case.help))
            .unwrap_or_default()
    };
    match &c.verdict {
        Verdict::Pass => println!("PASS {} ({ms} ms)", c.id),
        Verdict::Skip => println!("SKIP {}: {}", c.id, c.outcome.message()),
        Verdict::Fail => println!(
            "FAIL {} ({ms} ms): {}{}",
            c.id,
            indent(c.outcome.message()),
            help()
        ),
        Verdict::ExpectedFailure { reason } => println!(
            "XFAIL {} ({ms} ms): expected to fail: {reason}\n    it failed with: {}",
            c.id,
            indent(c.outcome.message().lines().next().unwrap_or(""))
        ),
        other => println!(
            "{} {} ({ms} ms): {}{}",
            other.label(),
            c.id,
            indent(&other.note().unwrap_or_default()),
            if c.outcome.message().is_empty() {
                String::new()
            } else {
                format!("\n    ({})", indent(c.outcome.message()))
            }
        ),
    }
}

/// Prints the end of the run, writes the JUnit report, and picks the exit code.
fn finish(args: &Args, report: &Report, loaded: Option<&Loaded>) -> ExitCode {
    if let Some(e) = &report.error {
        eprintln!("error: the run stopped at `{}`: {}", e.step, e.message);
    }
    println!("{}", report.summary());
    let mut code = if report.error.is_some() {
        2
    } else if report.failed() > 0 {
        1
    } else {
        0
    };
    if let Some(path) = &args.junit {
        let name = loaded
            .map(|l| l.name.clone())
            .unwrap_or_else(|| stem(&args.plugin));
        if let Err(e) = std::fs::write(path, report.junit(&format!("strata-conformance {name}"))) {
            eprintln!(
                "error: cannot write the JUnit report to {}: {e}",
                path.display()
            );
            if code == 0 || code == 1 {
                code = 3;
            }
        }
    }
    ExitCode::from(code)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
