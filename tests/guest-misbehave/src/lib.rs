//! What the failing test guests (`tests/guests/guest-fail`, `guest-poison`, `hostile`) do when
//! told to misbehave without returning: loop until the host's time limit stops them, or
//! allocate until its memory limit does. Neither returns; the host must end the call.

/// Spins forever (the host's deadline traps it). `black_box` keeps the optimizer from
/// proving the loop has no effect.
pub fn spin_forever() -> ! {
    let mut i = 0u64;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

/// Allocates and fills 1 MiB after 1 MiB forever (the host's memory cap makes the allocation
/// fail, which traps). Filled, so the pages are really touched.
pub fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}
