//! Hints to the processor, for the few loops where waiting for memory is most of the time
//! (the verifier's); below every layer, used by the interpreter and the verifier.

/// A hint that `p` will be read soon; never faults, whatever `p` is.
#[inline]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing a program can see and does not
    // fault on any address; SSE, which it needs, is part of every x86_64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
