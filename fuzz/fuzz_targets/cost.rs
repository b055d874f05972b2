//! Fuzz target `cost`: inputs that make a review expensive per byte. The bytes are a
//! Deployment's JSON in a review (see `checks::cost_review`); each run measures the answer's
//! size, the memory allocated at the peak and the time, per input byte, asserts the bounds in
//! `checks::COST_*`, and turns each doubling of a ratio into a new branch, so that libFuzzer
//! keeps (and mutates further) every input that costs more per byte than any before it. Each
//! new maximum is printed (`cost: ...`), so a run's log ends with the most expensive inputs
//! it found.

#![no_main]

#[path = "../../tests/fuzz_support/mod.rs"]
mod checks;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A distinct branch for each power of two `ratio` reaches (value profile needs no flag).
macro_rules! ladder {
    ($ratio:expr; $($bit:literal)*) => {{
        let r: u64 = $ratio;
        $( if r >> $bit != 0 { black_box($bit); } )*
    }};
}

static MAX_NS: AtomicU64 = AtomicU64::new(0);
static MAX_MEM: AtomicU64 = AtomicU64::new(0);
static MAX_OUT: AtomicU64 = AtomicU64::new(0);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let len = data.len().max(1) as u64;
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let started = Instant::now();
    let answer = checks::cost(data) as u64;
    let ns = started.elapsed().as_nanos() as u64;
    let memory = (PEAK.load(Ordering::Relaxed) - base) as u64;
    assert!(
        memory as usize <= checks::COST_MEMORY.0 + checks::COST_MEMORY.1 * data.len(),
        "a {len}-byte input took {memory} bytes of memory"
    );
    // Per byte, in 1/16ths so that small ratios still climb.
    let (ns_b, mem_b, out_b) = (ns * 16 / len, memory * 16 / len, answer * 16 / len);
    ladder!(ns_b; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30);
    ladder!(mem_b; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30);
    ladder!(out_b; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30);
    // Only inputs of some size: a 3-byte input at 10 µs is not a finding.
    if len >= 64 {
        for (max, value, what) in [
            (&MAX_NS, ns_b, "ns"),
            (&MAX_MEM, mem_b, "memory bytes"),
            (&MAX_OUT, out_b, "answer bytes"),
        ] {
            if value > max.fetch_max(value, Ordering::Relaxed) {
                eprintln!(
                    "cost: new max {:.1} {what}/input byte (input {len} B: {ns} ns, {memory} B memory, {answer} B answer)",
                    value as f64 / 16.0
                );
            }
        }
    }
});
