/*
 * libqingfeng-no-malloc-trim.so: malloc_trim() as a no-op, preloaded into Qingfeng's Python processes
 * (qingfeng.malloc_trim).
 *
 * protobuf's upb runtime frees each message's arena through an allocator that calls glibc's malloc_trim(0) after
 * every 10,000 frees. malloc_trim(0) hands every free page of every heap back to the kernel, so the next allocations
 * fault them in again: 2.9 page faults a post in the indexer and 1.35 in the collector, at about 4 us each on the
 * 2-core machine the benchmarks run on (issue 12). Without the trims glibc still gives memory back as any process does
 * (the top of the heap past M_TRIM_THRESHOLD, large blocks by munmap); only the explicit full trim is skipped.
 * Built by `make install` and the image's build stage; returns 0, "no memory released", as glibc may.
 */
#include <stddef.h>

int malloc_trim(size_t pad) {
    (void)pad;
    return 0;
}
