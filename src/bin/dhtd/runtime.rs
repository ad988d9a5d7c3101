//! The process's threads and allocator: how many tokio workers run the
//! node, and how many malloc arenas they may create.
//!
//! Each thread costs resident memory even when idle: the touched part of
//! its stack and, under glibc, a malloc arena of its own for every thread
//! that allocates (up to eight per core, each keeping freed memory for later
//! reuse). A node without HTTP is one task driving one socket, so it runs on
//! the main thread alone; with HTTP, requests may be served in parallel on
//! up to two workers. `--threads` overrides both choices.

/// Most worker threads chosen for a node with HTTP: the platform's volunteer
/// boxes have few cores, and the node's work is short requests.
const MAX_AUTO_WORKERS: usize = 2;

/// How many workers `--threads` asks for: the value itself when given,
/// else one without HTTP and one per core (at most [`MAX_AUTO_WORKERS`]) with it.
pub fn workers(threads: usize, http: bool, cores: usize) -> usize {
    match (threads, http) {
        (0, false) => 1,
        (0, true) => cores.clamp(1, MAX_AUTO_WORKERS),
        (n, _) => n,
    }
}

/// A runtime with `workers` threads: the current-thread scheduler for one
/// (the main thread runs every task; no extra thread), a multi-thread one
/// with that many workers above, and tokio's default (one per core) for 0.
pub fn build(workers: usize) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = match workers {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                b.worker_threads(n);
            }
            b
        }
    };
    builder.enable_all().build().map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Caps glibc's malloc arenas at `arenas` (one per worker thread is enough:
/// more only keeps more freed memory aside), unless `MALLOC_ARENA_MAX` is
/// set, which the operator's choice wins over. Call before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_malloc_arenas(arenas: usize) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let arenas = libc::c_int::try_from(arenas.max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt sets one tunable of glibc's allocator and takes no
    // pointers; a refused value (return 0) leaves the default in place.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
}

/// Other allocators have no such arenas.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_malloc_arenas(_arenas: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_http_gets_one_thread_and_with_http_one_per_core_up_to_two() {
        assert_eq!(workers(0, false, 16), 1);
        assert_eq!(workers(0, true, 1), 1);
        assert_eq!(workers(0, true, 2), 2);
        assert_eq!(workers(0, true, 16), 2);
        assert_eq!(workers(4, false, 1), 4, "--threads wins");
        assert_eq!(workers(1, true, 16), 1);
    }

    #[test]
    fn one_worker_is_the_current_thread_scheduler() {
        let rt = build(1).unwrap();
        assert_eq!(rt.handle().runtime_flavor(), tokio::runtime::RuntimeFlavor::CurrentThread);
        for n in [0, 2] {
            let rt = build(n).unwrap();
            assert_eq!(rt.handle().runtime_flavor(), tokio::runtime::RuntimeFlavor::MultiThread);
        }
    }
}
