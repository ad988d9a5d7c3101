//! The Python side of `versus`: runs `simulations/versus/pybench.py` with a
//! Python that has the `kademlia` package, hands it the plan on stdin and
//! reads its [`SideResult`] from stdout, killing it if it outlives the bound.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::plan::{Plan, SideResult};

/// The benchmark script, beside this crate's sources.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("versus").join("pybench.py")
}

/// The interpreter: `KADMESH_PYTHON` if set (the test script exports it),
/// else the workspace's `.venv`.
pub fn default_python() -> PathBuf {
    match std::env::var_os("KADMESH_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".venv").join("bin").join("python"),
    }
}

/// How often the child is polled while waiting for it.
const POLL: Duration = Duration::from_millis(100);

/// Runs the plan on Python nodes, with the script's progress lines on our
/// stderr when `progress`; the error is one printable line.
pub fn run(python: &Path, plan: &Plan, bound: Duration, progress: bool) -> Result<SideResult, String> {
    if !python.exists() {
        return Err(format!(
            "no Python at {}: run scripts/test once (it creates .venv with kademlia) or pass --python / set KADMESH_PYTHON",
            python.display()
        ));
    }
    let input = serde_json::to_vec(plan).map_err(|e| format!("encoding the plan: {e}"))?;
    let mut child = Command::new(python)
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if progress { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    let mut stdin = child.stdin.take().ok_or("no stdin pipe to the Python process")?;
    let mut stdout = child.stdout.take().ok_or("no stdout pipe from the Python process")?;
    // The reader runs on its own thread so a full pipe never blocks the wait.
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    stdin.write_all(&input).map_err(|e| format!("writing the plan to Python: {e}"))?;
    drop(stdin);
    let polls = (bound.as_secs_f64() / POLL.as_secs_f64()).ceil() as u64;
    let mut status = None;
    for _ in 0..polls {
        if let Some(s) = child.try_wait().map_err(|e| format!("waiting for Python: {e}"))? {
            status = Some(s);
            break;
        }
        std::thread::sleep(POLL);
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("the Python side did not finish within {:.0} s; killed it", bound.as_secs_f64()));
    };
    let out = reader.join().map_err(|_| "the stdout reader panicked")?.map_err(|e| format!("reading Python: {e}"))?;
    if !status.success() {
        return Err(format!("{} {} failed ({status})", python.display(), script().display()));
    }
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("the Python side printed no valid result ({e}): {last:.200}"))
}
