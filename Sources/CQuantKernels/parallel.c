// A small persistent thread pool for the short, back-to-back products of decoding: workers
// spin for a while after each job (a token's next product usually follows within
// microseconds), then sleep on a condition variable. One job runs at a time; a caller that
// finds the pool busy (another session decoding) runs its job on its own thread.

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif
#include "CQuantKernels.h"

enum { MAX_WORKERS = 63 };
enum { SPIN_ROUNDS = 20000 };  // pause instructions: well under a millisecond

static pthread_mutex_t submit = PTHREAD_MUTEX_INITIALIZER;   // held by the running job's caller
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int workers;                                          // started so far (under submit)
static _Atomic uint32_t generation;                          // bumped per job, after its fields
static _Atomic int sleepers;
// The next index of the current job, tagged with its generation: (generation << 32) | index.
// A worker claims an index only with a matching tag, so one that wakes late never runs (or
// counts) an index of a later job with the fields of an earlier one.
static _Atomic uint64_t ticket;
static _Atomic int done_count;
static _Atomic int job_count, job_helpers;
static _Atomic(scen_task_fn) job_fn;
static _Atomic(void *) job_context;

static void run_indices(uint32_t gen) {
    const scen_task_fn fn = atomic_load_explicit(&job_fn, memory_order_relaxed);
    void *const context = atomic_load_explicit(&job_context, memory_order_relaxed);
    const uint64_t count = (uint64_t)atomic_load_explicit(&job_count, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
    while ((uint32_t)(t >> 32) == gen && (t & 0xFFFFFFFFu) < count) {
        if (!atomic_compare_exchange_weak_explicit(&ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        fn(context, (int)(t & 0xFFFFFFFFu));
        atomic_fetch_add_explicit(&done_count, 1, memory_order_release);
        t = atomic_load_explicit(&ticket, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    const int id = (int)(intptr_t)arg;
    uint32_t seen = atomic_load_explicit(&generation, memory_order_acquire);
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
            if (++spins < SPIN_ROUNDS) { CPU_RELAX(); continue; }
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&sleepers, 1);
            while ((g = atomic_load(&generation)) == seen) pthread_cond_wait(&wake, &sleep_lock);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&sleep_lock);
            break;
        }
        seen = g;
        if (id < atomic_load_explicit(&job_helpers, memory_order_relaxed)) run_indices(g);
    }
    return NULL;
}

void scen_parallel_for(int count, int threads, scen_task_fn fn, void *context) {
    if (count <= 0) return;
    if (count == 1 || threads <= 1 || pthread_mutex_trylock(&submit) != 0) {
        for (int i = 0; i < count; i++) fn(context, i);
        return;
    }
    int helpers = (count < threads ? count : threads) - 1;
    if (helpers > MAX_WORKERS) helpers = MAX_WORKERS;
    while (workers < helpers) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int ok = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)workers) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;
        workers++;
    }
    const uint32_t gen = atomic_load_explicit(&generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&job_fn, fn, memory_order_relaxed);
    atomic_store_explicit(&job_context, context, memory_order_relaxed);
    atomic_store_explicit(&job_count, count, memory_order_relaxed);
    atomic_store_explicit(&job_helpers, helpers < workers ? helpers : workers, memory_order_relaxed);
    atomic_store_explicit(&done_count, 0, memory_order_relaxed);
    atomic_store_explicit(&ticket, (uint64_t)gen << 32, memory_order_release);
    atomic_store(&generation, gen);  // seq_cst: ordered before the sleepers check below
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    run_indices(gen);
    while (atomic_load_explicit(&done_count, memory_order_acquire) < count) CPU_RELAX();
    pthread_mutex_unlock(&submit);
}

void scen_return_free_memory(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
