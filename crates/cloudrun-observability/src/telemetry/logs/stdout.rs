//! stdout, written in batches by one thread, so that a request never makes a
//! `write(2)` for its log line.
//!
//! A `write(2)` to the stdout pipe per line cost more than formatting it:
//! each one wakes the reader on the other end (Cloud Run's logging agent).
//! Here a request only copies its line into a bounded queue (a byte buffer
//! under a mutex); one writer thread takes the whole queue at a time and
//! writes it with one `write(2)`, then offers each of its lines to the tee
//! (the embedded emulator's log store).
//!
//! Guarantees:
//! - Nothing is dropped. When the queue is full ([`QUEUE_BYTES`]) the
//!   thread logging waits for the writer: backpressure, never loss.
//! - While lines keep coming, the writer writes a batch every [`LINGER`],
//!   woken by its own timer: a busy service writes a batch per few
//!   milliseconds rather than a line at a time, and its requests never wake
//!   the writer (only the first line after a quiet [`LINGER`] does).
//!   [`flush`] cuts the wait short and returns once every line queued
//!   before it is written. The service flushes after SIGTERM (before it
//!   exits), in the panic hook, and when [`FlushOnDrop`] is dropped; only
//!   SIGKILL or an abort can lose the lines still queued, at most
//!   [`LINGER`]'s worth.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::telemetry::logs::format::LineOutput;
use crate::telemetry::logs::LineSink;

/// The most bytes the queue holds (~400 request lines); past it, logging
/// waits for the writer.
pub const QUEUE_BYTES: usize = 256 * 1024;

/// How long the writer lets lines gather after the first of a batch.
pub const LINGER: Duration = Duration::from_millis(2);

/// How long a flush waits for the writer at most (a stdout nobody reads
/// must not hang the exit forever).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The process's batched stdout, once [`BatchedStdout::install`] ran.
static INSTALLED: OnceLock<BatchedStdout> = OnceLock::new();

/// A handle on the queue; cheap to clone.
#[derive(Clone)]
pub struct BatchedStdout {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for lines (or a flush request).
    lines_queued: Condvar,
    /// Loggers waiting for room and flushes waiting for their lines wait
    /// here; the writer wakes them after each batch.
    batch_written: Condvar,
    writer_thread: OnceLock<ThreadId>,
}

#[derive(Default)]
struct State {
    queue: Vec<u8>,
    /// Lines in `queue`.
    queued: usize,
    /// Lines ever queued, and ever written: a flush waits until `written`
    /// reaches the `queued_total` it saw.
    queued_total: u64,
    written: u64,
    /// The writer sleeps on `lines_queued` with nothing to do: the next line
    /// must wake it. Otherwise no logger pays for a wake-up.
    writer_idle: bool,
    flush_requested: bool,
    /// Threads waiting on `batch_written`, so that the writer calls
    /// `notify_all` (a system call) only when someone waits.
    waiting: usize,
    stats: QueueStats,
}

/// What the queue has seen, for the benchmark's "how many lines can be
/// lost" window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub lines_written: u64,
    pub batches_written: u64,
    /// The most lines ever in the queue at once.
    pub max_queued_lines: usize,
    pub max_queued_bytes: usize,
    /// How often a logger waited for room (backpressure).
    pub full_waits: u64,
    /// How often a logger woke the idle writer: once per quiet spell, not
    /// once per batch.
    pub logger_wakeups: u64,
}

impl BatchedStdout {
    /// Starts the writer thread on stdout, teeing every line to `tee`, and
    /// makes it the process's ([`flush`] flushes it). Call once.
    pub fn install(tee: Option<Arc<dyn LineSink>>) -> Self {
        let queue = Self::start(std::io::stdout(), tee);
        let _ = INSTALLED.set(queue.clone());
        queue
    }

    /// Starts a writer thread writing to `sink` (stdout, or a buffer in
    /// tests).
    pub fn start(
        mut sink: impl std::io::Write + Send + 'static,
        tee: Option<Arc<dyn LineSink>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Vec::with_capacity(64 * 1024),
                ..State::default()
            }),
            lines_queued: Condvar::new(),
            batch_written: Condvar::new(),
            writer_thread: OnceLock::new(),
        });
        let writer = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(&mut sink, tee.as_deref()));
        if let Ok(thread) = &thread {
            let _ = shared.writer_thread.set(thread.thread().id());
        }
        Self { shared }
    }

    /// Writes every line queued so far, waiting at most `timeout`; `false`
    /// when that was not enough.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.shared.flush(timeout)
    }

    pub fn stats(&self) -> QueueStats {
        self.shared.lock().stats
    }
}

impl LineOutput for BatchedStdout {
    fn write_line(&self, line: &[u8]) {
        self.shared.queue_line(line);
    }
}

/// Flushes the process's batched stdout (see [`BatchedStdout::flush`]);
/// `true` when there is none.
pub fn flush(timeout: Duration) -> bool {
    INSTALLED.get().is_none_or(|queue| queue.flush(timeout))
}

/// What the process's queue has seen, if it has one.
pub fn stats() -> Option<QueueStats> {
    INSTALLED.get().map(BatchedStdout::stats)
}

/// Flushes the process's batched stdout when dropped: hold one for as long
/// as the process serves, so that every way out of it (an error included)
/// writes what is queued.
#[must_use = "flushes when dropped"]
pub struct FlushOnDrop;

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        flush(FLUSH_TIMEOUT);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A logger that panicked holding the lock left the queue whole
        // (it only appends complete lines), so go on with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn on_writer_thread(&self) -> bool {
        self.writer_thread.get() == Some(&std::thread::current().id())
    }

    fn queue_line(&self, line: &[u8]) {
        let mut state = self.lock();
        // Backpressure: wait for room, unless the queue is empty (a line
        // larger than the queue still goes) or this is the writer itself (the
        // tee logging), which nobody else would ever make room for.
        if state.queue.len() + line.len() > QUEUE_BYTES && !self.on_writer_thread() {
            state.stats.full_waits += 1;
            state.flush_requested = true;
            self.lines_queued.notify_one();
            while !state.queue.is_empty() && state.queue.len() + line.len() > QUEUE_BYTES {
                state.waiting += 1;
                state = self
                    .batch_written
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state.waiting -= 1;
            }
        }
        state.queue.extend_from_slice(line);
        state.queued += 1;
        state.queued_total += 1;
        let State {
            stats,
            queued,
            queue,
            ..
        } = &mut *state;
        stats.max_queued_lines = stats.max_queued_lines.max(*queued);
        stats.max_queued_bytes = stats.max_queued_bytes.max(queue.len());
        if state.writer_idle {
            state.writer_idle = false;
            state.stats.logger_wakeups += 1;
            self.lines_queued.notify_one();
        } else if state.queue.len() >= QUEUE_BYTES / 2 && !state.flush_requested {
            // Half full while the writer lingers: no need to wait longer.
            state.flush_requested = true;
            self.lines_queued.notify_one();
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        if self.on_writer_thread() {
            return false;
        }
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let target = state.queued_total;
        while state.written < target {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state.flush_requested = true;
            self.lines_queued.notify_one();
            state.waiting += 1;
            state = self
                .batch_written
                .wait_timeout(state, left)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(state, _)| state);
            state.waiting -= 1;
        }
        true
    }

    /// The writer thread, forever (the process's exit ends it): asleep
    /// until a line comes, then a batch every [`LINGER`] for as long as
    /// lines keep coming. A busy service thus wakes it once per batch, on
    /// its timer, and never from a request.
    fn run(&self, sink: &mut dyn std::io::Write, tee: Option<&dyn LineSink>) {
        let mut batch = Vec::with_capacity(64 * 1024);
        let mut state = self.lock();
        loop {
            while state.queue.is_empty() {
                state.writer_idle = true;
                state = self
                    .lines_queued
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            state.writer_idle = false;
            loop {
                if !state.flush_requested {
                    // Let lines gather; a flush or a half-full queue cuts
                    // this short.
                    state = self
                        .lines_queued
                        .wait_timeout(state, LINGER)
                        .map_or_else(|poisoned| poisoned.into_inner().0, |(state, _)| state);
                }
                state.flush_requested = false;
                if state.queue.is_empty() {
                    // A whole linger without a line: sleep until the next.
                    break;
                }
                std::mem::swap(&mut batch, &mut state.queue);
                let lines = std::mem::take(&mut state.queued);
                let upto = state.queued_total;
                drop(state);
                write_batch(&mut batch, sink, tee);
                state = self.lock();
                state.written = upto;
                state.stats.lines_written += lines as u64;
                state.stats.batches_written += 1;
                if state.waiting > 0 {
                    self.batch_written.notify_all();
                }
            }
        }
    }
}

/// Writes `batch` to `sink` and offers each of its lines to `tee`, then
/// empties it.
fn write_batch(batch: &mut Vec<u8>, sink: &mut dyn std::io::Write, tee: Option<&dyn LineSink>) {
    // A failed write (stdout closed) loses the batch; logging must not take
    // the service down with it.
    let _ = sink.write_all(batch).and_then(|()| sink.flush());
    if let Some(tee) = tee {
        for line in batch.split_inclusive(|&byte| byte == b'\n') {
            tee.offer_line(line);
        }
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that keeps what it is given.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Default)]
    struct Tee(Mutex<Vec<Vec<u8>>>);

    impl LineSink for Tee {
        fn offer_line(&self, line: &[u8]) {
            self.0.lock().unwrap().push(line.to_vec());
        }
    }

    #[test]
    fn a_flush_returns_once_every_line_is_written_and_teed() {
        let kept = Kept::default();
        let tee = Arc::new(Tee::default());
        let queue = BatchedStdout::start(kept.clone(), Some(tee.clone() as Arc<dyn LineSink>));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for n in 0..2_000 {
                        queue.write_line(format!("{{\"t\":{t},\"n\":{n}}}\n").as_bytes());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(queue.flush(Duration::from_secs(5)));
        let written = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 8_000);
        assert_eq!(tee.0.lock().unwrap().len(), 8_000);
        let stats = queue.stats();
        assert_eq!(stats.lines_written, 8_000);
        assert!(stats.max_queued_bytes <= QUEUE_BYTES, "{stats:?}");
    }

    #[test]
    fn a_steady_stream_of_lines_wakes_the_writer_once_not_per_batch() {
        let queue = BatchedStdout::start(Kept::default(), None);
        // A line every tenth of a linger: the writer never sees a quiet
        // linger, so after the first line only its own timer wakes it.
        for n in 0..400 {
            queue.write_line(format!("{{\"n\":{n}}}\n").as_bytes());
            std::thread::sleep(LINGER / 10);
        }
        assert!(queue.flush(Duration::from_secs(5)));
        let stats = queue.stats();
        assert_eq!(stats.lines_written, 400);
        // Some slack for a stalled machine; a wake per batch would be
        // about as many as the batches.
        assert!(
            stats.batches_written >= 10 && stats.logger_wakeups * 4 <= stats.batches_written,
            "{stats:?}"
        );
    }

    /// A sink that takes its time, as a slow reader of the pipe does.
    struct Slow(Kept);

    impl std::io::Write for Slow {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            self.0.write(buf)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_reader_makes_loggers_wait_and_loses_nothing() {
        let kept = Kept::default();
        let queue = BatchedStdout::start(Slow(kept.clone()), None);
        let line = vec![b'x'; 1023];
        for _ in 0..2_000 {
            let mut line = line.clone();
            line.push(b'\n');
            queue.write_line(&line);
        }
        assert!(queue.flush(Duration::from_secs(10)));
        assert_eq!(kept.0.lock().unwrap().len(), 2_000 * 1024);
        let stats = queue.stats();
        assert!(stats.full_waits > 0, "{stats:?}");
        assert!(stats.max_queued_bytes <= QUEUE_BYTES, "{stats:?}");
    }
}
