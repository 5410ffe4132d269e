// Work split over threads for the forward pass's products: a persistent pool whose workers
// spin briefly between jobs (CQuantKernels' scen_parallel_for), so a decode step's ~70
// back-to-back products don't each pay a thread wake-up.

import CQuantKernels

enum Parallel {
    /// Calls `body(i)` for every i in 0..<count on up to `threads` threads (default: one per
    /// index); returns when all are done.
    static func forEach(_ count: Int, threads: Int? = nil, _ body: @Sendable (Int) -> Void) {
        guard count > 1 else {
            if count == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            var task = escapable
            withUnsafeMutablePointer(to: &task) { pointer in
                scen_parallel_for(Int32(count), Int32(threads ?? count), { context, i in
                    context!.assumingMemoryBound(to: (@Sendable (Int) -> Void).self).pointee(Int(i))
                }, pointer)
            }
        }
    }
}
